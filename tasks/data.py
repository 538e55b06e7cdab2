"""Tasks of the data steps: ingest into a snapshot, and validate it with Great Expectations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, load_snapshot, read_snapshot, write_snapshot
from prefect_mlops.data.sources import read_table
from prefect_mlops.modeling.evaluation import infer_task
from prefect_mlops.modeling.training import FeatureSpec, resolve_features, validated_columns
from prefect_mlops.registry import lineage
from prefect_mlops.registry.tracking import log_json_artifact, log_snapshot_input
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


@dataclass(frozen=True)
class DataProfile:
    """What the validated snapshot says about the problem."""

    task: str
    features: FeatureSpec
    n_rows: int


@task(
    name="ingest-data",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
)
def ingest_data(config: TrainingConfig, run_id: str) -> SnapshotRef:
    """Read the configured source, write an immutable snapshot and log it as a dataset input."""
    from prefect_mlops.registry import mlflow_client

    settings = get_settings()
    df = read_table(config.data)
    snapshot = write_snapshot(df, settings.resolved_snapshot_dir, config.data.describe())
    log_snapshot_input(run_id, df, snapshot, target=config.target, context="training")
    client = mlflow_client(settings)
    client.log_param(run_id, "data.source", config.data.describe()[:500])
    client.log_param(run_id, "data.digest", snapshot.digest)
    client.log_param(run_id, "data.rows", snapshot.n_rows)
    client.log_param(run_id, "data.columns", snapshot.n_columns)
    return snapshot


@task(name="resolve-reference", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def resolve_reference(config: TrainingConfig) -> str | None:
    """The snapshot the validation suite is inferred from (see ``ValidationConfig.reference``)."""
    from prefect_mlops.registry import CHAMPION, get_alias_version, mlflow_client

    reference = config.validation.reference
    if reference is None:
        return None
    if reference != "champion":
        return reference
    champion = get_alias_version(mlflow_client(get_settings()), config.model_name, CHAMPION)
    path = champion.tags.get(lineage.DATA_SNAPSHOT) if champion else None
    return path if path and Path(path).exists() else None


@task(name="validate-data", timeout_seconds=3600, cache_policy=NO_CACHE)
def validate_data(
    config: TrainingConfig, snapshot: SnapshotRef, reference_path: str | None, run_id: str
) -> DataProfile:
    """Check the snapshot against its expectations; raise DataValidationError naming every failure.

    The suite is the user's (``validation.suite_path``) or inferred from the reference snapshot
    (TFX SchemaGen/ExampleValidator). The GX result is kept as an MLflow artifact either way.
    """
    from prefect_mlops.data.validation import (
        failures_markdown,
        infer_suite,
        load_suite,
        raise_for_failures,
        validate_frame,
    )
    from prefect_mlops.registry import mlflow_client

    df = load_snapshot(snapshot.path)
    source = config.data.describe()
    features = resolve_features(df, config, source)
    profile = DataProfile(task=_task_of(config, df), features=features, n_rows=len(df))
    if not config.validation.enabled:
        return profile
    client = mlflow_client(get_settings())
    if config.validation.suite_path:
        suite = load_suite(config.validation.suite_path)
    else:
        reference = read_snapshot(reference_path) if reference_path else df
        columns = validated_columns(reference, config)
        suite = infer_suite(
            reference, config.validation, name=f"{config.model_name}-suite", columns=columns
        )
    outcome = validate_frame(df, suite, data_name=source)
    log_json_artifact(client, run_id, suite, "validation/expectation_suite.json")
    log_json_artifact(client, run_id, outcome.result, "validation/gx_result.json")
    client.log_metric(run_id, "validation_failed_expectations", len(outcome.failures))
    client.set_tag(run_id, lineage.VALIDATION_SUCCESS, str(outcome.success).lower())
    client.set_tag(run_id, lineage.VALIDATION_REFERENCE, reference_path or "current data")
    create_markdown_artifact(
        markdown=failures_markdown(outcome, source),
        key="data-validation",
        description=f"Great Expectations validation of {source}",
    )
    raise_for_failures(outcome, source)
    return profile


def _task_of(config: TrainingConfig, df) -> str:
    return infer_task(df[config.target]) if config.task == "auto" else config.task
