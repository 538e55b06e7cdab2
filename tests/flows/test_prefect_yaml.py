"""The repo's prefect.yaml: every deployment's entrypoint loads and its parameters validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from pydantic import BaseModel

from prefect_mlops import automations, events
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
    # Declared, so `prefect deploy --all` asks nothing (tests/integration/test_local_server.py);
    # only a deployment run by its trigger alone (the fallback) declares no schedule.
    assert isinstance(deployment["schedules"], list), name
    assert deployment["schedules"] or deployment["triggers"], name
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
    _skip_if_not_written_yet(deployment["entrypoint"])
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


def _skip_if_not_written_yet(entrypoint: str) -> None:
    """The data-arrival flow is written in parallel with this file (flows/data_arrival.py);
    until it exists its deployment is declared but its entrypoint cannot load."""
    path = REPO_ROOT / entrypoint.partition(":")[0]
    if entrypoint.startswith("flows/data_arrival.py") and not path.is_file():
        pytest.skip(f"{path.name} is not written yet")


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


# -- the closed loop: prefect.yaml is what prefect_mlops.automations builds -------------------


def _built() -> dict[str, dict[str, Any]]:
    built = automations.closed_loop_deployments(
        "churn-demo",
        config_path="configs/churn-demo.yaml",
        scoring=DEPLOYMENTS["batch-scoring"]["parameters"]["config"],
        entrypoints=automations.FILE_ENTRYPOINTS,
    )
    return {d["name"]: d for d in built}


#: The repository keeps the name `batch-scoring` for the demo model's scoring deployment.
REPO_NAMES = {"churn-demo-batch-scoring": "batch-scoring"}


@pytest.mark.parametrize("name", list(_built()))
def test_prefect_yaml_deployment_is_the_built_one(name: str) -> None:
    built = _built()[name]
    declared = DEPLOYMENTS[REPO_NAMES.get(name, name)]
    for key in ("entrypoint", "parameters", "schedules", "work_pool"):
        assert declared[key] == built[key], (name, key)
    assert declared.get("triggers") == built.get("triggers"), name
    assert declared.get("concurrency_limit") == built.get("concurrency_limit"), name
    assert set(built["tags"]) <= set(declared["tags"])


def test_every_process_of_the_loop_is_deployed_once() -> None:
    assert set(DEPLOYMENTS) == {REPO_NAMES.get(n, n) for n in _built()} | {"continuous-training"}
    triggered = {n: d["triggers"] for n, d in DEPLOYMENTS.items() if d.get("triggers")}
    expects = {n: [e for t in ts for e in t["expect"]] for n, ts in triggered.items()}
    assert expects == {
        "churn-demo-continuous-training": list(events.RETRAIN_EVENTS),
        "churn-demo-model-deployment": [events.MODEL_BLESSED],
        "churn-demo-fallback": [events.MODEL_FAILING],
    }
    # Each event starts one deployment: two triggers on one event would start two runs.
    every = [e for es in expects.values() for e in es]
    assert len(every) == len(set(every))
    for name, triggers in triggered.items():
        (trigger,) = triggers
        assert trigger["match"] == {"prefect.resource.id": "mlops.model.churn-demo"}, name
        assert (trigger["posture"], trigger["threshold"]) == ("Reactive", 1), name
        assert DEPLOYMENTS[name]["concurrency_limit"]["limit"] == 1, name


def test_retrain_trigger_is_a_cooldown_and_a_running_retrain_cancels_new_ones() -> None:
    deployment = DEPLOYMENTS["churn-demo-continuous-training"]
    (trigger,) = deployment["triggers"]
    assert trigger["within"] == automations.RETRAIN_COOLDOWN_SECONDS >= 600
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert trigger["parameters"] == {"trigger": automations.TRIGGER_PARAMETER}


def _render(parameters: Any, event: dict[str, Any]) -> Any:
    """The trigger's templates with ``event``'s values (what Prefect renders; single
    expressions keep their JSON type)."""
    values = {
        "{{ event.event }}": event["event"],
        **{f"{{{{ event.payload.{k} }}}}": v for k, v in event["payload"].items()},
    }
    if isinstance(parameters, dict):
        return {k: _render(v, event) for k, v in parameters.items()}
    if isinstance(parameters, str) and parameters in values:
        return values[parameters]
    assert not (isinstance(parameters, str) and "{{" in parameters), parameters
    return parameters


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("churn-demo-continuous-training", events.DRIFT_DETECTED),
        ("churn-demo-continuous-training", events.DATA_ARRIVED),
        ("churn-demo-model-deployment", events.MODEL_BLESSED),
        ("churn-demo-fallback", events.MODEL_FAILING),
    ],
)
def test_triggered_parameters_validate(
    name: str, event: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's parameters (the deployment's, updated key by key by the trigger's rendered with
    a real event's payload) are accepted by the flow."""
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(REPO_ROOT)
    deployment = DEPLOYMENTS[name]
    built = events.build_event(event, "churn-demo", version="3", reason="3 columns drifted")
    rendered = _render(
        deployment["triggers"][0]["parameters"],
        {"event": built.event, "payload": built.payload},
    )
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    if "trigger" in rendered and "trigger" not in flow.parameters.properties:
        pytest.skip("continuous training has no `trigger` parameter yet (written in parallel)")
    validated = flow.validate_parameters({**deployment["parameters"], **rendered})
    if name == "churn-demo-model-deployment":
        assert (validated["config"].version, validated["config"].strategy) == ("3", "canary")
    elif name == "churn-demo-fallback":
        assert (validated["version"], validated["reason"]) == ("3", "3 columns drifted")
    else:
        trigger = validated["trigger"]
        got = trigger if isinstance(trigger, dict) else trigger.model_dump()
        assert (got["event"], got["version"], got["reason"]) == (event, "3", "3 columns drifted")


def test_init_writes_the_same_loop_with_module_entrypoints(tmp_path: Path) -> None:
    from prefect.flows import load_flow_from_entrypoint

    from prefect_mlops.cli.scaffold import deployment_file

    (tmp_path / "train.yaml").write_text(
        yaml.safe_dump({"data": {"path": "data/t.csv"}, "id_column": "cid"})
    )
    written = deployment_file("my-model", tmp_path)
    by_name = {d["name"]: d for d in written["deployments"]}
    assert set(by_name) == {
        automations.deployment_name("my-model", p) for p in automations.PROCESSES
    }
    training = by_name["my-model-continuous-training"]
    assert training["triggers"] == [automations.retrain_trigger("my-model")]
    assert training["triggers"][0]["match"] == {"prefect.resource.id": "mlops.model.my-model"}
    assert training["concurrency_limit"] == automations.RETRAIN_LIMIT
    scoring = by_name["my-model-batch-scoring"]["parameters"]["config"]
    assert (scoring["data"], scoring["id_column"]) == ({"path": "data/t.csv"}, "cid")
    for deployment in written["deployments"]:
        entry = deployment["entrypoint"]
        assert entry == automations.MODULE_ENTRYPOINTS[deployment["tags"][1]]
        if "data_arrival" in entry:
            _skip_if_not_written_yet("flows/data_arrival.py")
        flow = load_flow_from_entrypoint(entry, use_placeholder_flow=False)
        if deployment["name"] == "my-model-continuous-training":
            continue  # train.yaml here is a stub; test_cli.py validates init's real one
        flow.validate_parameters(deployment["parameters"])


def test_unknown_process_is_named() -> None:
    from prefect_mlops.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown process 'scoring'"):
        automations.deployment_name("m", "scoring")  # type: ignore[arg-type]
