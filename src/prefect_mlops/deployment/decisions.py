"""The deployment decision: from infra-validation and the rollout's verdict to promote, roll
back or shadowed, and what each records in the registry.

================  ==========================================  ===========  ============
strategy          verdict                                     action       result
================  ==========================================  ===========  ============
blue-green        (infra-validation passed)                   promote      promoted
canary            promote                                     promote      promoted
canary            rollback (breach, not served, starved)      roll back    rolled_back
shadow            rollback (not served), or not done          roll back    rolled_back
shadow            done, ``promote_after_shadow`` and rows     promote      promoted
                  compared with agreement ≥ ``min_agreement``
shadow            done otherwise                              roll back    shadowed
================  ==========================================  ===========  ============

"Roll back" ends the rollout (every request back to the champion) and records the champion
kept; a shadowed version is rolled back the same way: it was only observed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prefect_mlops import registry
from prefect_mlops.deployment.canary import CanaryVerdict
from prefect_mlops.deployment.infra_validation import InfraValidationReport
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import ShadowVerdict
from prefect_mlops.errors import ConfigError
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

Action = Literal["promote", "roll_back"]
Result = Literal["promoted", "rolled_back", "shadowed"]

REASON_LIMIT = 4900
"""Longest reason kept on a registry tag (MLflow caps tag values at 5000 characters)."""


@dataclass(frozen=True)
class Decision:
    """What a deployment does with its candidate: ``action`` on the registry (its
    ``move_reason`` goes to the alias history and the version's tags), ``result`` and
    ``reason`` for the people reading the outcome."""

    action: Action
    result: Result
    reason: str
    move_reason: str


def decide_blue_green(report: InfraValidationReport) -> Decision:
    """Promote after infra-validation (a failed one never reaches a decision)."""
    reason = f"blue-green after {report.summary()}"
    return Decision("promote", "promoted", reason, reason)


def decide_canary(verdict: CanaryVerdict) -> Decision:
    """Promote on a ``promote`` verdict; anything else rolls back."""
    if verdict.decision == "promote":
        return Decision("promote", "promoted", verdict.reason, f"canary promoted: {verdict.reason}")
    return Decision(
        "roll_back", "rolled_back", verdict.reason, f"canary rolled back: {verdict.reason}"
    )


def decide_shadow(verdict: ShadowVerdict, config: DeploymentConfig) -> Decision:
    """Roll back a challenger the live service did not serve; promote after the shadow only when
    ``promote_after_shadow`` and rows were compared with agreement ≥ ``min_agreement``; else it
    stays shadowed (observed, the champion kept)."""
    reason = verdict.reason
    if verdict.decision != "done":  # rollback; an unfinished shadow is never promoted either
        return Decision("roll_back", "rolled_back", reason, f"shadow rolled back: {reason}")
    agreed = verdict.compared > 0 and verdict.agreement >= config.min_agreement
    if config.promote_after_shadow and agreed:
        return Decision("promote", "promoted", reason, reason)
    return Decision("roll_back", "shadowed", reason, reason)


def decide(
    config: DeploymentConfig,
    report: InfraValidationReport,
    verdict: CanaryVerdict | ShadowVerdict | None,
) -> Decision:
    """The decision of ``config.strategy`` (see the module's table).

    Raises ConfigError when ``verdict`` is not the one the strategy produces (a canary needs
    a CanaryVerdict, a shadow a ShadowVerdict, blue-green none).
    """
    if config.strategy == "blue-green" and verdict is None:
        return decide_blue_green(report)
    if config.strategy == "canary" and isinstance(verdict, CanaryVerdict):
        return decide_canary(verdict)
    if config.strategy == "shadow" and isinstance(verdict, ShadowVerdict):
        return decide_shadow(verdict, config)
    raise ConfigError(
        f"strategy {config.strategy!r} cannot decide on a {type(verdict).__name__} verdict"
    )


def aborted_reason(strategy: str, error: BaseException) -> str:
    """The rollback reason of a rollout that could not be watched to its end."""
    return f"{strategy} aborted: {error}"[:REASON_LIMIT]


def promote(client: MlflowClient, model_name: str, version: str, reason: str) -> registry.AliasMove:
    """End any rollout, move ``champion`` to ``version`` (the previous champion is remembered)
    and tag the version ``mlops.rollout.result=promoted``; returns the alias move."""
    registry.end_rollout(client, model_name)
    move = registry.promote_version(client, model_name, version, reason=reason)
    registry.set_version_tags(client, model_name, version, {lineage.ROLLOUT_RESULT: "promoted"})
    return move


def roll_back(client: MlflowClient, model_name: str, version: str, reason: str) -> None:
    """End the rollout (every request goes back to the champion); record the champion kept in
    the alias history and ``mlops.rollout.result=rolled_back`` with the reason on the version."""
    registry.end_rollout(client, model_name)
    registry.record_champion_kept(client, model_name, reason=f"v{version}: {reason}")
    registry.set_version_tags(
        client,
        model_name,
        version,
        {lineage.ROLLOUT_RESULT: "rolled_back", lineage.ROLLOUT_REASON: reason},
    )


def carry_out(
    client: MlflowClient, model_name: str, version: str, decision: Decision
) -> registry.AliasMove | None:
    """Apply ``decision`` to the registry (:func:`promote` or :func:`roll_back`); returns the
    champion's move when promoted."""
    if decision.action == "promote":
        return promote(client, model_name, version, decision.move_reason)
    roll_back(client, model_name, version, decision.move_reason)
    return None
