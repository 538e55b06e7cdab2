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
    return int.from_bytes(digest) / 2**64  # big-endian, the default byte order


def choose_variant(request_id: str, rollout: Rollout | None) -> Variant:
    """Which model answers: the challenger for a canary ``share`` of request ids, else the
    champion (shadow rollouts are always answered by the champion)."""
    # No ``share > 0`` test: a fraction is never below 0 (nor below a share of 0).
    if (
        rollout is not None
        and rollout.mode == "canary"
        and request_fraction(request_id) < rollout.share
    ):
        return "challenger"
    return "champion"


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is in the logged sample (deterministic, like the routing)."""
    # Rate 1 keeps every id even if one hashed to exactly 1.0 (a float rounding of
    # (2**64 - 1) / 2**64); ``> 1.0`` would differ only for such an id, none known, hence the
    # pragma. No early return for rate 0: a fraction is never below 0.
    if rate >= 1.0:  # pragma: no mutate
        return True
    # Another salt than the routing, so the sample is independent of the canary split.
    return request_fraction("log:" + request_id) < rate
