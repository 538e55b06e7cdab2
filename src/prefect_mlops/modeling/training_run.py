"""The steps of one continuous-training run as plain functions (no Prefect), each recorded in the
run's MLflow run (params, metrics, tags, artifacts).

Each step does its work on the in-memory frame and returns what the next step needs. The Prefect
tasks (``prefect_mlops.tasks.data`` / ``.model``) call one step each, plus logging and Prefect
artifacts; ``bench/plain.py`` calls the same steps in the flow's order, so the two record the same
run and cannot drift apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, write_snapshot
from prefect_mlops.data.sources import read_table
from prefect_mlops.data.splitting import SplitIndices, split_frame, split_record
from prefect_mlops.modeling.blessing import BlessingDecision, bless_candidate, default_thresholds
from prefect_mlops.modeling.evaluation import EvaluationResult, evaluate_model, infer_task
from prefect_mlops.modeling.training import (
    FeatureSpec,
    build_estimator,
    build_pipeline,
    fit_model,
    resolve_features,
    training_params,
)
from prefect_mlops.registry import lineage
from prefect_mlops.registry.tracking import (
    log_frame_artifact,
    log_json_artifact,
    log_snapshot_input,
    log_text_artifact,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mlflow import MlflowClient

    from prefect_mlops.data.validation import ValidationOutcome
    from prefect_mlops.settings import Settings


@dataclass(frozen=True)
class DataProfile:
    """What the snapshot says about the problem: the task, the features and the row count."""

    task: str
    features: FeatureSpec
    n_rows: int


@dataclass
class TrainedModel:
    """A fitted pipeline with what the search found (empty without a search)."""

    model: Any
    best_params: dict[str, Any] = field(default_factory=dict)
    best_cv_score: float | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChampionRef:
    """The champion version of a registered model and its tags (lineage, blessing, metrics)."""

    version: str
    tags: dict[str, str]


@dataclass(frozen=True)
class TrainingRunRef:
    """The MLflow run of one continuous-training run: its experiment, id and tags."""

    experiment_id: str
    run_id: str
    tags: dict[str, str]


def open_training_run(
    config: TrainingConfig,
    settings: Settings,
    client: MlflowClient,
    *,
    run_name: str | None,
    flow_run_id: str | None = None,
    flow_run_url: str | None = None,
) -> TrainingRunRef:
    """Create the run (in the config's experiment, created if absent) with the lineage tags of
    code, config and flow run, and keep the config as ``config/training_config.json``."""
    from prefect_mlops.registry import code_version, ensure_experiment
    from prefect_mlops.registry.tracking import start_training_run

    experiment_id = ensure_experiment(
        client, config.resolved_experiment_name, settings.resolved_artifact_location
    )
    tags = lineage.training_run_tags(
        code_version=code_version(),
        config_hash=config.config_hash(),
        model_name=config.model_name,
        flow_run_id=flow_run_id,
        flow_run_url=flow_run_url,
        extra=config.tags,
    )
    run_id = start_training_run(client, experiment_id, run_name, tags)
    client.log_dict(run_id, config.model_dump(mode="json"), "config/training_config.json")
    return TrainingRunRef(experiment_id=experiment_id, run_id=run_id, tags=tags)


def mlflow_run_link(mlflow_ui_url: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI served at ``mlflow_ui_url``."""
    return f"{mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    """Record ``params`` on the run in one write."""
    from mlflow.entities import Param

    if params:
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    """Record ``metrics`` (step 0, now) on the run in one write."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    if metrics:
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])


def ingest(
    config: TrainingConfig, snapshot_dir: Path, client: MlflowClient, run_id: str
) -> tuple[pd.DataFrame, SnapshotRef]:
    """Read the configured source, write its immutable snapshot and record it (dataset input,
    ``data.*`` params); returns the frame and the snapshot. Raises DataIngestError."""
    source = config.data.describe()
    df = read_table(config.data)
    snapshot = write_snapshot(df, snapshot_dir, source)
    log_snapshot_input(client, run_id, df, snapshot, target=config.target, context="training")
    params = {
        "data.source": source[:500],
        "data.digest": snapshot.digest,
        "data.rows": snapshot.n_rows,
        "data.columns": snapshot.n_columns,
    }
    log_params(client, run_id, params)
    return df, snapshot


