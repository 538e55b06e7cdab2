"""The serving log: one row per scored request row, as partitioned Parquet (and optionally SQL).

This is what monitoring reads. The schema is stable and documented in ``docs/serving-log.md``:

=================  ===========================  ============================================
column             type                         meaning
=================  ===========================  ============================================
request_id         string                       the server's id of the HTTP request (response
                                                ``request_id``; routed and sampled on)
client_request_id  string or null               the client's ``X-Request-ID`` when kept
timestamp          timestamp[us, UTC]           when the request arrived
model_name         string                       registered model name
model_version      string                       version that produced ``prediction``
variant            string                       ``champion`` | ``challenger`` | ``shadow``
row_index          int64                        position of the row within the request
features           string (JSON)                the row as received (signature columns)
prediction         string (JSON)                the predicted value
probabilities      string (JSON) or null        class probabilities (classifiers)
latency_ms         float64                      whole-request latency
status             string                       ``ok`` or the HTTP status code (``"422"``):
                                                ``4xx`` the request's fault, ``5xx`` the model's
error              string or null               the error message of a failed request, and/or
                                                ``X-Request-ID refused: <reason>`` (any request)
=================  ===========================  ============================================

Files: ``<dir>/date=YYYY-MM-DD/part-<UTC timestamp>-<uuid>.parquet``, each written to a hidden
temporary name first and renamed into place, so a reader never sees a partial file and files of
earlier runs (or other workers) are never touched. A :class:`ServingLogWriter` takes rows without
blocking (a queue) and a background thread writes what is queued every ``flush_seconds`` seconds,
as soon as ``flush_rows`` rows wait, and on :meth:`ServingLogWriter.close`. A failing sink is
counted, never raised to the caller. Files written before ``client_request_id`` existed read
with it null; a SQL table made before it gets the column added on the first write.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from prefect_mlops.files import atomic_path

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "request_id",
    "client_request_id",
    "timestamp",
    "model_name",
    "model_version",
    "variant",
    "row_index",
    "features",
    "prediction",
    "probabilities",
    "latency_ms",
    "status",
    "error",
)
SQL_TABLE = "serving_log"


@dataclass
class RequestRecord:
    """One answered (or refused) request; expanded to one log row per request row."""

    request_id: str
    timestamp: datetime
    model_name: str | None
    model_version: str | None
    variant: str
    latency_ms: float
    status: str = "ok"
    error: str | None = None
    client_request_id: str | None = None
    features: pd.DataFrame | None = None
    predictions: list[Any] | None = None
    probabilities: list[list[float]] | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The log rows of this request (one row with null features for a refused request)."""
        base = {
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
            "timestamp": self.timestamp,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "variant": self.variant,
            "latency_ms": float(self.latency_ms),
            "status": self.status,
            "error": self.error,
        }
        if self.features is None or self.predictions is None:
            return [
                {
                    **base,
                    "row_index": 0,
                    "features": None,
                    "prediction": None,
                    "probabilities": None,
                }
            ]
        features = self.features.to_json(orient="records", lines=True, date_format="iso")
        lines = features.splitlines()
        probs = self.probabilities
        return [
            {
                **base,
                "row_index": i,
                "features": lines[i],
                "prediction": json.dumps(self.predictions[i]),
                "probabilities": json.dumps(probs[i]) if probs is not None else None,
            }
            for i in range(len(self.predictions))
        ]


def _n_rows(item: Any) -> int:
    if isinstance(item, RequestRecord) and item.predictions is not None:
        return len(item.predictions)
    return 1


