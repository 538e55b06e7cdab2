"""The monitoring run's pieces outside the checks (``monitoring.runner``): the window's bounds,
the config a run uses, MLflow metric keys and the metrics of a result."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from prefect_mlops.config import MonitoringConfig, TrainingConfig
from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring.runner import (
    MonitoringResult,
    MonitoringTarget,
    metric_key,
    monitoring_config,
    monitoring_experiment,
    result_metrics,
    window_bounds,
)
from prefect_mlops.registry import lineage

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


# -- window_bounds ------------------------------------------------------------------------------


def test_window_defaults_to_max_window_days_before_now() -> None:
    config = MonitoringConfig(max_window_days=3)
    assert window_bounds(config, start=None, end=None, last_end=None, now=NOW) == (
        NOW - timedelta(days=3),
        NOW,
    )


def test_window_without_now_ends_about_now() -> None:
    before = datetime.now(UTC)
    start, end = window_bounds(MonitoringConfig(), start=None, end=None, last_end=None)
    assert before <= end <= datetime.now(UTC)
    assert end - start == timedelta(days=7)


def test_window_starts_at_the_last_windows_end() -> None:
    last = NOW - timedelta(hours=5)
    assert window_bounds(MonitoringConfig(), start=None, end=None, last_end=last, now=NOW) == (
        last,
        NOW,
    )


def test_window_from_a_last_end_older_than_max_window_days_is_bounded() -> None:
    config = MonitoringConfig(max_window_days=1)
    start, end = window_bounds(
        config, start=None, end=NOW, last_end=NOW - timedelta(days=30), now=None
    )
    assert (start, end) == (NOW - timedelta(days=1), NOW)


def test_window_bound_is_measured_from_the_given_end_not_now() -> None:
    end = NOW - timedelta(days=20)
    start, stop = window_bounds(
        MonitoringConfig(max_window_days=2), start=None, end=end, last_end=None, now=NOW
    )
    assert (start, stop) == (end - timedelta(days=2), end)


def test_a_given_start_is_kept_even_before_the_bound_and_the_last_end() -> None:
    start = NOW - timedelta(days=60)
    got = window_bounds(
        MonitoringConfig(max_window_days=1),
        start=start,
        end=NOW,
        last_end=NOW - timedelta(hours=1),
    )
    assert got == (start, NOW)


def test_window_naive_times_are_utc_and_others_converted() -> None:
    plus_two = timezone(timedelta(hours=2))
    start, end = window_bounds(
        MonitoringConfig(),
        start=datetime(2026, 6, 1, 8, 0),
        end=datetime(2026, 6, 1, 12, 0, tzinfo=plus_two),
        last_end=None,
    )
    assert start == datetime(2026, 6, 1, 8, 0, tzinfo=UTC) and start.tzinfo is UTC
    assert end == datetime(2026, 6, 1, 10, 0, tzinfo=UTC) and end.tzinfo is UTC


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=1)], ids=["equal", "after"])
def test_window_start_not_before_end_is_a_config_error(offset: timedelta) -> None:
    with pytest.raises(ConfigError, match=r"window: start .* is not before end") as caught:
        window_bounds(MonitoringConfig(), start=NOW + offset, end=NOW, last_end=None)
    assert (NOW + offset).isoformat() in str(caught.value) and NOW.isoformat() in str(caught.value)


def test_window_whose_last_end_is_after_the_end_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not before end"):
        window_bounds(MonitoringConfig(), start=None, end=NOW, last_end=NOW + timedelta(minutes=1))


# -- the config and the target -------------------------------------------------------------------


def _target(
    config: TrainingConfig | None = None, tags: dict[str, str] | None = None
) -> MonitoringTarget:
    return MonitoringTarget("m", "3", "run-1", dict(tags or {}), config)


def test_monitoring_config_given_then_trained_with_then_defaults() -> None:
    trained = TrainingConfig.model_validate(
        {
            "model_name": "m",
            "data": {"path": "x.csv"},
            "target": "y",
            "monitoring": {"min_rows": 7},
        }
    )
    given = MonitoringConfig(min_rows=3)
    assert monitoring_config(_target(trained), given) is given
    assert monitoring_config(_target(trained), None).min_rows == 7
    assert monitoring_config(_target(None), None) == MonitoringConfig()


def test_target_reads_task_and_target_from_lineage_tags() -> None:
    target = _target(tags={lineage.TASK: "classification", lineage.TARGET: "churned"})
    assert (target.task, target.target_column) == ("classification", "churned")
    assert (_target().task, _target().target_column) == (None, None)


def test_monitoring_experiment_name() -> None:
    assert monitoring_experiment("churn") == "churn-monitoring"


# -- metric keys and metrics -------------------------------------------------------------------


def test_metric_key_joins_parts_and_replaces_what_mlflow_refuses() -> None:
    assert metric_key("drift", "monthly_charges", "score") == "drift.monthly_charges.score"
    assert metric_key("drift", "a b/c-d", "score") == "drift.a b/c-d.score"
    assert metric_key("drift", "prix€<x>", "score") == "drift.prix__x_.score"


def _column(column: str, score: Any, drifted: bool, error: str | None = None) -> dict[str, Any]:
    return {"column": column, "score": score, "drifted": drifted, "error": error}


def _result(**fields: Any) -> MonitoringResult:
    base: dict[str, Any] = {
        "model_name": "m",
        "version": "3",
        "status": "monitored",
        "message": "",
        "window_start": NOW - timedelta(hours=1),
        "window_end": NOW,
        "rows": 120,
    }
    return MonitoringResult(**{**base, **fields})


def test_result_metrics_holds_every_score() -> None:
    result = _result(
        feature_drift={
            "columns": [
                _column("age", 0.25, True),
                _column("region", None, False, "all 120 window rows are null"),
                _column("odd key!", float("nan"), False),
            ],
            "drifted_share": 0.5,
        },
        prediction={"columns": [_column("prediction", 0.01, False)], "drifted_share": 0.0},
        skew={"findings": [{"column": "age"}], "missing_columns": ["x", "y"]},
        live_quality={"value": 0.8, "n_labelled": 40, "status": "measured", "ok": True},
        estimated_quality={"metrics": {"accuracy": 0.7}, "reference": None},
        efficiency=[{"model_version": "3", "p99_ms": 12.5, "requests": 10, "slo_met": None}],
    )
    metrics = result_metrics(result)
    assert metrics == {
        "window.rows": 120.0,
        "drift.age.score": 0.25,
        "drift.age.drifted": 1.0,
        "drift.region.drifted": 0.0,  # no score: only the verdict
        "drift.odd key_.drifted": 0.0,  # NaN score left out, key made legal
        "drift.drifted_share": 0.5,
        "prediction_drift.prediction.score": 0.01,
        "prediction_drift.prediction.drifted": 0.0,
        "prediction_drift.drifted_share": 0.0,
        "skew.findings": 1.0,
        "skew.missing_columns": 2.0,
        "skew.unexpected_columns": 0.0,
        "quality.realised.value": 0.8,
        "quality.realised.n_labelled": 40.0,
        "quality.realised.ok": 1.0,  # booleans as 0/1; strings and dicts left out
        "efficiency.v3.p99_ms": 12.5,
        "efficiency.v3.requests": 10.0,
    }
    assert all(math.isfinite(v) for v in metrics.values())


def test_result_metrics_of_nothing_to_monitor_is_the_row_count() -> None:
    result = _result(status="nothing_to_monitor", rows=3)
    assert result_metrics(result) == {"window.rows": 3.0}


def test_result_metrics_leave_infinities_out() -> None:
    result = _result(efficiency=[{"model_version": "2", "requests_per_second": float("inf")}])
    assert result_metrics(result) == {"window.rows": 120.0}
