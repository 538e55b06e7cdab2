"""Canary routing and the serving-log sample: deterministic per request id."""

from __future__ import annotations

from prefect_mlops.registry import Rollout
from prefect_mlops.serving.routing import choose_variant, request_fraction, sampled

IDS = [f"req-{i}" for i in range(4000)]


def test_canary_share_is_deterministic_and_close_to_the_share() -> None:
    canary = Rollout("canary", "2", 0.3, "t", "me", "test")
    picks = [choose_variant(i, canary) for i in IDS]
    share = picks.count("challenger") / len(IDS)
    assert 0.27 < share < 0.33
    assert picks == [choose_variant(i, canary) for i in IDS]  # reproducible per request id
    shadow = Rollout("shadow", "2", 0.0, "t", "me", "test")
    assert {choose_variant(i, shadow) for i in IDS} == {"champion"}
    assert {choose_variant(i, None) for i in IDS} == {"champion"}


def test_log_sample_is_deterministic_and_independent_of_the_split() -> None:
    kept = [i for i in IDS if sampled(i, 0.5)]
    assert 0.46 < len(kept) / len(IDS) < 0.54
    assert kept == [i for i in IDS if sampled(i, 0.5)]
    assert all(sampled(i, 1.0) for i in IDS) and not any(sampled(i, 0.0) for i in IDS)
    # The sample is not the canary half: both halves of the split are sampled alike.
    routed = {i for i in IDS if request_fraction(i) < 0.5}
    both = sum(i in routed for i in kept) / len(kept)
    assert 0.45 < both < 0.55
