"""The canary verdict over serving-log rows: promote, wait, roll back, and its thresholds' edges."""

from __future__ import annotations

import pandas as pd
import pytest

from prefect_mlops.deployment.canary import CanaryVerdict, canary_tags, judge_canary
from prefect_mlops.deployment.live_quality import QualityReading
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import judge_shadow
from prefect_mlops.registry import lineage


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


def test_no_challenger_requests_yet_means_zero_figures() -> None:
    verdict = judge_canary(pd.DataFrame(), "2", _config(), timed_out=False)
    assert (verdict.decision, verdict.requests, verdict.error_rate, verdict.p99_ms) == (
        "wait", 0, 0.0, 0.0,
    )  # fmt: skip


def test_p99_is_the_99th_percentile_not_the_slowest() -> None:
    log = _log("challenger", "2", ["ok"] * 100, 1.0).assign(
        latency_ms=[float(i) for i in range(1, 101)]
    )
    verdict = judge_canary(log, "2", _config(min_requests=500), timed_out=False)
    assert verdict.p99_ms == pytest.approx(99.01)


def _reading(rows: int, bound: float | None) -> QualityReading:
    return QualityReading("accuracy", rows, 0.8, 0.85, "champion live", drop_bound=bound)


def test_a_quality_drop_bound_at_the_allowed_drop_is_not_a_breach() -> None:
    config = _config(min_requests=10, min_labelled_rows=20, max_quality_drop=0.05)
    log = _mixed(10, 0)
    at = judge_canary(log, "2", config, timed_out=False, quality=_reading(20, 0.05))
    assert at.decision == "promote"
    assert at.reason == (
        "canary healthy: 10 challenger requests, error rate 0.00%, p99 10.0 ms, "
        "live accuracy 0.8 over 20 rows vs 0.85 (champion live)"
    )
    over = judge_canary(log, "2", config, timed_out=False, quality=_reading(20, 0.0501))
    assert over.decision == "rollback" and over.reason.startswith("live accuracy 0.8 is 0.05 worse")
    # A bound over too few labelled rows is not judged yet.
    early = judge_canary(log, "2", config, timed_out=False, quality=_reading(19, 0.5))
    assert early.decision == "wait"


def test_time_out_with_min_requests_but_too_few_labels_names_the_labels() -> None:
    config = _config(min_requests=10, min_labelled_rows=20)
    verdict = judge_canary(_mixed(10, 0), "2", config, timed_out=True, quality=_reading(19, None))
    assert verdict.decision == "rollback"
    assert verdict.reason == "only 19 of 20 labelled challenger rows before the time limit"


def test_canary_tags_record_every_figure() -> None:
    verdict = CanaryVerdict(
        "promote", 40, 0.025, 12.345, "ok",
        QualityReading("rmse", 30, 1.5, 1.25, "challenger offline test", drop_bound=0.125),
    )  # fmt: skip
    assert canary_tags(verdict) == {
        lineage.CANARY_REQUESTS: "40",
        lineage.CANARY_ERROR_RATE: "0.0250",
        lineage.CANARY_P99_MS: "12.35",
        lineage.CANARY_QUALITY_METRIC: "rmse",
        lineage.CANARY_QUALITY_ROWS: "30",
        lineage.CANARY_QUALITY_VALUE: "1.5",
        lineage.CANARY_QUALITY_BASELINE: "1.25",
        lineage.CANARY_QUALITY_BASELINE_SOURCE: "challenger offline test",
        lineage.CANARY_QUALITY_DROP_BOUND: "0.125",
    }
    unlabelled = CanaryVerdict(
        "wait", 1, 0.0, 1.0, "", QualityReading("rmse", 0, None, None, "no baseline")
    )
    assert set(canary_tags(unlabelled)) == {
        lineage.CANARY_REQUESTS, lineage.CANARY_ERROR_RATE, lineage.CANARY_P99_MS,
        lineage.CANARY_QUALITY_METRIC, lineage.CANARY_QUALITY_ROWS,
    }  # fmt: skip


def test_time_out_with_too_few_requests_names_the_requests_even_with_labels() -> None:
    config = _config(min_requests=10, min_labelled_rows=20)
    verdict = judge_canary(_mixed(9, 0), "2", config, timed_out=True, quality=_reading(5, None))
    assert verdict.decision == "rollback"
    assert verdict.reason == "only 9 of 10 challenger requests before the time limit"
