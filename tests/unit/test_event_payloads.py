"""What the monitoring result turns into events, and the trigger a retrain run accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from prefect_mlops import events
from prefect_mlops.config import MonitoringConfig
from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring.runner import MonitoringResult

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _result(**verdicts: Any) -> MonitoringResult:
    base: dict[str, Any] = {
        "model_name": "churn",
        "version": "3",
        "status": "monitored",
        "message": "m",
        "window_start": T0,
        "window_end": T0.replace(hour=1),
        "rows": 5000,
    }
    return MonitoringResult(**{**base, **verdicts})


def _drift(columns: list[tuple[str, float, bool]]) -> dict[str, Any]:
    return {
        "drift_share": 0.5,
        "drifted_share": sum(d for *_, d in columns) / len(columns),
        "dataset_drift": True,
        "columns": [
            {"column": c, "method": "wasserstein", "score": s, "threshold": 0.1, "drifted": d}
            for c, s, d in columns
        ],
    }


def test_a_quiet_window_calls_for_no_event() -> None:
    assert events.monitoring_events(_result(), MonitoringConfig()) == []


def test_nothing_to_monitor_calls_for_no_event_whatever_it_says() -> None:
    quiet = _result(status="nothing_to_monitor", dataset_drift=True, failing=True)
    assert events.monitoring_events(quiet, MonitoringConfig()) == []


def test_dataset_drift_is_one_drift_event_with_the_drifted_columns_and_scores() -> None:
    result = _result(
        dataset_drift=True,
        drifted_columns=["age", "region"],
        feature_drift=_drift(
            [("age", 0.31, True), ("region", 0.12, True), ("tenure", 0.01, False)]
        ),
    )
    [pending] = events.monitoring_events(result, MonitoringConfig())
    assert pending.event == events.DRIFT_DETECTED and pending.version == "3"
    columns = {c["column"]: c for c in pending.payload["drifted_columns"]}
    assert set(columns) == {"age", "region"}
    assert columns["age"]["score"] == 0.31 and columns["age"]["threshold"] == 0.1
    assert pending.payload["dataset_drift"] is True
    assert "age" in pending.reason


def test_a_failing_version_is_one_failing_event_with_its_reasons() -> None:
    result = _result(failing=True, failing_reasons=["error rate 30.00% of requests above 1.00%"])
    [pending] = events.monitoring_events(result, MonitoringConfig())
    assert pending.event == events.MODEL_FAILING
    assert "error rate 30.00%" in pending.reason
    assert pending.payload["reasons"] == result.failing_reasons


def test_payload_lists_are_capped() -> None:
    many = [(f"c{i}", 0.5, True) for i in range(50)]
    result = _result(
        dataset_drift=True, drifted_columns=[c for c, *_ in many], feature_drift=_drift(many)
    )
    [pending] = events.monitoring_events(result, MonitoringConfig())
    assert len(pending.payload["drifted_columns"]) == events.MAX_LISTED


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"version": "3", "reason": "drift"}, "trigger.event"),
        ({"event": "mlops.drift.detected", "version": "3"}, "trigger.reason"),
        ({"event": "mlops.drift.detected", "version": "v3", "reason": "r"}, "trigger.version"),
        ({"event": "mlops.model.blessed", "version": "3", "reason": "r"}, "trigger.event"),
        ({"event": "mlops.drift.detected", "reason": "r", "extra": 1}, "trigger.extra"),
        (
            {"event": "mlops.drift.detected", "reason": "r", "model_name": "other"},
            "trigger.model_name",
        ),
    ],
)
def test_a_bad_trigger_names_its_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        events.parse_trigger(raw, "churn")


def test_a_good_trigger_is_typed_and_its_version_a_string() -> None:
    trigger = events.parse_trigger(
        {"event": "mlops.data.arrived", "version": 7, "reason": "1,200 new rows"}, "churn"
    )
    assert trigger is not None and trigger.version == "7"
    assert events.parse_trigger(None, "churn") is None
