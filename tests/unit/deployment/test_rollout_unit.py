"""Deployment verdicts as pure functions: infra-validation, canary, shadow agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from prefect_mlops.deployment.canary import judge_canary
from prefect_mlops.deployment.infra_validation import count_mismatches, judge_infra_validation
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.serving_evidence import challenger_load_error, unserved_challenger
from prefect_mlops.deployment.shadow import judge_shadow, shadow_agreement
from prefect_mlops.serving.routing import request_fraction


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


def test_infra_validation_passes_and_fails_with_named_reasons() -> None:
    ok = judge_infra_validation(
        rows=100, latencies_ms=[5.0] * 10, errors=0, mismatches=0, config=_config()
    )
    assert ok.passed and ok.p99_ms == pytest.approx(5.0)
    bad = judge_infra_validation(
        rows=100,
        latencies_ms=[5.0] * 9 + [900.0],
        errors=1,
        mismatches=3,
        config=_config(latency_slo_ms=100),
    )
    assert not bad.passed
    text = bad.summary()
    assert "1 failed requests" in text
    assert "3 of 100 predictions differ" in text
    assert "SLO 100.0 ms" in text


def test_count_mismatches_numbers_and_labels() -> None:
    assert count_mismatches(np.array([0.1, 0.2]), np.array([0.1, 0.2000000001])) == 0
    assert count_mismatches(np.array([0.1, 0.3]), np.array([0.1, 0.2])) == 1
    served = np.array(["a", None, "c"], dtype=object)
    assert count_mismatches(served, np.array(["a", "b", "c"])) == 1
    assert count_mismatches(np.array([1]), np.array([1, 2])) == 2


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


def test_shadow_agreement_pairs_rows_by_request() -> None:
    champion = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row_index": [0, 1, 0], "variant": "champion",
         "model_version": "1", "prediction": ["1", "0", "1"]}
    )  # fmt: skip
    shadow = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row_index": [0, 1, 0], "variant": "shadow",
         "model_version": "2", "prediction": ["1", "1", "1"]}
    )  # fmt: skip
    compared, agreement = shadow_agreement(pd.concat([champion, shadow]), "2")
    assert compared == 3
    assert agreement == pytest.approx(2 / 3)
    assert shadow_agreement(pd.DataFrame(), "2") == (0, 0.0)


def test_deployment_config_names_bad_fields() -> None:
    with pytest.raises(ValidationError, match="canary_share"):
        _config(canary_share=1.5)
    with pytest.raises(ValidationError, match="strategy"):
        _config(strategy="big-bang")
    with pytest.raises(ValidationError, match="version"):
        _config(version="latest")


STARTED = "2026-01-01T12:00:00+00:00"


def _metadata(error: str | None, version: str = "3", started_at: str = STARTED) -> dict:
    rollout = {"mode": "canary", "challenger_version": version, "started_at": started_at}
    return {"challenger_error": error, "rollout": rollout, "challenger": None}


def test_challenger_load_error_only_for_this_rollout() -> None:
    error = "the canary challenger is not served: cannot load models:/m/3: OSError: gone"
    assert challenger_load_error(_metadata(error), "3", STARTED) == error
    # Serving it, not yet seen this rollout, another version or an earlier rollout: no error.
    assert challenger_load_error(_metadata(None), "3", STARTED) is None
    assert challenger_load_error({"challenger_error": None, "rollout": None}, "3", STARTED) is None
    assert challenger_load_error(_metadata(error, version="4"), "3", STARTED) is None
    assert challenger_load_error(_metadata(error, started_at="2025-12-31"), "3", STARTED) is None
    assert challenger_load_error({}, "3", STARTED) is None


def _served(variant: str, version: str, ids: list[str], seconds: float) -> pd.DataFrame:
    at = pd.Timestamp(STARTED) + pd.Timedelta(seconds=seconds)
    return pd.DataFrame(
        {"request_id": ids, "row_index": 0, "timestamp": at, "model_name": "m",
         "variant": variant, "model_version": version, "status": "ok", "latency_ms": 5.0,
         "prediction": "1"}
    )  # fmt: skip


def _ids(n: int, *, routed: bool) -> list[str]:
    """``n`` request ids the canary share 0.5 gives to the challenger (or not)."""
    ids = (f"r-{i}" for i in range(10_000))
    return [i for i in ids if (request_fraction(i) < 0.5) == routed][:n]


def _unserved(log: pd.DataFrame, mode: str = "canary", **kwargs: object) -> str | None:
    config = _config(**{"takeover_seconds": 30, "min_requests": 50, **kwargs})
    return unserved_challenger(
        log, model_name="m", version="3", mode=mode, share=0.5 if mode == "canary" else 0.0,
        started_at=STARTED, config=config,
    )  # fmt: skip


def test_unserved_challenger_needs_champion_answers_after_the_takeover_time() -> None:
    routed = _ids(12, routed=True)
    # Champion answers to the challenger's share after the takeover time, none by v3.
    reason = _unserved(_served("champion", "1", routed, 40))
    assert reason is not None
    assert "has not loaded v3" in reason and "12 requests" in reason
    # Before the takeover time (the service may not have reloaded yet): no evidence.
    assert _unserved(_served("champion", "1", routed, 20)) is None
    # The champion's own share does not count; too few requests do not either.
    assert _unserved(_served("champion", "1", _ids(30, routed=False), 40)) is None
    assert _unserved(_served("champion", "1", routed[:9], 40)) is None
    assert _unserved(_served("champion", "1", routed[:5], 40), min_requests=5) is not None
    # One challenger answer shows it is loaded; other models' rows do not count.
    served = pd.concat([_served("champion", "1", routed, 40), _served("challenger", "3", ["x"], 1)])
    assert _unserved(served) is None
    other = _served("champion", "1", routed, 40).assign(model_name="other")
    assert _unserved(other) is None
    assert _unserved(pd.DataFrame()) is None


def test_unserved_shadow_counts_every_champion_request() -> None:
    ids = [f"s-{i}" for i in range(10)]
    reason = _unserved(_served("champion", "1", ids, 45), mode="shadow")
    assert reason is not None and "all 10 requests" in reason
    shadowed = pd.concat([_served("champion", "1", ids, 45), _served("shadow", "3", ids[:1], 45)])
    assert _unserved(shadowed, mode="shadow") is None


def test_not_served_rolls_back_canary_and_shadow_at_once() -> None:
    config = _config(min_requests=50)
    log = _log("challenger", "2", ["ok"] * 5, 10.0)
    canary = judge_canary(log, "2", config, timed_out=False, not_served="cannot load v2: gone")
    assert canary.decision == "rollback"
    assert canary.reason.startswith("cannot load v2: gone (5 challenger requests")
    shadow = judge_shadow(pd.DataFrame(), "2", config, timed_out=False, not_served="gone")
    assert (shadow.decision, shadow.compared) == ("rollback", 0)
    assert shadow.reason.startswith("gone (shadow agreement")


def test_shadow_waits_until_enough_rows_or_time() -> None:
    champion = _log("champion", "1", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    shadow = _log("shadow", "2", ["ok"] * 4, 5.0).assign(request_id=list("abcd"))
    log = pd.concat([champion, shadow])
    assert judge_shadow(log, "2", _config(min_requests=5), timed_out=False).decision == "wait"
    done = judge_shadow(log, "2", _config(min_requests=4), timed_out=False)
    assert (done.decision, done.compared, done.agreement) == ("done", 4, 1.0)
    assert done.reason == "shadow agreement 100.00% over 4 rows"
    late = judge_shadow(log, "2", _config(min_requests=5), timed_out=True)
    assert late.decision == "done"


def test_service_urls_must_be_http() -> None:
    assert _config(service_urls=["http://127.0.0.1:3000"]).service_urls
    with pytest.raises(ValidationError, match=r"service_urls: '127\.0\.0\.1:3000'"):
        _config(service_urls=["127.0.0.1:3000"])
