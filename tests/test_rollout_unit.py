"""Deployment verdicts as pure functions: infra-validation, canary, shadow agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from prefect_mlops.rollout import (
    DeploymentConfig,
    count_mismatches,
    judge_canary,
    judge_infra_validation,
    shadow_agreement,
)


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
