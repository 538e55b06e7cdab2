"""The continuous-training pipeline written as a plain script: the package's own library calls, in
the flow's order, with the same MLflow run, params, metrics, artifacts and registry writes, but no
Prefect (no flow/task runs, no Prefect artifacts, no transaction) and the frame kept in memory.

Mirrors ``prefect_mlops.flows.training.continuous_training`` and ``prefect_mlops.tasks.*``; it
re-implements nothing of the package, only the glue the tasks hold.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from bench_common import Steps

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import row_hashes, write_snapshot
from prefect_mlops.data.sources import read_table
from prefect_mlops.data.splitting import split_frame
from prefect_mlops.data.validation import infer_suite, raise_for_failures, validate_frame
from prefect_mlops.modeling.blessing import bless_candidate, default_thresholds
from prefect_mlops.modeling.evaluation import evaluate_model, infer_task
from prefect_mlops.modeling.training import (
    build_estimator,
    build_pipeline,
    fit_model,
    resolve_features,
)
from prefect_mlops.registry import (
    CHAMPION,
    code_version,
    configure_mlflow,
    ensure_experiment,
    get_alias_version,
    lineage,
    mlflow_client,
    register_model_version,
)
from prefect_mlops.registry.tracking import (
    log_frame_artifact,
    log_json_artifact,
    log_sklearn_model,
    log_snapshot_input,
    start_training_run,
)
from prefect_mlops.settings import get_settings


def run_plain(config: TrainingConfig, steps: Steps) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the pipeline; returns (outcome summary, the table as read)."""
    with steps.step("setup-run"):
        settings = get_settings()
        configure_mlflow(settings)
        client = mlflow_client(settings)
        experiment_id = ensure_experiment(
            client, config.resolved_experiment_name, settings.resolved_artifact_location
        )
        run_tags = {
            lineage.CODE_VERSION: code_version(),
            lineage.CONFIG_HASH: config.config_hash(),
            lineage.FLOW_RUN_ID: "",
            lineage.FLOW_RUN_URL: "",
            lineage.MODEL_NAME: config.model_name,
            **config.tags,
        }
        run_id = start_training_run(client, experiment_id, "bench-plain", run_tags)
        client.log_dict(run_id, config.model_dump(mode="json"), "config/training_config.json")

    source = config.data.describe()
    with steps.step("ingest-data"):
        df = read_table(config.data)
        snapshot = write_snapshot(df, settings.resolved_snapshot_dir, source)
        log_snapshot_input(run_id, df, snapshot, target=config.target, context="training")
        client.log_param(run_id, "data.source", source[:500])
        client.log_param(run_id, "data.digest", snapshot.digest)
        client.log_param(run_id, "data.rows", snapshot.n_rows)
        client.log_param(run_id, "data.columns", snapshot.n_columns)

    with steps.step("resolve-reference"):
        champion = get_alias_version(client, config.model_name, CHAMPION)
        reference_path = None  # a fresh MLOPS_HOME has no champion: infer from the current data
        assert champion is None

    with steps.step("validate-data"):
        features = resolve_features(df, config, source)
        task = infer_task(df[config.target]) if config.task == "auto" else config.task
        columns = [c for c in [*features.columns, config.target] if c in df.columns]
        suite = infer_suite(
            df, config.validation, name=f"{config.model_name}-suite", columns=columns
        )
        outcome = validate_frame(df, suite, data_name=source)
        log_json_artifact(client, run_id, suite, "validation/expectation_suite.json")
        log_json_artifact(client, run_id, outcome.result, "validation/gx_result.json")
        client.log_metric(run_id, "validation_failed_expectations", len(outcome.failures))
        client.set_tag(run_id, lineage.VALIDATION_SUCCESS, str(outcome.success).lower())
        client.set_tag(run_id, lineage.VALIDATION_REFERENCE, reference_path or "current data")
        raise_for_failures(outcome, source)

    with steps.step("split-data"):
        split = split_frame(
            df,
            config.split,
            target=config.target,
            task=task,
            timestamp_column=config.data.timestamp_column,
        )
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
        del parts, rows

    with steps.step("train-model"):
        train = df.iloc[split.train]
        estimator = build_estimator(config, task, config.split.seed)
        pipeline = build_pipeline(features, estimator)
        fitted = fit_model(
            pipeline,
            train[features.columns],
            train[config.target],
            task=task,
            search=config.estimator.search,
            seed=config.split.seed,
        )
        del train
        model = fitted.model
        client.log_param(run_id, "task", task)
        client.log_param(
            run_id, "estimator", type(estimator).__module__ + "." + type(estimator).__name__
        )
        client.log_param(run_id, "features.numeric", ",".join(features.numeric)[:6000])
        client.log_param(run_id, "features.categorical", ",".join(features.categorical)[:6000])
        for key, value in config.estimator.params.items():
            client.log_param(run_id, f"model.{key}", value)
        if len(split.validation):
            valid = df.iloc[split.validation]
            val_eval = evaluate_model(model, valid[features.columns], valid[config.target], task)
            for name, value in val_eval.overall.items():
                client.log_metric(run_id, f"validation_{name}", value)
            del valid

    with steps.step("evaluate-model"):
        test = df.iloc[split.test]
        candidate = evaluate_model(
            model,
            test[features.columns],
            test[config.target],
            task,
            slice_frame=test,
            slice_columns=config.slices,
        )
        for key, value in candidate.flat_metrics(prefix="test_").items():
            client.log_metric(run_id, key, value)
        log_json_artifact(client, run_id, candidate.to_dict(), "evaluation/candidate.json")
        predictions = test[features.columns].copy()
        predictions["prediction"] = model.predict(test[features.columns])
        log_frame_artifact(client, run_id, predictions, "predictions/test.parquet")
        del test, predictions

    with steps.step("load-champion"):
        assert get_alias_version(client, config.model_name, CHAMPION) is None

    with steps.step("bless-candidate"):
        decision = bless_candidate(candidate, None, config.thresholds or default_thresholds(task))
        client.set_tag(run_id, lineage.BLESSED, str(decision.blessed).lower())
        client.set_tag(run_id, lineage.BLESSING_REASON, decision.summary()[:4900])
        client.set_tag(run_id, lineage.BLESSING_BASELINE, "none")
        log_json_artifact(client, run_id, decision.to_dict(), "blessing/decision.json")

    with steps.step("log-model"):
        model_uri = log_sklearn_model(run_id, model, df.head(1000)[features.columns])

    with steps.step("register-model-version"):
        reason = decision.summary()
        version_tags = {
            **run_tags,
            lineage.DATA_DIGEST: snapshot.digest,
            lineage.DATA_SNAPSHOT: snapshot.path,
            lineage.DATA_SOURCE: snapshot.source[:4900],
            lineage.DATA_ROWS: str(snapshot.n_rows),
            lineage.VALIDATION_SUCCESS: "true" if config.validation.enabled else "skipped",
            lineage.VALIDATION_RESULT: f"runs:/{run_id}/validation/gx_result.json",
            lineage.VALIDATION_REFERENCE: reference_path or "current data",
            lineage.TASK: task,
            lineage.BASELINE_VERSION: "none",
            lineage.MLFLOW_RUN_ID: run_id,
            **{lineage.metric_tag(k): f"{v:.6g}" for k, v in candidate.overall.items()},
        }
        run_link = f"{settings.mlflow_ui_url}/#/experiments/{experiment_id}/runs/{run_id}"
        registered = register_model_version(
            client,
            model_name=config.model_name,
            model_uri=model_uri,
            run_id=run_id,
            tags=version_tags,
            blessed=decision.blessed,
            promote=config.promote,
            reason=reason,
            run_link=run_link,
        )
        client.set_terminated(run_id, "FINISHED")

    summary = {
        "status": "blessed" if decision.blessed else "not_blessed",
        "version": registered.version,
        "aliases": registered.aliases,
        "metrics": candidate.overall,
        "snapshot_digest": snapshot.digest,
    }
    return summary, df
