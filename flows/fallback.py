"""The champion-fallback flow: a champion failing in production (``mlops.model.failing``) makes
way for the previous healthy champion, or is alerted when there is none."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from prefect_mlops import events
from prefect_mlops.deployment.fallback import FallbackAction, FallbackDecision, fall_back
from prefect_mlops.registry import mlflow_client
from prefect_mlops.settings import get_settings


class FallbackOutcome(BaseModel):
    """What one fallback run did."""

    model_name: str
    failing_version: str
    action: FallbackAction = Field(
        description="rolled_back: champion moved back to target; stale: the failing version "
        "is not the champion, nothing moved; no_target: no healthy earlier champion, the "
        "failing champion stays (alerted)."
    )
    champion_before: str | None
    champion_after: str | None
    reason: str


@flow(
    name="champion-fallback",
    description="Move a model's champion back to the previous champion that never failed when "
    "the champion fails in production (mlops.model.failing: error rate, p99, live quality); "
    "a stale event moves nothing, a model with no healthy earlier champion is alerted.",
)
def champion_fallback(
    model_name: str, version: str | None = None, reason: str = "run by hand"
) -> FallbackOutcome:
    """Fall back from failing ``version`` of ``model_name`` (None: the current champion);
    ``reason`` holds the failing figures and goes into the alias history. Returns what was done.

    Raises ModelNotFoundError for a model that is not registered, PrefectAPIError when the
    ``mlops.model.rolled_back`` event of a done fallback cannot be sent.
    """
    logger = get_run_logger()
    decision = fall_back(mlflow_client(get_settings()), model_name, version, reason)
    moved = decision.action == "rolled_back"
    outcome = FallbackOutcome(
        model_name=model_name,
        failing_version=decision.failing_version,
        action=decision.action,
        champion_before=decision.champion_before,
        champion_after=decision.target if moved else decision.champion_before,
        reason=decision.reason,
    )
    if decision.action == "no_target":
        logger.warning("ALERT %s", decision.summary())
    else:
        logger.info("%s", decision.summary())
    create_markdown_artifact(
        key="champion-fallback",
        description=f"Champion fallback of {model_name}",
        markdown=summary_markdown(decision),
    )
    if moved:
        events.emit(
            events.MODEL_ROLLED_BACK,
            model_name,
            version=decision.failing_version,
            reason=decision.reason,
            payload={"previous_champion": decision.target, "strategy": "fallback"},
        )
    return outcome


def summary_markdown(decision: FallbackDecision) -> str:
    """The run's artifact: what happened, and for ``no_target`` what a person must do."""
    title = {
        "rolled_back": "champion moved back",
        "stale": "nothing moved (stale event)",
        "no_target": "ALERT: failing champion kept",
    }[decision.action]
    after = decision.target if decision.action == "rolled_back" else decision.champion_before
    text = (
        f"# {decision.model_name}: {title}\n\n"
        f"- failing version: v{decision.failing_version}\n"
        f"- champion before: {decision.champion_before or 'none'}\n"
        f"- champion after: {after or 'none'}\n"
        f"- reason: {decision.reason}\n"
    )
    if decision.action == "no_target":
        text += (
            "\nNo earlier champion that never failed exists, so nothing was moved. Train or "
            "promote a healthy version (`prefect-mlops train`, `prefect-mlops deploy`), or "
            "take the service down.\n"
        )
    return text