def read_champion(client: MlflowClient, model_name: str) -> ChampionRef | None:
    """The champion of ``model_name`` with its tags, or None when there is none yet."""
    from prefect_mlops.registry import CHAMPION, get_alias_version

    champion = get_alias_version(client, model_name, CHAMPION)
    if champion is None:
        return None
    return ChampionRef(version=str(champion.version), tags=dict(champion.tags))


def profile_data(df: pd.DataFrame, config: TrainingConfig) -> DataProfile:
    """The task (configured, or inferred from the target) and the features of ``df``.

    Raises DataValidationError when the target or a configured feature is missing.
    """
    features = resolve_features(df, config, config.data.describe())
    task = infer_task(df[config.target]) if config.task == "auto" else config.task
    return DataProfile(task=task, features=features, n_rows=len(df))


def validate(
    df: pd.DataFrame,
    config: TrainingConfig,
    reference: pd.DataFrame | None,
    reference_path: str | None,
    client: MlflowClient,
    run_id: str,
) -> ValidationOutcome:
    """Check ``df`` against the run's suite (see ``data.suites.choose_suite``) and record the
    suite, GX's result, the failure count and the verdict on the run; returns the outcome
    without raising (``data.validation_report.raise_for_failures`` stops the run)."""
    from prefect_mlops.data.suites import choose_suite
    from prefect_mlops.data.validation import validate_frame

    suite = choose_suite(config, df, reference)
    outcome = validate_frame(df, suite, data_name=config.data.describe())
    log_json_artifact(client, run_id, suite, "validation/expectation_suite.json")
    log_json_artifact(client, run_id, outcome.result, "validation/gx_result.json")
    log_metrics(client, run_id, {"validation_failed_expectations": len(outcome.failures)})
    client.set_tag(run_id, lineage.VALIDATION_SUCCESS, str(outcome.success).lower())
    client.set_tag(run_id, lineage.VALIDATION_REFERENCE, reference_path or "current data")
    return outcome


def split(
    df: pd.DataFrame,
    config: TrainingConfig,
    profile: DataProfile,
    client: MlflowClient,
    run_id: str,
) -> SplitIndices:
    """Split ``df`` deterministically and record the split (params and each row's part).

    Raises ConfigError / DataValidationError (see ``split_frame``).
    """
    indices = split_frame(
        df,
        config.split,
        target=config.target,
        task=profile.task,
        timestamp_column=config.data.timestamp_column,
    )
    record = split_record(df, indices, config.split)
    log_params(client, run_id, record.params)
    log_frame_artifact(client, run_id, record.rows, "split/rows.parquet")
    return indices


def train(
    df: pd.DataFrame,
    config: TrainingConfig,
    profile: DataProfile,
    indices: SplitIndices,
    client: MlflowClient,
    run_id: str,
) -> TrainedModel:
    """Fit the configured estimator (with the optional search) on the train rows and record
    its params, the search's results and the validation rows' metrics. Raises TrainingError."""
    train_rows = df.iloc[indices.train]
    features = profile.features
    estimator = build_estimator(config, profile.task, config.split.seed)
    fitted = fit_model(
        build_pipeline(features, estimator),
        train_rows[features.columns],
        train_rows[config.target],
        task=profile.task,
        search=config.estimator.search,
        seed=config.split.seed,
    )
    del train_rows
    log_params(client, run_id, training_params(config, profile.task, features, estimator, fitted))
    if fitted.best_cv_score is not None:
        log_metrics(client, run_id, {"best_cv_score": fitted.best_cv_score})
    if fitted.cv_results is not None:
        cv = fitted.cv_results.drop(columns=["params"], errors="ignore").astype(str)
        log_text_artifact(client, run_id, cv.to_csv(index=False), "search/cv_results.csv")
    validation_metrics: dict[str, float] = {}
    if len(indices.validation):
        valid = df.iloc[indices.validation]
        result = evaluate_model(
            fitted.model, valid[features.columns], valid[config.target], profile.task
        )
        validation_metrics = result.overall
        log_metrics(client, run_id, {f"validation_{k}": v for k, v in result.overall.items()})
    return TrainedModel(
        model=fitted.model,
        best_params=fitted.best_params,
        best_cv_score=fitted.best_cv_score,
        validation_metrics=validation_metrics,
    )


