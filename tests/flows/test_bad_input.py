"""Bad input: each case names the problem, exits non-zero, and leaves the registry as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import churn_config, registry_state, write_frame
from typer.testing import CliRunner

from prefect_mlops.cli.app import app
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.data.snapshots import verify_snapshot
from prefect_mlops.flows.training import continuous_training

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A registry whose champion v1 was trained on clean churn data."""
    home = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home / "mlops"))
        data = write_frame(generate_churn(2000, seed=11), home / "clean.csv")
        continuous_training(churn_config(data))
        yield home


@pytest.fixture
def in_home(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(trained_home / "mlops"))
    return trained_home


def _config_file(folder: Path, data_path: Path, **overrides: Any) -> Path:
    raw = churn_config(data_path).model_dump(mode="json", exclude_none=True)
    raw.update(overrides)
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _corrupt(kind: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return write_frame(generate_churn(2000, seed=12, corruption=kind), folder / f"{kind}.csv")

    return make


def _write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _clean(folder: Path) -> Path:
    return write_frame(generate_churn(2000, seed=13), folder / "clean2.csv")


CASES = {
    "missing file": (lambda folder: folder / "nowhere.csv", {}, "nowhere.csv"),
    "empty file": (_write_bytes("empty.csv", b""), {}, "empty.csv"),
    "unreadable file": (
        _write_bytes("garbage.parquet", b"\x00\x01 not a parquet file"),
        {},
        "garbage.parquet",
    ),
    "missing target": (_clean, {"target": "will_churn"}, "will_churn"),
    "missing feature column": (
        _clean,
        {"features": ["tenure_months", "loyalty_points"]},
        "loyalty_points",
    ),
    "missing column vs champion data": (_corrupt("missing_column"), {}, "monthly_charges"),
    "wrong dtype": (_corrupt("wrong_dtype"), {}, "tenure_months"),
    "null burst": (_corrupt("null_burst"), {}, "support_calls"),
    "unseen category beyond tolerance": (_corrupt("unseen_category"), {}, "payment_method"),
    "unknown estimator path": (
        _clean,
        {"estimator": {"class_path": "sklearn.ensemble.TurboForestClassifier"}},
        "TurboForestClassifier",
    ),
    "invalid config value": (_clean, {"split": {"test_size": 1.5}}, "split.test_size"),
    "unknown config field": (_clean, {"learning_rate": 0.1}, "learning_rate"),
    "contradictory threshold": (
        _clean,
        {"thresholds": [{"metric": "log_loss", "min_value": 0.2}]},
        "log_loss",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_and_changes_nothing(case: str, in_home: Path, tmp_path: Path) -> None:
    make_data, overrides, expected = CASES[case]
    before = registry_state("churn-test")
    snapshots_before = sorted((in_home / "mlops" / "snapshots").glob("*.parquet"))
    config = _config_file(tmp_path, make_data(tmp_path), **overrides)

    result = CliRunner().invoke(app, ["train", "--config", str(config)])

    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert "error:" in result.output
    assert registry_state("churn-test") == before
    assert registry_state("churn-test")[0]["champion"] == "1"
    # Existing snapshots are immutable: every one is still there with its content hash.
    for snapshot in snapshots_before:
        assert verify_snapshot(snapshot) == snapshot.stem


def test_missing_config_file_exits_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert "absent.yaml" in result.output


def test_config_that_is_not_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 1
    assert "list.yaml" in result.output
