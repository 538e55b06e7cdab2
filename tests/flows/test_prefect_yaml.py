"""The repo's prefect.yaml: every deployment's entrypoint loads and its parameters validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from pydantic import BaseModel

from prefect_mlops.config import TrainingConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"


def _deployments() -> list[dict[str, Any]]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


DEPLOYMENTS = {d["name"]: d for d in _deployments()}


def test_prefect_yaml_declares_the_training_deployments() -> None:
    raw = yaml.safe_load(PREFECT_YAML.read_text())
    assert raw["name"] == "prefect-mlops"
    assert {"churn-demo-continuous-training", "continuous-training"} <= set(DEPLOYMENTS)
    assert len(DEPLOYMENTS) == len(_deployments())  # names are unique
    for deployment in DEPLOYMENTS.values():
        path, _, function = deployment["entrypoint"].partition(":")
        assert (REPO_ROOT / path).is_file() and function.isidentifier(), deployment["name"]


def test_prefect_yaml_declares_what_prefect_deploy_would_ask() -> None:
    """No build or push (a Docker prompt otherwise), and a pull step running each flow in the
    checkout it was deployed from (else Prefect asks about remote code storage)."""
    raw = yaml.safe_load(PREFECT_YAML.read_text())
    assert "build" in raw and raw["build"] is None
    assert "push" in raw and raw["push"] is None
    (step,) = raw["pull"]
    assert step == {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_deployment_has_name_tags_and_work_pool(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    assert deployment["name"] == name and name.strip()
    assert deployment.get("description")
    assert deployment["tags"] and all(isinstance(t, str) and t for t in deployment["tags"])
    assert isinstance(deployment["work_pool"]["name"], str) and deployment["work_pool"]["name"]
    # Declared, so `prefect deploy --all` asks nothing (tests/integration/test_local_server.py).
    assert deployment["schedules"], name
    for schedule in deployment["schedules"]:
        # A shipped schedule must not start training on someone's machine by itself.
        assert schedule["active"] is False
        if "interval" in schedule:  # monitoring: every N seconds
            assert isinstance(schedule["interval"], int) and schedule["interval"] > 0
        else:
            assert schedule["cron"] and schedule["timezone"]


@pytest.mark.parametrize("name", list(DEPLOYMENTS))
def test_entrypoint_loads_and_parameters_validate(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    deployment = DEPLOYMENTS[name]
    monkeypatch.chdir(REPO_ROOT)
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert isinstance(flow, Flow)
    assert flow.fn.__name__ == deployment["entrypoint"].rpartition(":")[2]
    validated = flow.validate_parameters(deployment["parameters"])
    assert set(deployment["parameters"]) <= set(validated)  # the rest: the flow's defaults
    for key, value in deployment["parameters"].items():
        if isinstance(value, dict):  # a config mapping became its typed model, values kept
            assert isinstance(validated[key], BaseModel)
            for field, raw in value.items():
                if isinstance(raw, str | int | bool):
                    assert getattr(validated[key], field) == raw, (key, field)
    if deployment["entrypoint"].endswith(":continuous_training"):
        assert isinstance(validated["config"], TrainingConfig)
    if "config_path" in validated:
        config = TrainingConfig.from_yaml(validated["config_path"])
        assert config.model_name and Path(config.data.path).is_absolute()
        if name == "churn-demo-continuous-training":
            # The data path is relative to the config file, so it lands in the repo's .mlops.
            assert config.model_name == "churn-demo"
            assert Path(config.data.path) == REPO_ROOT / ".mlops" / "demo" / "churn.csv"


def test_config_deployment_matches_the_demo_config_file() -> None:
    """Both deployments train the same demo model on the same data columns."""
    inline = TrainingConfig.model_validate(
        DEPLOYMENTS["continuous-training"]["parameters"]["config"]
    )
    from_file = TrainingConfig.from_yaml(
        REPO_ROOT / DEPLOYMENTS["churn-demo-continuous-training"]["parameters"]["config_path"]
    )
    assert inline.model_name == from_file.model_name
    assert (inline.target, inline.id_column) == (from_file.target, from_file.id_column)
    assert inline.slices == from_file.slices


def test_bad_parameters_are_rejected_by_the_flow() -> None:
    from prefect.exceptions import ParameterTypeError
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(
        str(REPO_ROOT / "flows" / "training.py") + ":continuous_training",
        use_placeholder_flow=False,
    )
    bad = {"config": {"model_name": "x", "data": {"path": "t.csv"}, "target": "y", "lr": 1}}
    with pytest.raises(ParameterTypeError, match="lr"):
        flow.validate_parameters(bad)
