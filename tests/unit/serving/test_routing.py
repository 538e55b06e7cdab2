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


def test_the_challenger_answers_exactly_the_ids_whose_fraction_is_below_the_share() -> None:
    """The serving evidence re-derives the routing as ``request_fraction(id) < share``, so the
    split must be exactly that, boundary included: an id at the share goes to the champion."""
    share = 0.3
    canary = Rollout("canary", "2", share, "t", "me", "test")
    for i in IDS[:500]:
        expected = "challenger" if request_fraction(i) < share else "champion"
        assert choose_variant(i, canary) == expected
    edge = IDS[0]
    at_edge = Rollout("canary", "2", request_fraction(edge), "t", "me", "test")
    assert choose_variant(edge, at_edge) == "champion"
    just_above = Rollout("canary", "2", request_fraction(edge) + 1e-12, "t", "me", "test")
    assert choose_variant(edge, just_above) == "challenger"


def test_a_shadow_rollout_is_answered_by_the_champion_whatever_its_share() -> None:
    shadow = Rollout("shadow", "2", 0.5, "t", "me", "test")
    assert {choose_variant(i, shadow) for i in IDS} == {"champion"}
    everyone = Rollout("canary", "2", 1.0, "t", "me", "test")
    assert {choose_variant(i, everyone) for i in IDS} == {"challenger"}
    nobody = Rollout("canary", "2", 0.0, "t", "me", "test")
    assert {choose_variant(i, nobody) for i in IDS} == {"champion"}


def test_request_fraction_is_a_stable_number_in_the_unit_interval() -> None:
    fractions = [request_fraction(i) for i in IDS]
    assert all(0.0 <= f < 1.0 for f in fractions)
    # Spread over the whole interval, not bunched in a corner of it.
    assert min(fractions) < 0.01 and max(fractions) > 0.99
    assert 0.48 < sum(fractions) / len(fractions) < 0.52
    assert len(set(fractions)) == len(IDS)


def test_the_log_sample_keeps_the_ids_whose_salted_fraction_is_below_the_rate() -> None:
    """Which ids are logged is fixed across replicas and releases: those whose ``log:``-salted
    fraction is below the rate (an id at the rate is left out)."""
    for i in IDS[:500]:
        assert sampled(i, 0.25) is (request_fraction("log:" + i) < 0.25)
    edge = IDS[0]
    assert not sampled(edge, request_fraction("log:" + edge))
    assert sampled(edge, request_fraction("log:" + edge) + 1e-12)
