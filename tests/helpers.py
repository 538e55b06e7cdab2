"""Small builders shared by the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prefect_mlops.config import TrainingConfig


def churn_config(data_path: Path, **overrides: Any) -> TrainingConfig:
    """A fast training config for a generated churn table at ``data_path``."""
    raw: dict[str, Any] = {
        "model_name": "churn-test",
        "data": {"path": str(data_path), "timestamp_column": "event_ts"},
        "target": "churned",
        "id_column": "customer_id",
        "estimator": {
            "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 60},
        },
        "slices": ["contract"],
    }
    raw.update(overrides)
    return TrainingConfig.model_validate(raw)


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as CSV or Parquet by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def registry_state(model_name: str) -> tuple[dict[str, str], list[str]]:
    """(aliases, sorted version numbers) of ``model_name`` in the configured registry."""
    from prefect_mlops import registry
    from prefect_mlops.settings import get_settings

    client = registry.mlflow_client(get_settings())
    aliases = registry.alias_state(client, model_name)
    versions = registry.search_versions(client, model_name)
    return aliases, sorted(str(v.version) for v in versions)


def last_flow_run(flow_name: str) -> Any:
    """The most recently started run of the flow ``flow_name`` on the current Prefect API."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> Any:
        async with get_client() as client:
            [run] = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            return run

    return asyncio.run(read())
