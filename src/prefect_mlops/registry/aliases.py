"""Alias moves and their history.

Every alias move is recorded on the registered model as a tag ``mlops.alias_move.<ns>`` holding
JSON (alias, from, to, actor, reason, at), so "which version was champion at time T" can be
answered; moving ``champion`` remembers the previous one (``mlops.previous_champion``) for a
rollback.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prefect_mlops.errors import ModelRegistrationError, NoPreviousChampionError, first_line
from prefect_mlops.registry import lineage
from prefect_mlops.registry.store import (
    get_registered_model,
    is_not_found_error,
    model_exists,
    require_version,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


CHAMPION = "champion"


CHALLENGER = "challenger"


@dataclass(frozen=True)
class AliasMove:
    """One recorded alias move on a registered model."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: str

    def to_json(self) -> str:
        """Compact JSON for the registered-model tag, as readable UTF-8 (a reason's ``≥`` stays
        ``≥``; entries written escaped, ``\\u2265``, read back the same)."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> AliasMove:
        """The move recorded as ``raw`` (UTF-8 or ASCII-escaped JSON)."""
        return cls(**json.loads(raw))


def default_actor() -> str:
    """Who is acting: the Prefect flow run when inside one, else the OS user."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return f"prefect-flow-run:{flow_run.name}({flow_run.id})"
    except Exception:  # outside Prefect there is simply no flow run
        pass
    return f"user:{getpass.getuser()}"


def alias_state(client: MlflowClient, model_name: str) -> dict[str, str]:
    """Alias -> version of ``model_name`` ({} when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if is_not_found_error(exc):
            return {}
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def get_alias_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if is_not_found_error(exc) or "alias" in str(exc).lower():
            return None
        raise


def _record_move(client: MlflowClient, move: AliasMove) -> None:
    key = f"{lineage.ALIAS_MOVE_PREFIX}{time.time_ns():020d}"
    client.set_registered_model_tag(move.model_name, key, move.to_json())


def move_alias(
    client: MlflowClient,
    model_name: str,
    alias: str,
    version: str,
    *,
    reason: str,
    actor: str | None = None,
) -> AliasMove:
    """Point ``alias`` at ``version`` and record the move (and, for champion, the previous one)."""
    before = alias_state(client, model_name).get(alias)
    client.set_registered_model_alias(model_name, alias, str(version))
    move = AliasMove(
        model_name=model_name,
        alias=alias,
        from_version=before,
        to_version=str(version),
        actor=actor or default_actor(),
        reason=reason,
        at=datetime.now(UTC).isoformat(),
    )
    if alias == CHAMPION and before and before != str(version):
        client.set_registered_model_tag(model_name, lineage.PREVIOUS_CHAMPION, before)
    _record_move(client, move)
    return move


@dataclass(frozen=True)
class AliasSnapshot:
    """The alias state of a registered model before a change: aliases and remembered champion."""

    aliases: dict[str, str]
    previous_champion: str | None


def snapshot_aliases(client: MlflowClient, model_name: str) -> AliasSnapshot:
    """The current aliases and ``mlops.previous_champion`` of ``model_name`` (empty if absent)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if is_not_found_error(exc):
            return AliasSnapshot(aliases={}, previous_champion=None)
        raise
    return AliasSnapshot(
        aliases={alias: str(version) for alias, version in model.aliases.items()},
        previous_champion=model.tags.get(lineage.PREVIOUS_CHAMPION),
    )


RESTORED_REASON = "restored after a failed registration"


def restore_aliases(
    client: MlflowClient, model_name: str, before: AliasSnapshot
) -> list[AliasMove]:
    """Put aliases and the remembered champion back as in ``before``; record each move back in
    the alias history. Returns the moves back.

    Each alias, and then ``mlops.previous_champion``, is restored on its own, so one failure
    does not stop the others. A restore that fails is recorded in the history (a move that
    leaves the alias where it is, its reason naming the failure) when the history can still be
    written, and ModelRegistrationError names every failed step: alias, version, error.
    """
    try:
        if not model_exists(client, model_name):
            return []
        now = snapshot_aliases(client, model_name)
    except Exception as exc:  # named in the raised error; nothing else can be restored
        raise ModelRegistrationError(
            f"restoring the aliases of {model_name!r} failed: reading them failed "
            f"({first_line(exc)}); set them by hand to {before.aliases or 'none'}"
        ) from exc
    failures: list[str] = []
    after = dict(now.aliases)
    moves: list[AliasMove] = []
    for alias in sorted(set(now.aliases) | set(before.aliases)):
        target = before.aliases.get(alias)
        if now.aliases.get(alias) == target:
            continue
        step = f"alias {alias!r} back to {_version_text(target)}"
        try:
            if target is not None:
                client.set_registered_model_alias(model_name, alias, target)
            else:
                client.delete_registered_model_alias(model_name, alias)
        except Exception as exc:  # named in the raised error; the other aliases still go back
            failures.append(f"{step} failed: {first_line(exc)}")
            _record_failed_restore(client, model_name, alias, after.get(alias), step, exc, failures)
            continue
        if target is None:
            after.pop(alias, None)
        else:
            after[alias] = target
        move = _history_entry(model_name, alias, now.aliases.get(alias), target, RESTORED_REASON)
        moves.append(move)
        try:
            _record_move(client, move)
        except Exception as exc:  # named in the raised error
            failures.append(f"{step} done, but its alias-history entry failed: {first_line(exc)}")
    if now.previous_champion != before.previous_champion:
        step = f"tag {lineage.PREVIOUS_CHAMPION} back to {before.previous_champion or 'unset'}"
        try:
            if before.previous_champion is None:
                client.delete_registered_model_tag(model_name, lineage.PREVIOUS_CHAMPION)
            else:
                client.set_registered_model_tag(
                    model_name, lineage.PREVIOUS_CHAMPION, before.previous_champion
                )
        except Exception as exc:  # named in the raised error
            failures.append(f"{step} failed: {first_line(exc)}")
            _record_failed_restore(
                client, model_name, CHAMPION, after.get(CHAMPION), step, exc, failures
            )
    if failures:
        raise ModelRegistrationError(
            f"restoring the aliases of {model_name!r} to {before.aliases or 'none'} failed: "
            + "; ".join(failures)
        )
    return moves


