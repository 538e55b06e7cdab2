"""The continuous-training flow: ingest → validate → split → train → evaluate → bless → register."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from prefect_mlops import events
from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.snapshots import SnapshotRef, forget_snapshots
from prefect_mlops.modeling.training import preflight_checks
from prefect_mlops.modeling.training_run import (
    ChampionRef,
    TrainingRunRef,
    candidate_version_tags,
    champion_metrics,
    mlflow_run_link,
    open_training_run,
)
from prefect_mlops.registry import configure_mlflow, lineage, mlflow_client
from prefect_mlops.secrets import mask_url
from prefect_mlops.settings import Settings, get_settings
from prefect_mlops.tasks.data import (
    check_unchanged,
    ingest_data,
    read_champion,
    resolve_reference,
    validate_data,
)
from prefect_mlops.tasks.events import emit_training_event
from prefect_mlops.tasks.model import (
    bless,
    evaluate_on_test,
    keep_reference_profile,
    load_champion,
    split_data,
    train_model,
)
from prefect_mlops.tasks.registry import assign_aliases, log_model, register_version


class TrainingOutcome(BaseModel):
    """What one continuous-training run produced."""

    model_name: str
    status: Literal["blessed", "not_blessed", "unchanged"] = Field(
        description="'unchanged': the champion was trained on the same data with the same "
        "config, so nothing was trained or registered (version is then the champion's)."
    )
    version: str = Field(description="The registered model version (unchanged: the champion).")
    aliases: list[str] = Field(description="Aliases the new version received.")
    reason: str = Field(description="The blessing decision (or why unchanged) in words.")
    champion_before: str | None = Field(description="Champion version before this run.")
    run_id: str = Field(description="MLflow run id.")
    experiment_id: str
    metrics: dict[str, float] = Field(
        description="Candidate test-set metrics (unchanged: the champion's)."
    )
    snapshot_digest: str
    snapshot_path: str
    tracking_uri: str = Field(description="The MLflow tracking store (password masked).")


@flow(
    name="continuous-training",
    description="Ingest, validate (GX), split, train + tune, evaluate against the champion, "
    "bless and register a scikit-learn model in MLflow with full lineage; a run on the "
    "champion's own data and config registers nothing ('unchanged').",
)
def continuous_training(
    config: TrainingConfig,
    trigger: events.RetrainTrigger | dict[str, Any] | None = None,
) -> TrainingOutcome:
    """Train a candidate, compare it with the champion and register it in MLflow; emits
    ``mlops.model.blessed`` or ``mlops.model.not_blessed`` for the registered version (nothing
    when unchanged); returns what happened.

    Args:
        config: The training configuration.
        trigger: The event that asked for this run (``event``, ``version``, ``reason``, as a
            deployment trigger templates them from the event); recorded as the run's
            ``mlops.trigger.*`` tags and in the blessing event. None: a scheduled or manual run.

    Raises the package's errors (ConfigError — a trigger lacking a field, before anything is
    read or trained —, DataValidationError, ..., PrefectAPIError when the event cannot be sent).
    """
    asked_by = events.parse_trigger(trigger, config.model_name)
    preflight_checks(config)
    settings = get_settings()
    configure_mlflow(settings)
    client = mlflow_client(settings)
    run = open_training_run(
        config,
        settings,
        client,
        run_name=flow_run.name,
        flow_run_id=str(flow_run.id or ""),
        flow_run_url=flow_run.ui_url,
    )
    try:
        if asked_by is not None:
            run = _tag_trigger(client, run, asked_by)
        outcome = _train_and_register(config, settings, run)
    except BaseException:
        client.set_terminated(run.run_id, "FAILED")
        raise
    finally:
        forget_snapshots()
    client.set_terminated(run.run_id, "FINISHED")
    # After the MLflow run is finished: a version the registry holds is announced, and an
    # event that cannot be sent fails this flow run without calling the training run failed.
    emit_training_event(outcome, asked_by)
    return outcome


def _tag_trigger(
    client: Any, run: TrainingRunRef, trigger: events.RetrainTrigger
) -> TrainingRunRef:
    """Record on the run (and, through its tags, on the version it registers) which event asked
    for it; returns the run with those tags."""
    from mlflow.entities import RunTag

    tags = lineage.trigger_tags(event=trigger.event, version=trigger.version, reason=trigger.reason)
    client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    get_run_logger().info(
        "Asked for by %s%s: %s",
        trigger.event,
        f" (v{trigger.version})" if trigger.version else "",
        trigger.reason,
    )
    return TrainingRunRef(run.experiment_id, run.run_id, {**run.tags, **tags})


def _train_and_register(
    config: TrainingConfig, settings: Settings, run: TrainingRunRef
) -> TrainingOutcome:
    run_id = run.run_id
    snapshot = ingest_data(config, run_id)
    champion = read_champion(config)
    unchanged = check_unchanged(config, snapshot, champion, run_id)
    if unchanged and champion is not None:
        return _report_unchanged(config, settings, champion, snapshot, unchanged, run)
    reference = resolve_reference(config, champion)
    profile = validate_data(config, snapshot, reference, run_id)
    split = split_data(config, snapshot, profile, run_id)
    trained = train_model(config, snapshot, profile, split, run_id)
    candidate = evaluate_on_test(
        config, snapshot, profile, split, trained.model, run_id, "candidate"
    )
    champion_version = champion.version if champion else None
    champion_eval = (
        evaluate_on_test(
            config, snapshot, profile, split, load_champion(config, champion), run_id, "champion"
        )
        if champion
        else None
    )
    decision = bless(config, profile, candidate, champion_eval, champion_version, run_id)
    model_uri = log_model(run_id, trained.model, snapshot, profile.features.columns)
    reference_profile = keep_reference_profile(
        config, snapshot, profile, split, trained.model, candidate, run_id
    )
    reason = decision.summary()
    version_tags = candidate_version_tags(
        run, config, snapshot, profile, reference, champion_version, candidate, reference_profile
    )
    run_link = mlflow_run_link(settings.mlflow_ui_url, run.experiment_id, run_id)
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
        experiment_id=run.experiment_id,
        metrics=candidate.overall,
        snapshot_digest=snapshot.digest,
        snapshot_path=snapshot.path,
        tracking_uri=mask_url(settings.resolved_tracking_uri),
    )
    _publish(outcome, settings)
    return outcome


def _report_unchanged(
    config: TrainingConfig,
    settings: Settings,
    champion: ChampionRef,
    snapshot: SnapshotRef,
    reason: str,
    run: TrainingRunRef,
) -> TrainingOutcome:
    outcome = TrainingOutcome(
        model_name=config.model_name,
        status="unchanged",
        version=champion.version,
        aliases=[],
        reason=reason,
        champion_before=champion.version,
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        metrics=champion_metrics(champion),
        snapshot_digest=snapshot.digest,
        snapshot_path=snapshot.path,
        tracking_uri=mask_url(settings.resolved_tracking_uri),
    )
    _publish(outcome, settings)
    return outcome


def _publish(outcome: TrainingOutcome, settings: Settings) -> None:
    """Say what the run did: one log line and the summary and MLflow-run artifacts."""
    if outcome.status == "unchanged":
        get_run_logger().info(
            "%s v%s stays champion; nothing registered, no alias moved",
            outcome.model_name,
            outcome.version,
        )
    else:
        get_run_logger().info(
            "Registered %s v%s (%s); aliases given: %s",
            outcome.model_name,
            outcome.version,
            outcome.status.replace("_", " "),
            ", ".join(outcome.aliases) or "none",
        )
    publish_artifacts(outcome, settings)


def publish_artifacts(outcome: TrainingOutcome, settings: Settings) -> None:
    """The summary and MLflow-run artifacts of ``outcome`` on the current flow run."""
    run_link = mlflow_run_link(settings.mlflow_ui_url, outcome.experiment_id, outcome.run_id)
    create_markdown_artifact(
        markdown=summary_markdown(outcome, run_link, settings.mlflow_ui_url),
        key="training-summary",
        description=f"Continuous training of {outcome.model_name}",
    )
    create_link_artifact(link=run_link, link_text=f"MLflow run {outcome.run_id}", key="mlflow-run")


def summary_markdown(outcome: TrainingOutcome, run_link: str, mlflow_ui_url: str) -> str:
    """The run's summary for the Prefect UI: decision, version, aliases, links into the MLflow
    UI at ``mlflow_ui_url`` and the test metrics rounded to 4 decimals."""
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in outcome.metrics.items())
    aliases = ", ".join(outcome.aliases) or "none"
    ui = mlflow_ui_url.rstrip("/")
    version_link = f"{ui}/#/models/{outcome.model_name}/versions/{outcome.version}"
    heading = "unchanged" if outcome.status == "unchanged" else f"v{outcome.version}"
    metrics_title = "champion test value" if outcome.status == "unchanged" else "test value"
    return f"""# Continuous training: {outcome.model_name} {heading}

