"""Fallback when the champion fails in production: ``champion`` back to the previous healthy
champion, never to a version that itself failed.

A ``mlops.model.failing`` event names the version that failed (its error rate, p99 or live
quality) and why. :func:`fall_back` then

* does nothing when the event's version is not the current champion (a stale event: the
  champion moved since, or the event was about another version) — ``stale``;
* marks the failing version (tags ``mlops.failing.at`` and ``mlops.failing.reason``), then
  moves ``champion`` to the newest earlier champion of the alias history that still exists and
  never failed (the registry's own rollback when that is the remembered previous champion),
  the move recorded in the alias history with the failing figures as its reason —
  ``rolled_back``;
* leaves ``champion`` where it is when no such version exists (no previous champion, or only
  failed ones): the caller alerts — ``no_target``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from prefect_mlops import registry
from prefect_mlops.errors import ModelNotFoundError
from prefect_mlops.registry import lineage
from prefect_mlops.registry.aliases import CHAMPION

if TYPE_CHECKING:
    from mlflow import MlflowClient

FallbackAction = Literal["rolled_back", "stale", "no_target"]


@dataclass(frozen=True)
class FallbackDecision:
    """What :func:`fall_back` did (or :func:`choose_fallback` would do)."""

    model_name: str
    failing_version: str
    champion_before: str | None
    action: FallbackAction
    target: str | None
    reason: str

    def summary(self) -> str:
        """One sentence for a log line or an artifact."""
        if self.action == "rolled_back":
            return (
                f"{self.model_name}: champion moved back from v{self.failing_version} to "
                f"v{self.target}: {self.reason}"
            )
        if self.action == "stale":
            return f"{self.model_name}: nothing moved: {self.reason}"
        return (
            f"{self.model_name}: v{self.failing_version} is failing and stays champion: "
            f"{self.reason}"
        )


def failed_versions(client: MlflowClient, model_name: str) -> set[str]:
    """The versions of ``model_name`` marked as failed in production (``mlops.failing.at``)."""
    return {
        str(v.version)
        for v in registry.search_versions(client, model_name)
        if v.tags.get(lineage.FAILING_AT)
    }


def earlier_champions(client: MlflowClient, model_name: str) -> list[str]:
    """Every version that was ``champion`` before the current one, newest first, each once
    (from the alias history, and the remembered previous champion first when there is one)."""
    model = registry.get_registered_model(client, model_name)
    current = {str(v) for a, v in model.aliases.items() if a == CHAMPION}
    ordered: list[str] = []
    remembered = model.tags.get(lineage.PREVIOUS_CHAMPION)
    if remembered:
        ordered.append(str(remembered))
    for move in reversed(registry.alias_history(client, model_name)):
        if move.alias == CHAMPION and move.to_version is not None:
            ordered.append(move.to_version)
    seen: set[str] = set(current)
    found: list[str] = []
    for version in ordered:
        if version not in seen:
            seen.add(version)
            found.append(version)
    return found


def choose_fallback(
    client: MlflowClient, model_name: str, version: str | None, reason: str
) -> FallbackDecision:
    """What a fallback of ``model_name`` for failing ``version`` (None: the current champion)
    would do, without changing anything.

    Raises ModelNotFoundError when ``model_name`` is not registered.
    """
    if not registry.model_exists(client, model_name):
        raise ModelNotFoundError(f"model {model_name!r} is not registered: nothing to fall back")
    champion = registry.alias_state(client, model_name).get(CHAMPION)
    failing = str(version) if version is not None else champion
    if champion is None or failing != champion:
        why = (
            f"v{failing} is not the champion (champion: "
            f"{'none' if champion is None else 'v' + champion}); a stale failing event"
        )
        return FallbackDecision(model_name, str(failing), champion, "stale", None, why)
    failed = failed_versions(client, model_name) | {failing}
    existing = {str(v.version) for v in registry.search_versions(client, model_name)}
    candidates = [v for v in earlier_champions(client, model_name) if v in existing]
    healthy = [v for v in candidates if v not in failed]
    if healthy:
        return FallbackDecision(
            model_name, failing, champion, "rolled_back", healthy[0], fallback_reason(reason)
        )
    if candidates:
        why = (
            "every earlier champion failed in production too "
            f"({', '.join('v' + v for v in candidates)}); failing: {reason}"
        )
    else:
        why = f"no previous champion to fall back to; failing: {reason}"
    return FallbackDecision(model_name, failing, champion, "no_target", None, why)


def fallback_reason(reason: str) -> str:
    """The alias-history reason of a fallback: the failing figures, cut to fit a tag."""
    return f"fallback: champion failing in production: {reason}"[:1000]


def mark_failing(client: MlflowClient, model_name: str, version: str, reason: str) -> None:
    """Tag ``version`` as failed in production now, with ``reason`` (its figures)."""
    registry.set_version_tags(
        client,
        model_name,
        version,
        {
            lineage.FAILING_AT: datetime.now(UTC).isoformat(),
            lineage.FAILING_REASON: reason[: lineage.TAG_VALUE_LIMIT],
        },
    )


def fall_back(
    client: MlflowClient,
    model_name: str,
    version: str | None,
    reason: str,
    *,
    actor: str | None = None,
) -> FallbackDecision:
    """Act on a failing ``version`` of ``model_name`` (None: the current champion) as the
    module docstring says; returns what was done. A stale event changes nothing; otherwise the
    failing version is marked, and ``champion`` moves only to a healthy earlier champion.

    Raises ModelNotFoundError when ``model_name`` is not registered, RegistryError subclasses
    when the registry refuses a write.
    """
    decision = choose_fallback(client, model_name, version, reason)
    if decision.action == "stale":
        return decision
    mark_failing(client, model_name, decision.failing_version, reason)
    if decision.action == "no_target" or decision.target is None:
        return decision
    remembered = registry.get_registered_model(client, model_name).tags.get(
        lineage.PREVIOUS_CHAMPION
    )
    if remembered == decision.target:
        registry.rollback_champion(client, model_name, reason=decision.reason, actor=actor)
    else:
        registry.promote_version(
            client, model_name, decision.target, reason=decision.reason, actor=actor
        )
    return decision
