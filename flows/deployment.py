"""The model-deployment flow: infra-validate a candidate in a real BentoML server, then roll it
out blue-green, canary or shadow, promoting or rolling back automatically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from pydantic import BaseModel, Field

from prefect_mlops.deployment.canary import CanaryVerdict
from prefect_mlops.deployment.decisions import Decision, Result, aborted_reason
from prefect_mlops.deployment.labels import LabelSpec
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import ShadowVerdict
from prefect_mlops.registry import configure_mlflow
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.deployment import (
    check_labels,
    decide,
    infra_validate,
    record_decision,
    resolve_candidate,
    roll_back,
    start_rollout,
    watch_canary,
    watch_shadow,
)
from prefect_mlops.tasks.events import emit_deployment_event


class DeploymentOutcome(BaseModel):
    """What one deployment run decided."""

    model_name: str
    version: str
    strategy: str
    result: Result = Field(
        description="promoted: champion moved; rolled_back: champion kept; shadowed: observed only."
    )
    reason: str
    infra_validation: str


@flow(
    name="model-deployment",
    description="Infra-validate a blessed candidate in a real BentoML server, then blue-green, "
    "canary or shadow rollout with automatic rollback; every alias move is recorded.",
)
def model_deployment(config: DeploymentConfig) -> DeploymentOutcome:
    """Deploy ``config.version`` (default: the challenger) of ``config.model_name``; emits
    ``mlops.model.promoted`` when it becomes champion, ``mlops.model.rolled_back`` when its
    rollout is rolled back (also one that could not be watched). Raises the package's errors
    (InfraValidationError, ..., PrefectAPIError when the event cannot be sent)."""
    # `models:/` URIs (loading a candidate to say why the live service cannot) resolve through
    # MLflow's module-level stores: point them at the configured ones, as training does.
    configure_mlflow(get_settings())
    version = resolve_candidate(config)
    labels = check_labels(config, version)
    report = infra_validate(config, version)
    verdict = roll_out(config, version, labels)
    decision = decide(config, report, verdict)
    move = record_decision(config.model_name, version, decision)
    emit_deployment_event(config.model_name, version, config.strategy, decision, verdict, move)
    outcome = DeploymentOutcome(
        model_name=config.model_name, version=version, strategy=config.strategy,
        result=decision.result, reason=decision.reason, infra_validation=report.summary(),
    )  # fmt: skip
    publish_outcome(outcome)
    return outcome


def roll_out(
    config: DeploymentConfig, version: str, labels: LabelSpec | None
) -> CanaryVerdict | ShadowVerdict | None:
    """Blue-green: nothing to watch (None). Canary / shadow: start the rollout and watch it to
    its verdict; a rollout that cannot be watched is rolled back before the error is raised."""
    if config.strategy == "blue-green":
        return None
    rollout = start_rollout(config, version)
    with _rolled_back_on_failure(config, version):
        if config.strategy == "canary":
            return watch_canary(config, version, rollout, labels)
        return watch_shadow(config, version, rollout)


@contextmanager
def _rolled_back_on_failure(config: DeploymentConfig, version: str) -> Iterator[None]:
    """A rollout that cannot be watched (labels gone, registry down, ...) is ended, so all
    traffic goes back to the champion, before the error is raised."""
    try:
        yield
    except Exception as exc:
        reason = aborted_reason(config.strategy, exc)
        roll_back(config.model_name, version, reason)
        _emit_aborted(config, version, reason)
        raise


def _emit_aborted(config: DeploymentConfig, version: str, reason: str) -> None:
    """``mlops.model.rolled_back`` for a rollout that could not be watched; the error that
    ended it stays the run's error (an event that cannot be sent is logged as an error)."""
    decision = Decision("roll_back", "rolled_back", reason, reason)
    try:
        emit_deployment_event(config.model_name, version, config.strategy, decision, None, None)
    except Exception as exc:  # the rollout's own error is what the run must report
        get_run_logger().error("cannot emit the rollback of v%s: %s", version, exc)


def model_version_link(model_name: str, version: str) -> str:
    """The version's page in the MLflow UI at ``settings.mlflow_ui_url``."""
    base = get_settings().mlflow_ui_url.rstrip("/")
    return f"{base}/#/models/{quote(model_name, safe='')}/versions/{version}"


def summary_markdown(outcome: DeploymentOutcome, link: str) -> str:
    """The run's summary for the Prefect UI."""
    return (
        f"# {outcome.model_name} v{outcome.version}: {outcome.result.replace('_', ' ')}\n\n"
        f"- strategy: {outcome.strategy}\n- reason: {outcome.reason}\n"
        f"- infra-validation: {outcome.infra_validation}\n"
        f"- model version: [models:/{outcome.model_name}/{outcome.version}]({link})\n"
    )


def publish_outcome(outcome: DeploymentOutcome) -> None:
    """The summary and the MLflow link, as artifacts of the current flow run: call it in the run
    the user launched (a parent flow calls it again when this flow ran as its subflow)."""
    link = model_version_link(outcome.model_name, outcome.version)
    create_markdown_artifact(
        key="model-deployment",
        description=f"Deployment of {outcome.model_name} v{outcome.version}",
        markdown=summary_markdown(outcome, link),
    )
    create_link_artifact(
        key="mlflow-model-version",
        link=link,
        link_text=f"MLflow: {outcome.model_name} v{outcome.version}",
        description=f"The deployed candidate {outcome.model_name} v{outcome.version} in MLflow",
    )