**Decision:** {outcome.status.replace("_", " ")} — {outcome.reason}

| | |
|---|---|
| Model version | [`models:/{outcome.model_name}/{outcome.version}`]({version_link}) |
| Aliases given | {aliases} |
| Champion before | {outcome.champion_before or "none (first model)"} |
| MLflow run | [{outcome.run_id}]({run_link}) |
| Data snapshot | `{outcome.snapshot_path}` (sha256 `{outcome.snapshot_digest[:16]}…`) |

| metric | {metrics_title} |
|---|---|
{metrics}

Open the MLflow UI at [{ui}]({ui}) (tracking store `{outcome.tracking_uri}`).
"""


@flow(
    name="continuous-training-from-file",
    description="Continuous training with the config read from a YAML file (see `prefect-mlops "
    "init`), so a deployment is changed by editing one file.",
)
def continuous_training_from_file(
    config_path: str,
    trigger: events.RetrainTrigger | dict[str, Any] | None = None,
) -> TrainingOutcome:
    """Read ``config_path`` (relative paths resolve against the working directory) and train;
    ``trigger`` as in :func:`continuous_training` (checked before anything is trained).

    The training runs as a subflow; its summary is published on this run too, the one a user
    (or a scheduled deployment) launched."""
    config = TrainingConfig.from_yaml(config_path)
    events.parse_trigger(trigger, config.model_name)
    outcome = continuous_training(config, trigger)
    publish_artifacts(outcome, get_settings())
    return outcome
