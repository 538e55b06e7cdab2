"""Infra-validation verdicts as pure functions: answers against the offline ones, errors, SLO."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import Models

from prefect_mlops.deployment.infra_validation import (
    InfraValidationReport,
    count_mismatches,
    infra_validation_tags,
    judge_infra_validation,
    not_started_report,
    offline_predictions,
    percentile,
    report_markdown,
)
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import InfraValidationError, ServiceStartError
from prefect_mlops.registry import lineage


def _config(**kwargs: object) -> DeploymentConfig:
    return DeploymentConfig(model_name="m", **kwargs)


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


def _judge(**kwargs: object) -> InfraValidationReport:
    figures: dict[str, object] = {"rows": 10, "latencies_ms": [5.0], "errors": 0, "mismatches": 0}
    config = _config(latency_slo_ms=100, max_errors=1)
    return judge_infra_validation(**{**figures, **kwargs}, config=config)  # type: ignore[arg-type]


def test_failed_requests_up_to_max_errors_pass() -> None:
    assert _judge(errors=1).passed
    failed = _judge(errors=2)
    assert not failed.passed
    assert failed.reasons == ["2 failed requests (allowed 1)"]


def test_one_mismatch_fails() -> None:
    report = _judge(mismatches=1)
    assert report.reasons == ["1 of 10 predictions differ from the offline ones"]


def test_a_p99_at_the_slo_fails_and_just_under_passes() -> None:
    assert not _judge(latencies_ms=[100.0]).passed
    assert _judge(latencies_ms=[99.99]).passed


def test_report_figures_and_percentiles() -> None:
    report = _judge(latencies_ms=[float(i) for i in range(1, 101)])
    assert report.requests == 100
    assert report.p50_ms == pytest.approx(50.5) and report.p99_ms == pytest.approx(99.01)
    assert percentile([], 99) == 0.0


def test_a_candidate_that_did_not_start_fails_with_its_reason() -> None:
    report = not_started_report(40, ServiceStartError("exited with code 1: cannot load"))
    assert not report.passed and (report.mismatches, report.errors, report.requests) == (40, 1, 0)
    assert report.summary().startswith(
        "infra-validation failed: the candidate did not start: exited with code 1: cannot load"
    )
    assert len(not_started_report(1, ServiceStartError("x" * 5000)).reasons[0]) == 1500


def test_tags_and_page_say_what_was_measured() -> None:
    report = _judge(latencies_ms=[5.0, 7.0])
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tags = infra_validation_tags(report, at)
    assert tags == {
        lineage.INFRA_VALIDATION: "passed",
        lineage.INFRA_VALIDATION_REASON: report.summary(),
        lineage.INFRA_VALIDATION_P99_MS: "6.98",
        lineage.INFRA_VALIDATION_AT: at.astimezone().isoformat(),
    }
    failed = infra_validation_tags(_judge(errors=5), at)
    assert failed[lineage.INFRA_VALIDATION] == "failed"
    page = report_markdown("churn", "3", _judge(errors=5))
    assert page.startswith("# Infra-validation of churn v3: FAILED\n")
    assert "| errors | 5 |" in page and "reasons" not in page.split("| figure")[1]


def test_a_version_without_offline_predictions_is_named(models: Models, tmp_path: Path) -> None:
    version = models.version()
    with pytest.raises(InfraValidationError, match=f"{models.name} v{version}: .* no predictions"):
        offline_predictions(models.client, models.name, version, tmp_path)
