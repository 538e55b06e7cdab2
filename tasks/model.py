"""Tasks of the model steps: split, train + tune, evaluate (candidate and champion), bless."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, load_snapshot, row_hashes
from prefect_mlops.data.splitting import SplitIndices, split_frame
from prefect_mlops.modeling.blessing import BlessingDecision, bless_candidate, default_thresholds
from prefect_mlops.modeling.evaluation import EvaluationResult, evaluate_model
from prefect_mlops.modeling.training import build_estimator, build_pipeline, fit_model
from prefect_mlops.registry import lineage, mlflow_client
from prefect_mlops.registry.tracking import log_frame_artifact, log_json_artifact, log_text_artifact
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.data import DataProfile


@dataclass
class TrainedModel:
    """A fitted pipeline with what the search found."""

    model: Any
    best_params: dict[str, Any]
    best_cv_score: float | None


@task(name="split-data", timeout_seconds=1800, cache_policy=NO_CACHE)
def split_data(
    config: TrainingConfig, snapshot: SnapshotRef, profile: DataProfile, run_id: str
) -> SplitIndices:
    """Split the snapshot deterministically; record sizes, seed and each row's hash and part."""
    df = load_snapshot(snapshot.path)
    split = split_frame(
        df,
        config.split,
        target=config.target,
        task=profile.task,
        timestamp_column=config.data.timestamp_column,
    )
    client = mlflow_client(get_settings())
    for key, value in {
        "split.method": config.split.method,
        "split.seed": config.split.seed,
        **{f"split.{part}_rows": n for part, n in split.sizes().items()},
    }.items():
        client.log_param(run_id, key, value)
    parts = pd.Series("train", index=range(len(df)))
    parts.iloc[split.validation] = "validation"
    parts.iloc[split.test] = "test"
    rows = pd.DataFrame({"row_hash": row_hashes(df).to_numpy(), "split": parts.to_numpy()})
    log_frame_artifact(client, run_id, rows, "split/rows.parquet")
    return split


@task(name="train-model", timeout_seconds=4 * 3600, cache_policy=NO_CACHE)
def train_model(
    config: TrainingConfig,
    snapshot: SnapshotRef,
    profile: DataProfile,
    split: SplitIndices,
    run_id: str,
) -> TrainedModel:
    """Fit the configured estimator inside the preprocessing pipeline, with the optional search."""
    df = load_snapshot(snapshot.path)
    train = df.iloc[split.train]
    features = profile.features
    estimator = build_estimator(config, profile.task, config.split.seed)
    pipeline = build_pipeline(features, estimator)
    fitted = fit_model(
        pipeline,
        train[features.columns],
        train[config.target],
        task=profile.task,
        search=config.estimator.search,
        seed=config.split.seed,
    )
    client = mlflow_client(get_settings())
    client.log_param(run_id, "task", profile.task)
    client.log_param(
        run_id, "estimator", type(estimator).__module__ + "." + type(estimator).__name__
    )
    client.log_param(run_id, "features.numeric", ",".join(features.numeric)[:6000])
    client.log_param(run_id, "features.categorical", ",".join(features.categorical)[:6000])
    for key, value in config.estimator.params.items():
        client.log_param(run_id, f"model.{key}", value)
    for key, value in fitted.best_params.items():
        client.log_param(run_id, f"best.{key}", value)
    if fitted.best_cv_score is not None:
        client.log_metric(run_id, "best_cv_score", fitted.best_cv_score)
    if fitted.cv_results is not None:
        cv = fitted.cv_results.drop(columns=["params"], errors="ignore").astype(str)
        log_text_artifact(client, run_id, cv.to_csv(index=False), "search/cv_results.csv")
    if len(split.validation):
        valid = df.iloc[split.validation]
        val_eval = evaluate_model(
            fitted.model, valid[features.columns], valid[config.target], profile.task
        )
        for name, value in val_eval.overall.items():
            client.log_metric(run_id, f"validation_{name}", value)
    return TrainedModel(
        model=fitted.model, best_params=fitted.best_params, best_cv_score=fitted.best_cv_score
    )


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
    """
    df = load_snapshot(snapshot.path)
    test = df.iloc[split.test]
    result = evaluate_model(
        model,
        test[profile.features.columns],
        test[config.target],
        profile.task,
        slice_frame=test,
        slice_columns=config.slices,
    )
    client = mlflow_client(get_settings())
    prefix = "test_" if role == "candidate" else f"{role}_test_"
    for key, value in result.flat_metrics(prefix=prefix).items():
        client.log_metric(run_id, key, value)
    log_json_artifact(client, run_id, result.to_dict(), f"evaluation/{role}.json")
    if role == "candidate":
        predictions = test[profile.features.columns].copy()
        predictions["prediction"] = result.predictions
        log_frame_artifact(client, run_id, predictions, "predictions/test.parquet")
    return result


@task(name="load-champion", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load_champion(config: TrainingConfig) -> tuple[str, Any] | None:
    """The current champion (version, model), or None on a first run."""
    from prefect_mlops.registry import CHAMPION, get_alias_version
    from prefect_mlops.registry.tracking import load_model

    champion = get_alias_version(mlflow_client(get_settings()), config.model_name, CHAMPION)
    if champion is None:
        return None
    return str(champion.version), load_model(f"models:/{config.model_name}/{champion.version}")


@task(name="bless-candidate", cache_policy=NO_CACHE)
def bless(
    config: TrainingConfig,
    profile: DataProfile,
    candidate: EvaluationResult,
    champion: EvaluationResult | None,
    champion_version: str | None,
    run_id: str,
) -> BlessingDecision:
    """Model validation: compare the candidate with thresholds and the champion."""
    thresholds = config.thresholds or default_thresholds(profile.task)
    decision = bless_candidate(candidate, champion, thresholds)
    client = mlflow_client(get_settings())
    client.set_tag(run_id, lineage.BLESSED, str(decision.blessed).lower())
    client.set_tag(run_id, lineage.BLESSING_REASON, decision.summary()[:4900])
    client.set_tag(run_id, lineage.BLESSING_BASELINE, champion_version or "none")
    log_json_artifact(client, run_id, decision.to_dict(), "blessing/decision.json")
    create_markdown_artifact(
        markdown=decision.markdown(),
        key="model-blessing",
        description=f"Blessing of the {config.model_name} candidate",
    )
    rows = [
        {"metric": m, "candidate": v, "champion": (champion.overall.get(m) if champion else None)}
        for m, v in candidate.overall.items()
    ]
    create_table_artifact(table=rows, key="model-metrics", description="Test-set metrics")
    return decision
