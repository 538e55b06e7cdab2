"""Tasks of the data steps: ingest into a snapshot, find the champion, decide whether anything
changed, and validate the snapshot with Great Expectations."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, load_snapshot, read_snapshot
from prefect_mlops.data.suites import reference_snapshot
from prefect_mlops.modeling import training_run
from prefect_mlops.modeling.training_run import ChampionRef, DataProfile
from prefect_mlops.modeling.unchanged import is_unchanged, unchanged_reason
from prefect_mlops.registry import lineage, mlflow_client
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


@task(
    name="ingest-data",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
)
def ingest_data(config: TrainingConfig, run_id: str) -> SnapshotRef:
    """Read the configured source into an immutable snapshot logged as the run's dataset input;
    returns the snapshot. Raises DataIngestError."""
    settings = get_settings()
    _, snapshot = training_run.ingest(
        config, settings.resolved_snapshot_dir, mlflow_client(settings), run_id
    )
    get_run_logger().info(
        "Ingested %s rows x %s columns from %s into snapshot %s (sha256 %s)",
        f"{snapshot.n_rows:,}",
        snapshot.n_columns,
        snapshot.source,
        snapshot.path,
        snapshot.digest,
    )
    return snapshot


@task(name="read-champion", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_champion(config: TrainingConfig) -> ChampionRef | None:
    """The champion version of ``config.model_name`` with its tags, or None on a first run."""
    champion = training_run.read_champion(mlflow_client(get_settings()), config.model_name)
    logger = get_run_logger()
    if champion is None:
        logger.info("%s has no champion yet: this is its first model", config.model_name)
    else:
        logger.info(
            "Champion of %s: v%s (data %s, config hash %s)",
            config.model_name,
            champion.version,
            champion.tags.get(lineage.DATA_DIGEST, "?")[:12],
            champion.tags.get(lineage.CONFIG_HASH, "?")[:12],
        )
    return champion


@task(name="check-unchanged", cache_policy=NO_CACHE)
def check_unchanged(
    config: TrainingConfig, snapshot: SnapshotRef, champion: ChampionRef | None, run_id: str
) -> str | None:
    """The reason this run is unchanged from the champion (same data digest and config hash;
    see ``modeling.unchanged``), recorded on the run; None when there is something to train."""
    config_hash = config.config_hash()
    logger = get_run_logger()
    if champion is None or not is_unchanged(champion.tags, snapshot.digest, config_hash):
        logger.info("Data or config differ from the champion's: training a candidate")
        return None
    training_run.record_unchanged(mlflow_client(get_settings()), run_id, champion)
    reason = unchanged_reason(champion.version, snapshot.digest, config_hash)
    logger.info("Unchanged: %s", reason.removeprefix("unchanged: "))
    return reason


@task(name="resolve-reference", cache_policy=NO_CACHE)
def resolve_reference(config: TrainingConfig, champion: ChampionRef | None) -> str | None:
    """The snapshot the validation suite is inferred from (see ``ValidationConfig.reference``),
    or None for the run's own data."""
    champion_snapshot = champion.tags.get(lineage.DATA_SNAPSHOT) if champion else None
    reference = reference_snapshot(config.validation.reference, champion_snapshot)
    get_run_logger().info("Validation reference: %s", reference or "the current data")
    return reference


@task(name="validate-data", timeout_seconds=3600, cache_policy=NO_CACHE)
def validate_data(
    config: TrainingConfig, snapshot: SnapshotRef, reference_path: str | None, run_id: str
) -> DataProfile:
    """Check the snapshot against its expectations; returns its profile (task, features).

    The suite is the user's (``validation.suite_path``) or inferred from the reference snapshot
    (TFX SchemaGen/ExampleValidator). The GX result is kept as an MLflow artifact either way and
    every expectation is listed in a Prefect table artifact. Raises DataValidationError naming
    every failure.
    """
    from prefect_mlops.data.validation_report import (
        expectation_rows,
        failures_markdown,
        raise_for_failures,
    )

    df = load_snapshot(snapshot.path)
    profile = training_run.profile_data(df, config)
    logger = get_run_logger()
    if not config.validation.enabled:
        logger.info("Validation skipped (validation.enabled is false)")
        return profile
    source = config.data.describe()
    reference = read_snapshot(reference_path) if reference_path else None
    client = mlflow_client(get_settings())
    outcome = training_run.validate(df, config, reference, reference_path, client, run_id)
    create_markdown_artifact(
        markdown=failures_markdown(outcome, source),
        key="data-validation",
        description=f"Great Expectations validation of {source}",
    )
    create_table_artifact(
        table=expectation_rows(outcome),
        key="data-validation-expectations",
        description=f"Every expectation checked on {source}",
    )
    if outcome.success:
        logger.info(
            "Validated %s rows: %s expectations evaluated, 0 failed",
            f"{len(df):,}",
            outcome.evaluated,
        )
    else:
        logger.error(
            "Validation failed: %s of %s expectations failed: %s",
            outcome.failed,
            outcome.evaluated,
            "; ".join(f.describe() for f in outcome.failures),
        )
    raise_for_failures(outcome, source)
    return profile
