"""Model versions: registering one with its aliases as one step (a failure mid-way restores the
aliases and deletes the half-made version), tagging and listing them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prefect_mlops.errors import ModelRegistrationError, first_line
from prefect_mlops.registry import lineage
from prefect_mlops.registry.aliases import (
    CHAMPION,
    AliasMove,
    AliasSnapshot,
    alias_state,
    assign_aliases,
    record_aliases_dropped,
    restore_aliases,
    snapshot_aliases,
)
from prefect_mlops.registry.model_format import artifact_digest
from prefect_mlops.registry.store import (
    get_registered_model,
    is_not_found_error,
    model_exists,
    require_version,
    search_versions,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)


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
    """Register ``model_uri`` as a new version of ``model_name`` (created if absent) with ``tags``,
    the blessing decision and the model file's digest (``lineage.MODEL_DIGEST``, checked when
    the version is loaded: see ``model_format``); returns the version. Moves no alias. A source
    whose model file cannot be read is registered without a digest, with a warning (it loads,
    if ever, unverified and with a warning)."""
    digest_tag: dict[str, str] = {}
    try:
        digest_tag[lineage.MODEL_DIGEST] = artifact_digest(client, model_uri)
    except Exception as exc:  # logged: the version is registered without a digest
        logger.warning(
            "registering %s from %s without a model digest (%s): its model file cannot be "
            "read: %s",
            model_name, model_uri, lineage.MODEL_DIGEST, first_line(exc),
        )  # fmt: skip
    if not model_exists(client, model_name):
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
            **digest_tag,
        },
        run_link=run_link,
        model_id=_model_id(model_uri),
    )
    return str(mv.version)


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
    ``assign_aliases``); returns what was done. On any failure the aliases are restored and the
    new version deleted (``undo_registration``), then ModelRegistrationError raised for a
    registry or I/O error (any other error propagates as it is); when undoing fails too, the
    error names each step that could not be undone."""
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
    except Exception as exc:  # any failure half-way is undone before it propagates
        what = f"registering {model_name} (version {version or 'not created'}) failed: {exc}"
        try:
            undo_registration(client, model_name, version, before)
        except ModelRegistrationError as undo_exc:
            raise ModelRegistrationError(f"{what}; undoing it failed too: {undo_exc}") from exc
        if not isinstance(exc, MlflowException | OSError):
            raise
        raise ModelRegistrationError(
            f"{what}; aliases restored to {before.aliases or 'none'}"
            + (f", version {version} deleted" if version is not None else "")
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
    """Restore the aliases as in ``before`` and delete ``version`` (None: it was never created),
    the compensation of a registration. Both steps are tried; ModelRegistrationError names each
    one that failed (which alias, to which version, the error)."""
    from mlflow.exceptions import MlflowException

    failures: list[str] = []
    try:
        restore_aliases(client, model_name, before)
    except ModelRegistrationError as exc:
        failures.append(str(exc))
    if version is not None:
        try:
            stranded = [a for a, v in alias_state(client, model_name).items() if v == version]
            client.delete_model_version(model_name, version)
        except MlflowException as exc:
            if not is_not_found_error(exc):
                failures.append(f"deleting version {version} failed: {first_line(exc)}")
        except Exception as exc:  # named in the raised error
            failures.append(f"deleting version {version} failed: {first_line(exc)}")
        else:
            try:
                record_aliases_dropped(
                    client,
                    model_name,
                    stranded,
                    version,
                    reason=f"removed with version {version}, deleted after a failed registration",
                )
            except Exception as exc:  # named in the raised error
                failures.append(
                    f"aliases {stranded} went with version {version}, but recording it in the "
                    f"alias history failed: {first_line(exc)}"
                )
    if failures:
        raise ModelRegistrationError(
            f"undoing the registration of {model_name} version {version or '(none)'}: "
            + "; ".join(failures)
        )


def _model_id(model_uri: str) -> str | None:
    """The logged-model id of a ``models:/m-...`` URI (MLflow 3), else None."""
    if model_uri.startswith("models:/m-"):
        return model_uri.removeprefix("models:/").split("/")[0]
    return None


def list_versions(client: MlflowClient, model_name: str) -> list[VersionSummary]:
    """Versions of ``model_name``, newest first, with aliases, blessing and key metrics."""
    model = get_registered_model(client, model_name)
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = search_versions(client, model_name)
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


def set_version_tags(
    client: MlflowClient, model_name: str, version: str, tags: dict[str, str]
) -> None:
    """Record ``tags`` on a model version (deployment results, rollout outcomes)."""
    require_version(client, model_name, version)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, str(value)[:4900])