def arrow_schema() -> Any:
    """The pyarrow schema of a serving-log file."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("client_request_id", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("variant", pa.string()),
            ("row_index", pa.int64()),
            ("features", pa.string()),
            ("prediction", pa.string()),
            ("probabilities", pa.string()),
            ("latency_ms", pa.float64()),
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    )


@dataclass
class LogStats:
    """Counters of a writer (shown by the service's ``/metadata``)."""

    queued: int = 0
    written_rows: int = 0
    written_files: int = 0
    sql_rows: int = 0
    failures: int = 0
    dropped_rows: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ServingLogWriter:
    """Appends serving-log rows to Parquet files under ``directory`` (and a SQL table).

    :meth:`log` never blocks and never raises; rows beyond ``max_queue`` waiting rows are
    dropped and counted. The background thread wakes every ``flush_seconds``, or when
    ``flush_rows`` rows wait, and writes everything queued in one go: it never wakes per
    request, which would take the GIL from the request path (~1 ms a request). Call
    :meth:`close` on shutdown to flush what is queued.
    """

    def __init__(
        self,
        directory: Path | str,
        db_url: str | None = None,
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 1.0,
        max_queue: int = 1_000_000,
    ) -> None:
        self.directory = Path(directory)
        self.db_url = db_url
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self.stats = LogStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting_rows = 0  # rows logged since the thread last drained the queue
        self._engine: Any = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._flushed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="serving-log", daemon=True)
        self._thread.start()

    # -- producer side ------------------------------------------------------------------------

    def log(self, items: list[dict[str, Any] | RequestRecord]) -> None:
        """Queue rows (dicts with the :data:`COLUMNS` keys) or whole :class:`RequestRecord`
        objects (expanded to rows on the writer thread). Never blocks, never raises."""
        try:
            rows = sum(_n_rows(i) for i in items)
            with self._lock:
                if self._closed.is_set() or self.stats.queued + len(items) > self.max_queue:
                    self.stats.dropped_rows += rows
                    return
                self.stats.queued += len(items)
                self._waiting_rows += rows
                full = self._waiting_rows >= self.flush_rows
            for item in items:
                self._queue.put(item)
            if full:
                self._wake.set()
        except Exception as exc:  # pragma: no cover - defensive: logging must not fail a request
            self.stats.failures += 1
            self.stats.last_error = repr(exc)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until what was queued before this call is written (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self.stats.queued > 0 and time.monotonic() < deadline:
                self._wake.set()
                self._flushed.wait(0.05)

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop the background thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()

    # -- consumer side ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stop = self._closed.is_set()
            self._drain()
            with self._flushed:
                self._flushed.notify_all()
            if stop:
                return

    def _drain(self) -> None:
        """Write everything queued now (one file per day partition)."""
        with self._lock:
            self._waiting_rows = 0
        buffer: list[dict[str, Any]] = []
        items = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            items += 1
            try:
                buffer.extend(item.rows() if isinstance(item, RequestRecord) else [item])
            except Exception as exc:
                self._failed("expand", exc, 1)
        if buffer:
            self._write(buffer)
        if items:
            with self._lock:
                self.stats.queued -= items

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            frame = to_frame(rows)
            for day, part in frame.groupby(frame["timestamp"].dt.strftime("%Y-%m-%d")):
                self._write_parquet(str(day), part)
            self.stats.written_rows += len(rows)
        except Exception as exc:
            self._failed("parquet", exc, len(rows))
        if self.db_url:
            try:
                self._write_sql(rows)
                self.stats.sql_rows += len(rows)
            except Exception as exc:
                self._failed("sql", exc, len(rows))

    def _failed(self, sink: str, exc: Exception, n: int) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{sink}: {type(exc).__name__}: {exc}"
        logger.warning("serving log: %d rows not written to %s: %s", n, sink, exc)

    def _write_parquet(self, day: str, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.directory / f"date={day}"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        table = pa.Table.from_pandas(frame, schema=arrow_schema(), preserve_index=False)
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp)
        self.stats.written_files += 1

    def _write_sql(self, rows: list[dict[str, Any]]) -> None:
        if self._engine is None:
            from sqlalchemy import create_engine

            assert self.db_url is not None  # only called when a SQL sink is configured
            self._engine = create_engine(self.db_url)
            add_missing_columns(self._engine)
        frame = to_frame(rows)
        frame.to_sql(SQL_TABLE, self._engine, if_exists="append", index=False)


def add_missing_columns(engine: Any) -> None:
    """Add to an existing ``serving_log`` table the columns it lacks (a table made by an
    earlier version, before ``client_request_id``), as nullable text, so appends keep working."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    if not inspector.has_table(SQL_TABLE):
        return
    have = {c["name"] for c in inspector.get_columns(SQL_TABLE)}
    missing = [c for c in COLUMNS if c not in have]
    with engine.begin() as conn:
        for column in missing:  # names from COLUMNS only, never from input
            conn.execute(text(f"ALTER TABLE {SQL_TABLE} ADD COLUMN {column} TEXT"))


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly the documented columns and dtypes."""
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["row_index"] = frame["row_index"].astype("int64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    return frame


def read_serving_log(directory: Path | str) -> pd.DataFrame:
    """Every row of the serving log under ``directory``, oldest first (empty frame if none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(Path(directory).glob("date=*/part-*.parquet"))
    if not files:
        return arrow_schema().empty_table().to_pandas()
    tables = [pq.read_table(f, schema=arrow_schema()) for f in files]
    frame = pa.concat_tables(tables).to_pandas()
    return frame.sort_values(["timestamp", "request_id", "row_index"], kind="stable").reset_index(
        drop=True
    )
