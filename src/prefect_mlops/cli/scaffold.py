"""``prefect-mlops init``: a training config and a prefect.yaml for the user's own table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from prefect_mlops.config import DataSource, MonitoringConfig, TrainingConfig
from prefect_mlops.errors import ConfigError, DataValidationError


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
    """A prefect.yaml for ``model_name`` in ``directory``: its closed loop as
    :func:`prefect_mlops.automations.closed_loop_deployments` builds it — nightly continuous
    training plus its drift / quality / data-arrival trigger, the model-deployment flow on each
    blessed version (canary), hourly monitoring, the data-arrival check, daily batch scoring of
    the training table (from ``directory/train.yaml``, when written) and the fallback on a
    failing champion. Every schedule is paused, and no build/push with a pull step here:
    `prefect deploy` asks nothing."""
    from prefect_mlops.automations import MODULE_ENTRYPOINTS, closed_loop_deployments

    train_yaml = directory / "train.yaml"
    written = yaml.safe_load(train_yaml.read_text()) if train_yaml.is_file() else {}
    scoring = {
        "model_name": model_name,
        "alias": "champion",
        "data": {"path": (written.get("data") or {}).get("path", "data.csv")},
        "output_dir": f"scored/{model_name}",
        "id_column": written.get("id_column"),
        "overwrite": True,
    }
    return {
        "name": model_name,
        "prefect-version": ">=3.8",
        "build": None,
        "push": None,
        "pull": [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(directory)}}
        ],
        "deployments": closed_loop_deployments(
            model_name,
            config_path=train_yaml.name,
            scoring=scoring,
            entrypoints=MODULE_ENTRYPOINTS,
        ),
    }
