"""Efficiency of a serving-log window: counts per request, not per row; faults split by status."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import MonitoringError
from prefect_mlops.monitoring.efficiency import NO_VERSION, efficiency

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _request(
    rid: str, version: str | None, seconds: float, latency: float, status: str = "ok", rows: int = 1
) -> list[dict[str, object]]:
    return [
        {
            "request_id": rid,
            "row_index": i,
            "timestamp": T0 + pd.Timedelta(seconds=seconds),
            "model_version": version,
            "variant": "champion",
            "status": status,
            "latency_ms": latency,
            "error": None if status == "ok" else "bad",
            "prediction": 1 if status == "ok" else None,
        }
        for i in range(rows)
    ]


def _window(*requests: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame([row for request in requests for row in request])


def test_a_request_of_many_rows_counts_once_in_latency_and_requests() -> None:
    window = _window(
        _request("a", "1", 0, 10.0, rows=98),  # one slow-looking request repeated on 98 rows
        _request("b", "1", 5, 20.0),
        _request("c", "1", 10, 30.0),
    )
    [v1] = efficiency(window)
    assert (v1.model_version, v1.requests, v1.rows, v1.ok_requests) == ("1", 3, 100, 3)
    assert v1.p50_ms == 20.0  # per row it would be 10.0
    assert v1.p99_ms == pytest.approx(np.percentile([10.0, 20.0, 30.0], 99))
    assert v1.span_seconds == 10.0
    assert v1.requests_per_second == pytest.approx(0.3)
    assert v1.rows_per_second == pytest.approx(10.0)
    assert (v1.error_rate, v1.client_errors, v1.server_errors) == (0.0, 0, 0)


def test_errors_are_split_by_fault_and_only_5xx_count_as_the_model_error_rate() -> None:
    window = _window(
        _request("a", "2", 0, 12.0),
        _request("b", "2", 1, 1.0, status="422"),
        _request("c", "2", 2, 1.0, status="413"),
        _request("d", "2", 3, 900.0, status="500"),
    )
    [v2] = efficiency(window)
    assert (v2.requests, v2.client_errors, v2.server_errors) == (4, 2, 1)
    assert v2.error_rate == 0.25
    assert v2.p50_ms == v2.p99_ms == 12.0  # refused and failed requests are not model latency


def test_versions_are_apart_and_share_the_window_span() -> None:
    window = _window(
        _request("a", "1", 0, 5.0),
        _request("b", "2", 50, 7.0),
        _request("c", "1", 100, 9.0),
        _request("d", None, 20, 0.5, status="400"),  # refused before a version was chosen
    )
    by_version = {v.model_version: v for v in efficiency(window)}
    assert sorted(by_version) == ["1", "2", NO_VERSION]
    assert by_version["2"].requests_per_second == pytest.approx(1 / 100)
    assert by_version["1"].requests_per_second == pytest.approx(2 / 100)
    assert by_version[NO_VERSION].p99_ms is None
    assert by_version[NO_VERSION].client_errors == 1


def test_the_slo_is_judged_on_p99() -> None:
    window = _window(*[_request(f"r{i}", "1", i, float(i + 1)) for i in range(100)])
    [met] = efficiency(window, slo_p99_ms=100.0)
    [missed] = efficiency(window, slo_p99_ms=50.0)
    assert (met.slo_met, missed.slo_met) == (True, False)
    assert efficiency(window)[0].slo_met is None


def test_an_explicit_window_span_sets_throughput() -> None:
    window = _window(_request("a", "1", 0, 5.0), _request("b", "1", 10, 5.0))
    [v] = efficiency(window, start=T0, end=T0 + pd.Timedelta(seconds=100))
    assert v.requests_per_second == pytest.approx(0.02)


def test_one_instant_has_no_throughput_but_has_latency() -> None:
    [v] = efficiency(_window(_request("a", "1", 0, 5.0)))
    assert (v.requests_per_second, v.rows_per_second, v.p50_ms) == (None, None, 5.0)


def test_an_empty_window_gives_no_versions() -> None:
    assert efficiency(pd.DataFrame(columns=["request_id", "model_version"])) == []


def test_to_dict_is_json() -> None:
    [v] = efficiency(_window(_request("a", "1", 0, 5.0), _request("b", "1", 1, 7.0)))
    data = json.loads(json.dumps(v.to_dict()))
    assert data["model_version"] == "1"
    assert data["requests"] == 2
    assert data["p50_ms"] == 6.0


def test_a_missing_column_is_named() -> None:
    window = _window(_request("a", "1", 0, 5.0)).drop(columns=["latency_ms"])
    with pytest.raises(MonitoringError, match=r"lacks column\(s\) \['latency_ms'\]"):
        efficiency(window)


@pytest.mark.parametrize("slo", [0.0, -5.0])
def test_a_non_positive_slo_is_refused(slo: float) -> None:
    with pytest.raises(MonitoringError, match="slo_p99_ms must be positive"):
        efficiency(_window(_request("a", "1", 0, 5.0)), slo_p99_ms=slo)
