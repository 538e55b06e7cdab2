"""The bento installs exactly the prefect-mlops version being built."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_the_bento_pins_prefect_mlops_to_the_version_being_built() -> None:
    bentofile = yaml.safe_load((ROOT / "deployments" / "bentofile.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    ours = [p for p in bentofile["python"]["packages"] if p.startswith("prefect-mlops")]
    assert ours == [f"prefect-mlops=={version}"]