def evaluate(
    df: pd.DataFrame,
    config: TrainingConfig,
    profile: DataProfile,
    indices: SplitIndices,
    model: Any,
    role: str,
    client: MlflowClient,
    run_id: str,
) -> EvaluationResult:
    """Metrics of ``model`` on the test rows, overall and per slice, recorded as
    ``<role>_test_*`` (``test_*`` for the candidate) plus ``evaluation/<role>.json``.

    For the candidate the test predictions are kept too (``predictions/test.parquet``), so
    deployment can check a server answers the same. Raises EvaluationError.
    """
    test = df.iloc[indices.test]
    result = evaluate_model(
        model,
        test[profile.features.columns],
        test[config.target],
        profile.task,
        slice_frame=test,
        slice_columns=config.slices,
    )
    prefix = "test_" if role == "candidate" else f"{role}_test_"
    log_metrics(client, run_id, result.flat_metrics(prefix=prefix))
    log_json_artifact(client, run_id, result.to_dict(), f"evaluation/{role}.json")
    if role == "candidate":
        predictions = test[profile.features.columns].copy()
        predictions["prediction"] = result.predictions
        log_frame_artifact(client, run_id, predictions, "predictions/test.parquet")
    return result


def load_champion_model(model_name: str, champion: ChampionRef) -> Any:
    """Load the champion's fitted pipeline. Raises ModelNotFoundError when the version is gone."""
    from mlflow.exceptions import MlflowException

    from prefect_mlops.errors import ModelNotFoundError
    from prefect_mlops.registry.tracking import load_model

    try:
        return load_model(f"models:/{model_name}/{champion.version}")
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"the champion of {model_name!r}, version {champion.version}, cannot be loaded "
            f"from the registry: {exc}"
        ) from exc


def bless(
    config: TrainingConfig,
    profile: DataProfile,
    candidate: EvaluationResult,
    champion: EvaluationResult | None,
    champion_version: str | None,
    client: MlflowClient,
    run_id: str,
) -> BlessingDecision:
    """Model validation: the candidate against the thresholds (default by task) and the
    champion, recorded as blessing tags and ``blessing/decision.json``. Raises ConfigError."""
    thresholds = config.thresholds or default_thresholds(profile.task)
    decision = bless_candidate(candidate, champion, thresholds)
    tags = lineage.blessing_tags(
        blessed=decision.blessed, reason=decision.summary(), baseline_version=champion_version
    )
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    log_json_artifact(client, run_id, decision.to_dict(), "blessing/decision.json")
    return decision


def candidate_version_tags(
    run: TrainingRunRef,
    config: TrainingConfig,
    snapshot: SnapshotRef,
    profile: DataProfile,
    reference_path: str | None,
    champion_version: str | None,
    candidate: EvaluationResult,
    reference_profile: str | None = None,
) -> dict[str, str]:
    """The lineage tags of the version a run registers (see ``lineage.version_lineage_tags``),
    with ``mlops.monitoring.profile`` when its reference profile was kept."""
    tags = lineage.version_lineage_tags(
        run.tags,
        run_id=run.run_id,
        snapshot_digest=snapshot.digest,
        snapshot_path=snapshot.path,
        snapshot_source=snapshot.source,
        snapshot_rows=snapshot.n_rows,
        validation="true" if config.validation.enabled else "skipped",
        reference=reference_path,
        task=profile.task,
        target=config.target,
        baseline_version=champion_version,
        metrics=candidate.overall,
    )
    if reference_profile:
        tags[lineage.REFERENCE_PROFILE] = reference_profile
    return tags


def record_unchanged(client: MlflowClient, run_id: str, champion: ChampionRef) -> None:
    """Tag the run as unchanged from ``champion`` (it registers nothing)."""
    client.set_tag(run_id, lineage.UNCHANGED_FROM, champion.version)


def champion_metrics(champion: ChampionRef) -> dict[str, float]:
    """The champion's test-set metrics, read back from its ``mlops.metric.*`` tags."""
    out = {}
    for name, value in lineage.metrics_from_tags(champion.tags).items():
        try:
            out[name] = float(value)
        except ValueError:  # a hand-edited tag: leave it out
            continue
    return out
