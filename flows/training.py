"""The continuous-training flow: ingest → validate → split → train → evaluate → bless → register."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import forget_snapshots
from prefect_mlops.modeling.training import preflight_checks
from prefect_mlops.registry import (
    code_version,
    configure_mlflow,
    ensure_experiment,
    lineage,
    mlflow_client,
)
from prefect_mlops.registry.tracking import start_training_run
from prefect_mlops.settings import Settings, get_settings
from prefect_mlops.tasks.data import ingest_data, resolve_reference, validate_data
from prefect_mlops.tasks.model import (
    bless,
    evaluate_on_test,
    load_champion,
    split_data,
    train_model,
)
from prefect_mlops.tasks.registry import assign_aliases, log_model, register_version


class TrainingOutcome(BaseModel):
    """What one continuous-training run produced."""

    model_name: str
    status: Literal["blessed", "not_blessed"]
    version: str = Field(description="The registered model version.")
    aliases: list[str] = Field(description="Aliases the new version received.")
    reason: str = Field(description="The blessing decision in words.")
    champion_before: str | None = Field(description="Champion version before this run.")
    run_id: str = Field(description="MLflow run id.")
    experiment_id: str
    metrics: dict[str, float] = Field(description="Candidate test-set metrics.")
    snapshot_digest: str
    snapshot_path: str
    tracking_uri: str


@flow(
    name="continuous-training",
    description="Ingest, validate (GX), split, train + tune, evaluate against the champion, "
    "bless and register a scikit-learn model in MLflow with full lineage.",
)
def continuous_training(config: TrainingConfig) -> TrainingOutcome:
    """Train a candidate, compare it with the champion and register it in MLflow."""
    preflight_checks(config)
    settings = get_settings()
    configure_mlflow(settings)
    client = mlflow_client(settings)
    experiment_id = ensure_experiment(
        client, config.resolved_experiment_name, settings.resolved_artifact_location
    )
    run_tags = lineage.training_run_tags(
        code_version=code_version(),
        config_hash=config.config_hash(),
        model_name=config.model_name,
        flow_run_id=str(flow_run.id or ""),
        flow_run_url=flow_run.ui_url,
        extra=config.tags,
    )
    run_id = start_training_run(client, experiment_id, flow_run.name, run_tags)
    client.log_dict(run_id, config.model_dump(mode="json"), "config/training_config.json")
    try:
        outcome = _train_and_register(config, settings, run_id, experiment_id, run_tags)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    finally:
        forget_snapshots()
    client.set_terminated(run_id, "FINISHED")
    return outcome


def _train_and_register(
    config: TrainingConfig,
    settings: Settings,
    run_id: str,
    experiment_id: str,
    run_tags: dict[str, str],
) -> TrainingOutcome:
    snapshot = ingest_data(config, run_id)
    reference = resolve_reference(config)
    profile = validate_data(config, snapshot, reference, run_id)
    split = split_data(config, snapshot, profile, run_id)
    trained = train_model(config, snapshot, profile, split, run_id)
    candidate = evaluate_on_test(
        config, snapshot, profile, split, trained.model, run_id, "candidate"
    )
    champion = load_champion(config)
    champion_version = champion[0] if champion else None
    champion_eval = (
        evaluate_on_test(config, snapshot, profile, split, champion[1], run_id, "champion")
        if champion
        else None
    )
    decision = bless(config, profile, candidate, champion_eval, champion_version, run_id)
    model_uri = log_model(run_id, trained.model, snapshot, profile.features.columns)
    reason = decision.summary()
    version_tags = lineage.version_lineage_tags(
        run_tags,
        run_id=run_id,
        snapshot_digest=snapshot.digest,
        snapshot_path=snapshot.path,
        snapshot_source=snapshot.source,
        snapshot_rows=snapshot.n_rows,
        validation="true" if config.validation.enabled else "skipped",
        reference=reference,
        task=profile.task,
        target=config.target,
        baseline_version=champion_version,
        metrics=candidate.overall,
    )
    run_link = f"{settings.mlflow_ui_url}/#/experiments/{experiment_id}/runs/{run_id}"
    with transaction():
        version = register_version(
            config.model_name, model_uri, run_id, version_tags, decision.blessed, reason, run_link
        )
        moves = assign_aliases(config.model_name, version, decision.blessed, config.promote, reason)
    outcome = TrainingOutcome(
        model_name=config.model_name,
        status="blessed" if decision.blessed else "not_blessed",
        version=version,
        aliases=[m.alias for m in moves],
        reason=reason,
        champion_before=champion_version,
        run_id=run_id,
        experiment_id=experiment_id,
        metrics=candidate.overall,
        snapshot_digest=snapshot.digest,
        snapshot_path=snapshot.path,
        tracking_uri=settings.resolved_tracking_uri,
    )
    create_markdown_artifact(
        markdown=summary_markdown(outcome, run_link),
        key="training-summary",
        description=f"Continuous training of {config.model_name}",
    )
    create_link_artifact(link=run_link, link_text=f"MLflow run {run_id}", key="mlflow-run")
    return outcome


def summary_markdown(outcome: TrainingOutcome, run_link: str) -> str:
    """The run's summary for the Prefect UI."""
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in outcome.metrics.items())
    aliases = ", ".join(outcome.aliases) or "none"
    return f"""# Continuous training: {outcome.model_name} v{outcome.version}

**Decision:** {outcome.status.replace("_", " ")} — {outcome.reason}

| | |
|---|---|
| Model version | `models:/{outcome.model_name}/{outcome.version}` |
| Aliases given | {aliases} |
| Champion before | {outcome.champion_before or "none (first model)"} |
| MLflow run | [{outcome.run_id}]({run_link}) |
| Data snapshot | `{outcome.snapshot_path}` (sha256 `{outcome.snapshot_digest[:16]}…`) |

| metric | test value |
|---|---|
{metrics}

See it in the MLflow UI: `mlflow ui --backend-store-uri {outcome.tracking_uri}`
"""


@flow(
    name="continuous-training-from-file",
    description="Continuous training with the config read from a YAML file (see `prefect-mlops "
    "init`), so a deployment is changed by editing one file.",
)
def continuous_training_from_file(config_path: str) -> TrainingOutcome:
    """Read ``config_path`` (relative paths resolve against the working directory) and train."""
    return continuous_training(TrainingConfig.from_yaml(config_path))
