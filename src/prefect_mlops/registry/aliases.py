"""Every write to the MLflow model registry happens here.

Registering a version and moving its aliases is atomic from the user's view: a failure
mid-way restores the aliases as they were and deletes the half-made version. Every alias move
is recorded on the registered model as a tag ``mlops.alias_move.<ns>`` holding JSON
(alias, from, to, actor, reason, at), so "which version was champion at time T" can be answered.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect_mlops.errors import ModelRegistrationError
from prefect_mlops.registry import lineage
from prefect_mlops.settings import Settings

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
        """Compact JSON for the registered-model tag."""
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class RegistrationResult:
    """What ``register_model_version`` did."""

    model_name: str
    version: str
    model_uri: str
    aliases: list[str] = field(default_factory=list)
    previous_champion: str | None = None
    moves: list[AliasMove] = field(default_factory=list)


@dataclass(frozen=True)
class VersionSummary:
    """A model version as the ``models`` CLI shows it."""

    version: str
    aliases: list[str]
    blessed: str
    reason: str
    metrics: dict[str, str]
    created: str
    run_id: str | None


def configure_mlflow(settings: Settings) -> None:
    """Point the ``mlflow`` module at the configured tracking and registry stores."""
    import mlflow

    settings.home_path.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_registry_uri)


def mlflow_client(settings: Settings) -> MlflowClient:
    """An ``MlflowClient`` bound to the configured stores."""
    from mlflow import MlflowClient

    settings.home_path.mkdir(parents=True, exist_ok=True)
    return MlflowClient(
        tracking_uri=settings.resolved_tracking_uri, registry_uri=settings.resolved_registry_uri
    )


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    """The id of experiment ``name``, created with ``artifact_location`` if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def code_version(start: Path | None = None) -> str:
    """The git commit (``<sha>`` or ``<sha>-dirty``) of ``start``, else the package version."""
    cwd = start or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=5,
            )
            suffix = "-dirty" if dirty.stdout.strip() else ""
            return sha.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"prefect-mlops=={version('prefect-mlops')}"


def default_actor() -> str:
    """Who is acting: the Prefect flow run when inside one, else the OS user."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return f"prefect-flow-run:{flow_run.name}({flow_run.id})"
    except Exception:  # outside Prefect there is simply no flow run
        pass
    return f"user:{getpass.getuser()}"


def is_not_found_error(exc: Exception) -> bool:
    """True when an MLflow error says the model, version or alias does not exist."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


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


def _restore_aliases(client: MlflowClient, model_name: str, before: AliasSnapshot) -> None:
    """Put aliases and the remembered champion back as in ``before``; record each move back.

    Best effort: each alias on its own, so one failure does not stop the others.
    """
    if not _model_exists(client, model_name):
        return
    now = snapshot_aliases(client, model_name)
    for alias in set(now.aliases) | set(before.aliases):
        target = before.aliases.get(alias)
        if now.aliases.get(alias) == target:
            continue
        try:
            if target is not None:
                client.set_registered_model_alias(model_name, alias, target)
            else:
                client.delete_registered_model_alias(model_name, alias)
            _record_move(
                client,
                AliasMove(
                    model_name=model_name,
                    alias=alias,
                    from_version=now.aliases.get(alias),
                    to_version=target,
                    actor=default_actor(),
                    reason="restored after a failed registration",
                    at=datetime.now(UTC).isoformat(),
                ),
            )
        except Exception:  # keep restoring the others
            pass
    with contextlib.suppress(Exception):
        if before.previous_champion is None:
            if now.previous_champion is not None:
                client.delete_registered_model_tag(model_name, lineage.PREVIOUS_CHAMPION)
        elif now.previous_champion != before.previous_champion:
            client.set_registered_model_tag(
                model_name, lineage.PREVIOUS_CHAMPION, before.previous_champion
            )