def record_aliases_dropped(
    client: MlflowClient, model_name: str, aliases: list[str], version: str, *, reason: str
) -> None:
    """Record in the history that ``aliases`` went away with deleted ``version`` (MLflow drops
    the aliases of a version it deletes), so replaying the history gives the aliases there are.
    """
    for alias in aliases:
        _record_move(client, _history_entry(model_name, alias, version, None, reason))


def _version_text(version: str | None) -> str:
    return f"version {version}" if version is not None else "no version (removed)"


def _history_entry(
    model_name: str, alias: str, from_version: str | None, to_version: str | None, reason: str
) -> AliasMove:
    return AliasMove(
        model_name=model_name,
        alias=alias,
        from_version=from_version,
        to_version=to_version,
        actor=default_actor(),
        reason=reason,
        at=datetime.now(UTC).isoformat(),
    )


def _record_failed_restore(
    client: MlflowClient,
    model_name: str,
    alias: str,
    where: str | None,
    step: str,
    exc: Exception,
    failures: list[str],
) -> None:
    """Record that ``step`` failed: a move of ``alias`` onto where it still is (``where``), its
    reason naming the failure. A history write that fails too is added to ``failures``."""
    # Cut so the whole entry stays well under MLflow's tag-value limit (lineage.TAG_VALUE_LIMIT).
    reason = f"restore failed after a failed registration: {step}: {first_line(exc)}"[:1000]
    try:
        _record_move(client, _history_entry(model_name, alias, where, where, reason))
    except Exception as record_exc:  # named in the raised error
        failures.append(f"recording that in the alias history failed: {first_line(record_exc)}")


def assign_aliases(
    client: MlflowClient,
    model_name: str,
    version: str,
    *,
    blessed: bool,
    promote: bool,
    reason: str,
    actor: str | None = None,
) -> list[AliasMove]:
    """Blessed → ``challenger``; blessed and ``promote`` → ``champion`` too. Returns the moves."""
    moves: list[AliasMove] = []
    if blessed:
        moves.append(
            move_alias(client, model_name, CHALLENGER, version, reason=reason, actor=actor)
        )
        if promote:
            moves.append(
                move_alias(client, model_name, CHAMPION, version, reason=reason, actor=actor)
            )
    return moves


def promote_version(
    client: MlflowClient, model_name: str, version: str, *, reason: str, actor: str | None = None
) -> AliasMove:
    """Make ``version`` the champion; the previous champion is remembered."""
    require_version(client, model_name, version)
    return move_alias(client, model_name, CHAMPION, version, reason=reason, actor=actor)


def rollback_champion(
    client: MlflowClient, model_name: str, *, reason: str, actor: str | None = None
) -> AliasMove:
    """Point ``champion`` back at the remembered previous champion.

    Raises NoPreviousChampionError when no previous champion is recorded.
    """
    model = get_registered_model(client, model_name)
    previous = model.tags.get(lineage.PREVIOUS_CHAMPION)
    if not previous:
        raise NoPreviousChampionError(
            f"model {model_name!r} has no previous champion to roll back to "
            f"(tag {lineage.PREVIOUS_CHAMPION} is not set)"
        )
    require_version(client, model_name, previous)
    return move_alias(client, model_name, CHAMPION, previous, reason=reason, actor=actor)


def alias_history(client: MlflowClient, model_name: str) -> list[AliasMove]:
    """Every recorded alias move of ``model_name``, oldest first."""
    model = get_registered_model(client, model_name)
    return [
        AliasMove.from_json(value)
        for key, value in sorted(model.tags.items())
        if key.startswith(lineage.ALIAS_MOVE_PREFIX)
    ]


def record_champion_kept(
    client: MlflowClient, model_name: str, *, reason: str, actor: str | None = None
) -> AliasMove | None:
    """Record in the alias history that ``champion`` stays where it is (a rolled-back rollout):
    a move onto the version it already names, with ``reason``. None when there is no champion."""
    champion = alias_state(client, model_name).get(CHAMPION)
    if champion is None:
        return None
    return move_alias(client, model_name, CHAMPION, champion, reason=reason, actor=actor)
