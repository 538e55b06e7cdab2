"""The continuous-training pipeline written as a plain script: the very step functions the flow's
tasks call (``prefect_mlops.modeling.training_run``), in the flow's order, so the same MLflow run,
params, metrics, artifacts and registry writes — but no Prefect (no flow/task runs, no Prefect
logs or artifacts, no transaction) and the frame kept in memory instead of re-read from the
snapshot.

Mirrors ``prefect_mlops.flows.training.continuous_training``; the only glue here is what the
flow itself holds (the run's tags, the version's tags, the registration).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from bench_common import Steps

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import read_snapshot
from prefect_mlops.data.suites import reference_snapshot
from prefect_mlops.data.validation_report import raise_for_failures
from prefect_mlops.modeling import training_run
from prefect_mlops.modeling.unchanged import is_unchanged
from prefect_mlops.monitoring.reference import keep_reference
from prefect_mlops.registry import configure_mlflow, lineage, mlflow_client, register_model_version
from prefect_mlops.registry.tracking import log_sklearn_model
from prefect_mlops.settings import get_settings


def run_plain(config: TrainingConfig, steps: Steps) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the pipeline; returns (outcome summary, the table as read)."""
    with steps.step("setup-run"):
        settings = get_settings()
        configure_mlflow(settings)
        client = mlflow_client(settings)
        run = training_run.open_training_run(config, settings, client, run_name="bench-plain")
        run_id = run.run_id

    with steps.step("ingest-data"):
        df, snapshot = training_run.ingest(config, settings.resolved_snapshot_dir, client, run_id)

    with steps.step("read-champion"):
        champion = training_run.read_champion(client, config.model_name)

    with steps.step("check-unchanged"):
        # A fresh MLOPS_HOME has no champion: the bench always trains.
        assert not is_unchanged(
            champion.tags if champion else None, snapshot.digest, config.config_hash()
        )

    with steps.step("resolve-reference"):
        champion_snapshot = champion.tags.get(lineage.DATA_SNAPSHOT) if champion else None
        reference_path = reference_snapshot(config.validation.reference, champion_snapshot)

    with steps.step("validate-data"):
        profile = training_run.profile_data(df, config)
        reference = read_snapshot(reference_path) if reference_path else None
        outcome = training_run.validate(df, config, reference, reference_path, client, run_id)
        raise_for_failures(outcome, config.data.describe())

    with steps.step("split-data"):
        split = training_run.split(df, config, profile, client, run_id)

    with steps.step("train-model"):
        trained = training_run.train(df, config, profile, split, client, run_id)

    with steps.step("evaluate-model"):
        candidate = training_run.evaluate(
            df, config, profile, split, trained.model, "candidate", client, run_id
        )

    with steps.step("load-champion"):
        champion_eval = None
        if champion is not None:
            champion_model = training_run.load_champion_model(config.model_name, champion)
            champion_eval = training_run.evaluate(
                df, config, profile, split, champion_model, "champion", client, run_id
            )

    with steps.step("bless-candidate"):
        champion_version = champion.version if champion else None
        decision = training_run.bless(
            config, profile, candidate, champion_eval, champion_version, client, run_id
        )

    with steps.step("log-model"):
        example = df.head(1000)[profile.features.columns]
        model_uri = log_sklearn_model(run_id, trained.model, example)

    with steps.step("keep-reference-profile"):
        _, reference_profile = keep_reference(
            client,
            run_id,
            df,
            split,
            profile.features,
            task=profile.task,
            target=config.target,
            model=trained.model,
            which=config.monitoring.reference,
            test_predictions=candidate.predictions,
        )

    with steps.step("register-model-version"):
        version_tags = training_run.candidate_version_tags(
            run,
            config,
            snapshot,
            profile,
            reference_path,
            champion_version,
            candidate,
            reference_profile,
        )
        run_link = training_run.mlflow_run_link(settings.mlflow_ui_url, run.experiment_id, run_id)
        registered = register_model_version(
            client,
            model_name=config.model_name,
            model_uri=model_uri,
            run_id=run_id,
            tags=version_tags,
            blessed=decision.blessed,
            promote=config.promote,
            reason=decision.summary(),
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
