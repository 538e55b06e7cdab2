"""Serving efficiency of a serving-log window, per model version: requests and rows, request
latency percentiles, throughput, and errors split by whose fault they are (``4xx`` the
request's, ``5xx`` the model's; ``docs/serving-log.md``, column ``status``).

``latency_ms`` is the whole request's latency, repeated on each of its rows, so every figure
here counts a request once (its first row). Latency percentiles are over answered (``ok``)
requests: a refused request's time measures validation, not the model. Throughput divides by
the window's time span (first to last request of the whole window, or ``start``..``end``), so
versions sharing a window are comparable. Exact percentiles (numpy's linear interpolation) on
one machine. Pure pandas / numpy (no Prefect, no MLflow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import MonitoringError

REQUIRED_COLUMNS = ("request_id", "model_version", "timestamp", "status", "latency_ms")
NO_VERSION = "none"
"""``model_version`` shown for requests refused before a model version was chosen."""


@dataclass
class VersionEfficiency:
    """Efficiency of one model version over a window (latency in milliseconds).

    ``error_rate`` is the share of requests that failed on the model (``5xx``); percentiles
    are None without answered requests, throughput None when the window spans no time;
    ``slo_met`` is None without an SLO or a p99.
    """

    model_version: str
    requests: int = 0
    rows: int = 0
    ok_requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    requests_per_second: float | None = None
    rows_per_second: float | None = None
    span_seconds: float = 0.0
    slo_p99_ms: float | None = None
    slo_met: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def _span_seconds(
    timestamps: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> float:
    times = pd.to_datetime(timestamps, utc=True)
    first = pd.Timestamp(start) if start is not None else times.min()
    last = pd.Timestamp(end) if end is not None else times.max()
    if pd.isna(first) or pd.isna(last):
        return 0.0
    if first.tzinfo is None:
        first = first.tz_localize("UTC")
    if last.tzinfo is None:
        last = last.tz_localize("UTC")
    return max(0.0, float((last - first).total_seconds()))


def _percentile(latencies: np.ndarray, q: float) -> float | None:
    return float(np.percentile(latencies, q)) if latencies.size else None


def efficiency(
    window: pd.DataFrame,
    *,
    slo_p99_ms: float | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> list[VersionEfficiency]:
    """Per model version of ``window`` (sorted by version; requests without a version under
    ``NO_VERSION``): request and row counts, ``4xx`` / ``5xx`` counts, the 5xx error rate,
    p50/p95/p99 latency of answered requests, requests and rows per second over the window's
    span, and whether p99 meets ``slo_p99_ms``. An empty window gives an empty list.

    Raises:
        MonitoringError: a column the figures need is missing (named), or ``slo_p99_ms`` is
            not positive.
    """
    if slo_p99_ms is not None and not slo_p99_ms > 0:
        raise MonitoringError(f"efficiency: slo_p99_ms must be positive, got {slo_p99_ms!r}")
    if window.empty:
        return []
    missing = [c for c in REQUIRED_COLUMNS if c not in window.columns]
    if missing:
        raise MonitoringError(
            f"efficiency: the serving-log window lacks column(s) {missing}; "
            f"its columns are {list(window.columns)}"
        )
    span = _span_seconds(window["timestamp"], start, end)
    frame = window.assign(
        model_version=window["model_version"].astype("string").fillna(NO_VERSION),
        status=window["status"].astype(str),
    )
    out: list[VersionEfficiency] = []
    for version, rows in frame.groupby("model_version", sort=True):
        requests = rows.drop_duplicates("request_id")
        status = requests["status"]
        ok = requests.loc[status == "ok", "latency_ms"].to_numpy(dtype=float)
        ok = ok[np.isfinite(ok)]
        n = len(requests)
        server = int(status.str.startswith("5").sum())
        p99 = _percentile(ok, 99)
        out.append(
            VersionEfficiency(
                model_version=str(version),
                requests=n,
                rows=len(rows),
                ok_requests=int((status == "ok").sum()),
                client_errors=int(status.str.startswith("4").sum()),
                server_errors=server,
                error_rate=server / n,
                p50_ms=_percentile(ok, 50),
                p95_ms=_percentile(ok, 95),
                p99_ms=p99,
                requests_per_second=n / span if span > 0 else None,
                rows_per_second=len(rows) / span if span > 0 else None,
                span_seconds=span,
                slo_p99_ms=slo_p99_ms,
                slo_met=None if slo_p99_ms is None or p99 is None else p99 <= slo_p99_ms,
            )
        )
    return out
