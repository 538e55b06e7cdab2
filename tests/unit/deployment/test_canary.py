"""The canary verdict over serving-log rows: promote, wait, roll back, and its thresholds' edges."""

from __future__ import annotations

import pandas as pd

from prefect_mlops.deployment.canary import judge_canary
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import judge_shadow


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


def _log(variant: str, version: str, statuses: list[str], latency: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"{variant}-{i}" for i in range(len(statuses))],
            "row_index": 0,
            "variant": variant,
            "model_version": version,
            "status": statuses,
            "latency_ms": latency,
            "prediction": "1",
        }
    )


def test_canary_promotes_after_enough_clean_requests() -> None:
    config = _config(min_requests=20, max_p99_latency_ms=50)
    log = _log("challenger", "2", ["ok"] * 25, 10.0)
    verdict = judge_canary(log, "2", config, timed_out=False)
    assert verdict.decision == "promote"
    assert verdict.requests == 25


def test_canary_waits_then_rolls_back_when_starved() -> None:
    config = _config(min_requests=50)
    log = _log("challenger", "2", ["ok"] * 5, 10.0)
    assert judge_canary(log, "2", config, timed_out=False).decision == "wait"
    starved = judge_canary(log, "2", config, timed_out=True)
    assert starved.decision == "rollback"
    assert "only 5 of 50" in starved.reason


def test_canary_rolls_back_on_error_rate_and_latency() -> None:
    config = _config(min_requests=100, max_error_rate=0.05, max_p99_latency_ms=50)
    errors = _log("challenger", "2", ["ok"] * 15 + ["500"] * 5, 10.0)
    verdict = judge_canary(errors, "2", config, timed_out=False)
    assert verdict.decision == "rollback"
    assert "error rate 25.00%" in verdict.reason
    slow = _log("challenger", "2", ["ok"] * 20, 80.0)
    assert "p99 latency 80.0 ms" in judge_canary(slow, "2", config, timed_out=False).reason
    # Champion rows and other versions do not count.
    other = pd.concat(
        [_log("champion", "1", ["500"] * 20, 900.0), _log("challenger", "3", ["500"] * 20, 1.0)]
    )
    assert judge_canary(other, "2", config, timed_out=False).decision == "wait"


def test_not_served_rolls_back_canary_and_shadow_at_once() -> None:
    config = _config(min_requests=50)
    log = _log("challenger", "2", ["ok"] * 5, 10.0)
    canary = judge_canary(log, "2", config, timed_out=False, not_served="cannot load v2: gone")
    assert canary.decision == "rollback"
    assert canary.reason.startswith("cannot load v2: gone (5 challenger requests")
    shadow = judge_shadow(pd.DataFrame(), "2", config, timed_out=False, not_served="gone")
    assert (shadow.decision, shadow.compared) == ("rollback", 0)
    assert shadow.reason.startswith("gone (shadow agreement")


def _mixed(ok: int, failed: int, *, status: str = "500", latency: float = 10.0) -> pd.DataFrame:
    return _log("challenger", "2", ["ok"] * ok + [status] * failed, latency)


def test_an_error_rate_at_the_limit_is_not_a_breach() -> None:
    config = _config(min_requests=100, max_error_rate=0.1)
    assert judge_canary(_mixed(18, 2), "2", config, timed_out=False).decision == "wait"
    over = judge_canary(_mixed(17, 3), "2", config, timed_out=False)
    assert over.decision == "rollback" and over.error_rate == 0.15


def test_client_errors_do_not_count_against_the_challenger() -> None:
    config = _config(min_requests=20, max_error_rate=0.0)
    verdict = judge_canary(_mixed(15, 5, status="422"), "2", config, timed_out=False)
    assert (verdict.decision, verdict.error_rate) == ("promote", 0.0)


def test_a_p99_at_the_limit_is_not_a_breach() -> None:
    config = _config(min_requests=100, max_p99_latency_ms=50)
    at = judge_canary(_mixed(20, 0, latency=50.0), "2", config, timed_out=False)
    assert (at.decision, at.p99_ms) == ("wait", 50.0)
    assert judge_canary(_mixed(20, 0, latency=50.01), "2", config, timed_out=False).decision == (
        "rollback"
    )


def test_a_breach_is_judged_over_ten_requests_or_min_requests_when_fewer() -> None:
    config = _config(min_requests=100, max_error_rate=0.0)
    assert judge_canary(_mixed(0, 9), "2", config, timed_out=False).decision == "wait"
    assert judge_canary(_mixed(0, 10), "2", config, timed_out=False).decision == "rollback"
    few = _config(min_requests=3, max_error_rate=0.0)
    assert judge_canary(_mixed(1, 2), "2", few, timed_out=False).decision == "rollback"
    assert judge_canary(_mixed(1, 1), "2", few, timed_out=False).decision == "wait"


def test_promotion_needs_exactly_min_requests() -> None:
    config = _config(min_requests=12)
    assert judge_canary(_mixed(11, 0), "2", config, timed_out=False).decision == "wait"
    assert judge_canary(_mixed(12, 0), "2", config, timed_out=False).decision == "promote"
    # Enough requests promote even at the deadline; too few roll back there.
    assert judge_canary(_mixed(12, 0), "2", config, timed_out=True).decision == "promote"
    assert judge_canary(_mixed(11, 0), "2", config, timed_out=True).decision == "rollback"


def test_the_verdict_carries_its_figures() -> None:
    verdict = judge_canary(
        _mixed(19, 1, latency=7.0),
        "2",
        _config(min_requests=50, max_error_rate=0.1),
        timed_out=False,
    )
    assert (verdict.requests, verdict.error_rate, verdict.p99_ms) == (20, 0.05, 7.0)
    assert verdict.reason == "20 challenger requests, error rate 5.00%, p99 7.0 ms"
    assert verdict.quality is None and verdict.not_served is None