def create_version(
    client: MlflowClient,
    *,
    model_name: str,
    model_uri: str,
    run_id: str | None,
    tags: dict[str, str],
    blessed: bool,
    reason: str,
    run_link: str | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``model_name`` (created if absent) with ``tags``
    and the blessing decision; returns the version. Moves no alias."""
    if not _model_exists(client, model_name):
        client.create_registered_model(
            model_name, description="Registered by prefect-mlops continuous training."
        )
    mv = client.create_model_version(
        model_name,
        source=model_uri,
        run_id=run_id,
        tags={
            **tags,
            lineage.BLESSED: str(blessed).lower(),
            lineage.BLESSING_REASON: reason[:4900],
        },
        run_link=run_link,
        model_id=_model_id(model_uri),
    )
    return str(mv.version)


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


def register_model_version(
    client: MlflowClient,
    *,
    model_name: str,
    model_uri: str,
    run_id: str | None,
    tags: dict[str, str],
    blessed: bool,
    promote: bool,
    reason: str,
    run_link: str | None = None,
    actor: str | None = None,
) -> RegistrationResult:
    """Create a version and assign its aliases as one step (see ``create_version`` and
    ``assign_aliases``). On any failure the aliases are restored, the new version deleted, and
    ModelRegistrationError raised."""
    from mlflow.exceptions import MlflowException

    before = snapshot_aliases(client, model_name)
    version: str | None = None
    try:
        version = create_version(
            client,
            model_name=model_name,
            model_uri=model_uri,
            run_id=run_id,
            tags=tags,
            blessed=blessed,
            reason=reason,
            run_link=run_link,
        )
        moves = assign_aliases(
            client,
            model_name,
            version,
            blessed=blessed,
            promote=promote,
            reason=reason,
            actor=actor,
        )
    except (MlflowException, OSError) as exc:
        undo_registration(client, model_name, version, before)
        raise ModelRegistrationError(
            f"registering {model_name} (version {version or 'not created'}) failed: {exc}; "
            f"aliases restored to {before.aliases or 'none'}"
        ) from exc
    return RegistrationResult(
        model_name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
        aliases=[m.alias for m in moves],
        previous_champion=before.aliases.get(CHAMPION),
        moves=moves,
    )


def undo_registration(
    client: MlflowClient, model_name: str, version: str | None, before: AliasSnapshot
) -> None:
    """Restore the aliases as in ``before`` and delete ``version`` (the compensation of a
    registration)."""
    _restore_aliases(client, model_name, before)
    if version is not None:
        # The version may never have been created.
        with contextlib.suppress(Exception):
            client.delete_model_version(model_name, version)


def _model_exists(client: MlflowClient, model_name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
        return True
    except MlflowException as exc:
        if is_not_found_error(exc):
            return False
        raise


def _model_id(model_uri: str) -> str | None:
    """The logged-model id of a ``models:/m-...`` URI (MLflow 3), else None."""
    if model_uri.startswith("models:/m-"):
        return model_uri.removeprefix("models:/").split("/")[0]
    return None


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

    Raises ModelRegistrationError when no previous champion is recorded.
    """
    model = _get_model(client, model_name)
    previous = model.tags.get(lineage.PREVIOUS_CHAMPION)
    if not previous:
        raise ModelRegistrationError(
            f"model {model_name!r} has no previous champion to roll back to "
            f"(tag {lineage.PREVIOUS_CHAMPION} is not set)"
        )
    require_version(client, model_name, previous)
    return move_alias(client, model_name, CHAMPION, previous, reason=reason, actor=actor)


def alias_history(client: MlflowClient, model_name: str) -> list[AliasMove]:
    """Every recorded alias move of ``model_name``, oldest first."""
    model = _get_model(client, model_name)
    moves = [
        AliasMove(**json.loads(value))
        for key, value in sorted(model.tags.items())
        if key.startswith(lineage.ALIAS_MOVE_PREFIX)
    ]
    return moves


def _get_model(client: MlflowClient, model_name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model_name)
    except MlflowException as exc:
        raise ModelRegistrationError(
            f"registered model {model_name!r} not found in the registry"
        ) from exc


def require_version(client: MlflowClient, model_name: str, version: str) -> None:
    """Raise ModelRegistrationError naming the model when ``version`` does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelRegistrationError(f"model {model_name!r} has no version {version!r}") from exc


def list_versions(client: MlflowClient, model_name: str) -> list[VersionSummary]:
    """Versions of ``model_name``, newest first, with aliases, blessing and key metrics."""
    model = _get_model(client, model_name)
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name = '{model_name}'")
    out = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(mv.tags)
        out.append(
            VersionSummary(
                version=str(mv.version),
                aliases=sorted(by_version.get(str(mv.version), [])),
                blessed=tags.get(lineage.BLESSED, "?"),
                reason=tags.get(lineage.BLESSING_REASON, ""),
                metrics={
                    k.removeprefix(lineage.METRIC_PREFIX): v
                    for k, v in tags.items()
                    if k.startswith(lineage.METRIC_PREFIX)
                },
                created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                run_id=mv.run_id,
            )
        )
    return out


RolloutMode = Literal["canary", "shadow"]


@dataclass(frozen=True)
class Rollout:
    """An active progressive rollout of ``challenger_version`` next to the champion.

    ``canary``: a ``share`` of live requests is answered by the challenger. ``shadow``: the
    challenger scores every request but only the champion answers. The serving process reads
    this from the registered-model tag ``mlops.rollout``; the registry is the control plane.
    """

    mode: RolloutMode
    challenger_version: str
    share: float
    started_at: str
    actor: str
    reason: str

    def to_json(self) -> str:
        """Compact JSON for the registered-model tag."""
        return json.dumps(asdict(self), separators=(",", ":"))


def get_rollout(client: MlflowClient, model_name: str) -> Rollout | None:
    """The active rollout of ``model_name``, or None."""
    raw = _get_model(client, model_name).tags.get(lineage.ROLLOUT)
    return Rollout(**json.loads(raw)) if raw else None


def start_rollout(
    client: MlflowClient,
    model_name: str,
    *,
    mode: RolloutMode,
    challenger_version: str,
    share: float = 0.0,
    reason: str,
    actor: str | None = None,
) -> Rollout:
    """Start a canary or shadow rollout of ``challenger_version`` (alias ``challenger`` moves to
    it); recorded like an alias move. Raises ModelRegistrationError for a missing version or a
    share outside [0, 1]."""
    if not 0.0 <= share <= 1.0:
        raise ModelRegistrationError(f"rollout share must be within [0, 1], got {share}")
    require_version(client, model_name, challenger_version)
    actor = actor or default_actor()
    move_alias(client, model_name, CHALLENGER, challenger_version, reason=reason, actor=actor)
    rollout = Rollout(
        mode=mode,
        challenger_version=str(challenger_version),
        share=share if mode == "canary" else 0.0,
        started_at=datetime.now(UTC).isoformat(),
        actor=actor,
        reason=reason,
    )
    client.set_registered_model_tag(model_name, lineage.ROLLOUT, rollout.to_json())
    return rollout


def record_champion_kept(
    client: MlflowClient, model_name: str, *, reason: str, actor: str | None = None
) -> AliasMove | None:
    """Record in the alias history that ``champion`` stays where it is (a rolled-back rollout):
    a move onto the version it already names, with ``reason``. None when there is no champion."""
    champion = alias_state(client, model_name).get(CHAMPION)
    if champion is None:
        return None
    return move_alias(client, model_name, CHAMPION, champion, reason=reason, actor=actor)


def end_rollout(client: MlflowClient, model_name: str) -> None:
    """Stop the active rollout (if any): every request goes to the champion again."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client.delete_registered_model_tag(model_name, lineage.ROLLOUT)


def set_version_tags(
    client: MlflowClient, model_name: str, version: str, tags: dict[str, str]
) -> None:
    """Record ``tags`` on a model version (deployment results, rollout outcomes)."""
    require_version(client, model_name, version)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, str(value)[:4900])
