"""Which model answers a request: the canary split and the serving-log sample, both decided by a
hash of the request id (the same id always lands on the same side)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from prefect_mlops.registry import Rollout

Variant = Literal["champion", "challenger"]


def request_fraction(request_id: str) -> float:
    """A stable number in [0, 1) derived from ``request_id`` (same id → same number)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_variant(request_id: str, rollout: Rollout | None) -> Variant:
    """Which model answers: the challenger for a canary ``share`` of request ids, else the
    champion (shadow rollouts are always answered by the champion)."""
    if (
        rollout is not None
        and rollout.mode == "canary"
        and rollout.share > 0
        and request_fraction(request_id) < rollout.share
    ):
        return "challenger"
    return "champion"


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is in the logged sample (deterministic, like the routing)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    # Another salt than the routing, so the sample is independent of the canary split.
    return request_fraction("log:" + request_id) < rate
