"""Progressive rollouts (canary, shadow) as registry state: the registered-model tag
``mlops.rollout`` that the serving process reads; the registry is the control plane."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from prefect_mlops.errors import ConfigError
from prefect_mlops.registry import lineage
from prefect_mlops.registry.aliases import CHALLENGER, default_actor, move_alias
from prefect_mlops.registry.store import get_registered_model, require_version

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
        """Compact JSON for the registered-model tag, as readable UTF-8 (see ``AliasMove``)."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)


def get_rollout(client: MlflowClient, model_name: str) -> Rollout | None:
    """The active rollout of ``model_name``, or None."""
    raw = get_registered_model(client, model_name).tags.get(lineage.ROLLOUT)
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
    it); recorded like an alias move. Raises ModelNotFoundError for a missing version and
    ConfigError for a share outside [0, 1]."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"rollout share must be within [0, 1], got {share}")
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


def end_rollout(client: MlflowClient, model_name: str) -> None:
    """Stop the active rollout (if any): every request goes to the champion again."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client.delete_registered_model_tag(model_name, lineage.ROLLOUT)
