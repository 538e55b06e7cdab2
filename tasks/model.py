"""Tasks of the model steps: split, train + tune, evaluate (candidate and champion), bless."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, load_snapshot
from prefect_mlops.data.splitting import SplitIndices
from prefect_mlops.modeling import training_run
from prefect_mlops.modeling.blessing import BlessingDecision, metrics_rows
from prefect_mlops.modeling.evaluation import EvaluationResult
from prefect_mlops.modeling.training_run import ChampionRef, DataProfile, TrainedModel
from prefect_mlops.registry import mlflow_client
from prefect_mlops.settings import get_settings


def _rounded(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or "none"


@task(name="split-data", timeout_seconds=1800, cache_policy=NO_CACHE)
def split_data(
    config: TrainingConfig, snapshot: SnapshotRef, profile: DataProfile, run_id: str
) -> SplitIndices:
    """Split the snapshot deterministically; records sizes, seed and each row's hash and part.
    Returns the row indices of each part."""
    df = load_snapshot(snapshot.path)
    split = training_run.split(df, config, profile, mlflow_client(get_settings()), run_id)
    sizes = split.sizes()
    get_run_logger().info(
        "Split %s rows (%s, seed %s): train %s, validation %s, test %s",
        f"{len(df):,}",
        config.split.method,
        config.split.seed,
        f"{sizes['train']:,}",
        f"{sizes['validation']:,}",
        f"{sizes['test']:,}",
    )
    return split


@task(name="train-model", timeout_seconds=4 * 3600, cache_policy=NO_CACHE)
def train_model(
    config: TrainingConfig,
    snapshot: SnapshotRef,
    profile: DataProfile,
    split: SplitIndices,
    run_id: str,
) -> TrainedModel:
    """Fit the configured estimator inside the preprocessing pipeline, with the optional search;
    returns the fitted model and what the search found. Raises TrainingError."""
    df = load_snapshot(snapshot.path)
    trained = training_run.train(df, config, profile, split, mlflow_client(get_settings()), run_id)
    logger = get_run_logger()
    estimator = type(trained.model[-1]).__name__
    if config.estimator.search is None:
        logger.info(
            "Trained %s (%s) on %s rows, no search",
            estimator,
            profile.task,
            f"{len(split.train):,}",
        )
    else:
        logger.info(
            "Trained %s (%s) on %s rows; best params %s (cv score %.4f)",
            estimator,
            profile.task,
            f"{len(split.train):,}",
            trained.best_params,
            trained.best_cv_score if trained.best_cv_score is not None else float("nan"),
        )
    if trained.validation_metrics:
        logger.info("Validation metrics: %s", _rounded(trained.validation_metrics))
    return trained


@task(name="evaluate-model", timeout_seconds=3600, cache_policy=NO_CACHE)
def evaluate_on_test(
    config: TrainingConfig,
    snapshot: SnapshotRef,
    profile: DataProfile,
    split: SplitIndices,
    model: Any,
    run_id: str,
    role: str,
) -> EvaluationResult:
    """Metrics of ``model`` on the test rows, overall and per slice, logged as ``<role>_test_*``.

    For the candidate (``role='candidate'``) the test predictions are kept as a run artifact
    (``predictions/test.parquet``), so deployment can check a server answers the same.
    Raises EvaluationError.
    """
    df = load_snapshot(snapshot.path)
    client = mlflow_client(get_settings())
    result = training_run.evaluate(df, config, profile, split, model, role, client, run_id)
    get_run_logger().info(
        "%s test metrics on %s rows (%s slices): %s",
        role.capitalize(),
        f"{result.n_rows:,}",
        len(result.slices),
        _rounded(result.overall),
    )
    return result


@task(name="keep-reference-profile", timeout_seconds=3600, cache_policy=NO_CACHE)
def keep_reference_profile(
    config: TrainingConfig,
    snapshot: SnapshotRef,
    profile: DataProfile,
    split: SplitIndices,
    model: Any,
    candidate: EvaluationResult,
    run_id: str,
) -> str:
    """Keep what monitoring compares the version's served traffic with (the reference rows'
    profile, the test predictions and their calibration) on the run; returns its path."""
    from prefect_mlops.monitoring.reference import keep_reference

    _, path = keep_reference(
        mlflow_client(get_settings()),
        run_id,
        load_snapshot(snapshot.path),
        split,
        profile.features,
        task=profile.task,
        target=config.target,
        model=model,
        which=config.monitoring.reference,
        test_predictions=candidate.predictions,
    )
    get_run_logger().info(
        "Kept the monitoring reference (%s rows, %s features) as %s",
        config.monitoring.reference,
        len(profile.features.columns),
        path,
    )
    return path


@task(name="load-champion", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load_champion(config: TrainingConfig, champion: ChampionRef) -> Any:
    """The champion's fitted pipeline. Raises ModelNotFoundError when it cannot be loaded."""
    model = training_run.load_champion_model(config.model_name, champion)
    get_run_logger().info("Loaded champion v%s to evaluate on the same rows", champion.version)
    return model


@task(name="bless-candidate", cache_policy=NO_CACHE)
def bless(
    config: TrainingConfig,
    profile: DataProfile,
    candidate: EvaluationResult,
    champion: EvaluationResult | None,
    champion_version: str | None,
    run_id: str,
) -> BlessingDecision:
    """Model validation: compare the candidate with thresholds and the champion; returns the
    decision (a markdown and a metrics table artifact show it). Raises ConfigError."""
    client = mlflow_client(get_settings())
    decision = training_run.bless(
        config, profile, candidate, champion, champion_version, client, run_id
    )
    create_markdown_artifact(
        markdown=decision.markdown(),
        key="model-blessing",
        description=f"Blessing of the {config.model_name} candidate",
    )
    create_table_artifact(
        table=metrics_rows(candidate, champion),
        key="model-metrics",
        description="Test-set metrics, overall and per slice (rounded to 4 decimals)",
    )
    get_run_logger().info("Blessing decision: %s", decision.summary())
    return decision
