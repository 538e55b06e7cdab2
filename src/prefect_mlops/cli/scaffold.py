"""``prefect-mlops init``: a training config and a prefect.yaml for the user's own table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from prefect_mlops.config import DataSource, MonitoringConfig, TrainingConfig
from prefect_mlops.errors import ConfigError, DataValidationError

FLOW_FROM_FILE = "prefect_mlops.flows.training:continuous_training_from_file"
DEPLOY_FLOW = "prefect_mlops.flows.deployment:model_deployment"
MONITOR_FLOW = "prefect_mlops.flows.monitoring:continuous_monitoring"


def write_project(
    directory: Path,
    *,
    data: Path,
    target: str,
    model_name: str | None = None,
    id_column: str | None = None,
    timestamp_column: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``train.yaml`` and ``prefect.yaml`` into ``directory``; returns their paths.

    Reads the table once to check the named columns and to choose the task. Raises
    DataIngestError for an unreadable table, DataValidationError naming a missing column,
    ConfigError when a file exists and ``force`` is not set.
    """
    from prefect_mlops.data.sources import read_table
    from prefect_mlops.modeling.evaluation import infer_task

    directory = directory.resolve()
    data = data.resolve()
    df = read_table(DataSource(path=str(data)))
    for role, column in (("target", target), ("id", id_column), ("timestamp", timestamp_column)):
        if column and column not in df.columns:
            raise DataValidationError(
                f"{data}: {role} column {column!r} not found; columns: {list(df.columns)}"
            )
    name = model_name or directory.name
    config: dict[str, Any] = {
        "model_name": name,
        "data": {"path": os.path.relpath(data, directory), "timestamp_column": timestamp_column},
        "target": target,
        "task": infer_task(df[target]),
        "id_column": id_column,
        "split": {"method": "time" if timestamp_column else "random", "seed": 42},
        "estimator": {"class_path": None, "params": {}},
        "slices": [],
        "promote": True,
        "monitoring": MonitoringConfig().model_dump(mode="json"),
    }
    TrainingConfig.from_mapping(
        {**config, "data": {**config["data"], "path": str(data)}}, source="generated config"
    )
    train_yaml = directory / "train.yaml"
    prefect_yaml = directory / "prefect.yaml"
    for path in (train_yaml, prefect_yaml):
        if path.exists() and not force:
            raise ConfigError(f"{path} exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Training config for {name}: edit this file, then run\n"
        f"#   prefect-mlops train --config {train_yaml.name}\n"
        "# Every field is described in prefect_mlops.config.TrainingConfig.\n"
    )
    train_yaml.write_text(header + yaml.safe_dump(config, sort_keys=False))
    prefect_yaml.write_text(yaml.safe_dump(deployment_file(name, directory), sort_keys=False))
    return [train_yaml, prefect_yaml]


def deployment_file(model_name: str, directory: Path) -> dict:
    """A prefect.yaml for ``model_name``: nightly continuous training, the model-deployment
    flow for its challenger (daily after it; run by hand, from the UI, or by a trigger) and
    hourly monitoring of its champion. Every schedule is paused, and no build/push with a pull
    step here: `prefect deploy` asks nothing."""
    return {
        "name": model_name,
        "prefect-version": ">=3.8",
        "build": None,
        "push": None,
        "pull": [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(directory)}}
        ],
        "deployments": [
            {
                "name": f"{model_name}-continuous-training",
                "description": f"Continuous training of {model_name} from train.yaml",
                "entrypoint": FLOW_FROM_FILE,
                "parameters": {"config_path": "train.yaml"},
                "work_pool": {"name": "default"},
                "schedules": [{"cron": "0 3 * * *", "timezone": "UTC", "active": False}],
                "tags": ["mlops", "continuous-training"],
            },
            {
                "name": f"{model_name}-model-deployment",
                "description": f"Infra-validate the challenger of {model_name} in a real BentoML "
                "server, then roll it out (blue-green, canary or shadow)",
                "entrypoint": DEPLOY_FLOW,
                "parameters": {"config": {"model_name": model_name, "strategy": "blue-green"}},
                "work_pool": {"name": "default"},
                "schedules": [{"cron": "0 4 * * *", "timezone": "UTC", "active": False}],
                "tags": ["mlops", "model-deployment"],
            },
            {
                "name": f"{model_name}-monitoring",
                "description": f"Hourly monitoring of {model_name}'s champion: schema skew, "
                "drift, live and estimated quality, latency and errors of its serving log",
                "entrypoint": MONITOR_FLOW,
                "parameters": {"model_name": model_name},
                "work_pool": {"name": "default"},
                "schedules": [{"interval": 3600, "active": False}],
                "tags": ["mlops", "monitoring"],
            },
        ],
    }
