"""The data-arrival check: count the training source's rows the champion was not trained on and
emit ``mlops.data.arrived`` past a threshold (what continuous training's trigger listens for)."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from prefect_mlops.config import TrainingConfig
from prefect_mlops.errors import ConfigError
from prefect_mlops.registry import configure_mlflow
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.events import count_arrived_rows, emit_data_arrived, read_champion_data


class DataArrival(BaseModel):
    """What one data-arrival check found."""

    model_name: str
    new_rows: int = Field(description="Rows of the source the champion was not trained on.")
    threshold: int = Field(description="min_new_rows: the count that emits the event.")
    basis: str = Field(
        description="timestamp (newer than the champion's snapshot's newest), row_count "
        "(source rows minus the snapshot's) or no_champion (every row)."
    )
    champion_version: str | None
    source: str = Field(description="The training source (passwords masked).")
    event: str | None = Field(description="The event emitted (None: below the threshold).")


@flow(
    name="data-arrival-check",
    description="Count the training source's rows newer than the champion's training snapshot "
    "(or past its row count) and emit mlops.data.arrived when at least min_new_rows arrived.",
)
def data_arrival_check(
    config_path: str | None = None,
    config: TrainingConfig | None = None,
    min_new_rows: int = 1000,
) -> DataArrival:
    """Count new rows for ``config`` (or the YAML at ``config_path``) and emit
    ``mlops.data.arrived`` when there are at least ``min_new_rows``; returns the count.

    Raises ConfigError (neither or both of config_path and config, min_new_rows below 1),
    DataIngestError (the source or the champion's snapshot cannot be read), PrefectAPIError
    (the event cannot be sent).
    """
    if (config_path is None) == (config is None):
        raise ConfigError("data_arrival_check: give exactly one of config_path or config")
    if min_new_rows < 1:
        raise ConfigError(
            f"data_arrival_check: min_new_rows must be at least 1, got {min_new_rows}"
        )
    training = config if config is not None else TrainingConfig.from_yaml(str(config_path))
    configure_mlflow(get_settings())
    champion = read_champion_data(training.model_name)
    count = count_arrived_rows(training, champion)
    event = emit_data_arrived(training.model_name, count, min_new_rows)
    return DataArrival(
        model_name=training.model_name,
        new_rows=count.new_rows,
        threshold=min_new_rows,
        basis=count.basis,
        champion_version=count.champion_version,
        source=count.source,
        event=event,
    )
