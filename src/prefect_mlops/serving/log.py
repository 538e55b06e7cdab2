"""The serving log: one row per scored request row, as typed, partitioned Parquet (and
optionally SQL). This is what monitoring and the rollout watchers read; ``docs/serving-log.md``
documents it.

Files: ``<dir>/model=<quote(model name, safe='')>/date=YYYY-MM-DD/part-<UTC stamp>-<uuid>.parquet``
(hive partitioning; the model name is URI-percent-encoded, which pyarrow decodes), each written
to a hidden temporary name first and renamed into place, so a reader never sees a partial file
and files of earlier runs (or other workers) are never touched. One file holds the rows of one
model version and one UTC day.

=====================  ======================  ============================================
column                 type                    meaning
=====================  ======================  ============================================
request_id             string                  the server's id of the HTTP request
client_request_id      string or null          the client's ``X-Request-ID`` when kept
timestamp              timestamp[us, UTC]      when the request arrived
model_name             string                  registered model name
model_version          string                  version that produced ``prediction``
variant                string                  ``champion`` | ``challenger`` | ``shadow``
row_index              int64                   position of the row within the request
latency_ms             float64                 whole-request latency
status                 string                  ``ok`` or the HTTP status code (``"422"``)
error                  string or null          error message / ``X-Request-ID refused: …``
``feature.<name>``     the signature's type    one column per input column (double → float64,
                                               long → int64, string, boolean, datetime);
                                               missing → null
prediction             int64 | float64 |       the predicted value, in the model's output type
                       string | bool
``proba.<class>``      float64                 classifiers: one column per class (its label
                                               as a string)
=====================  ======================  ============================================

A refused request gives one row (``row_index`` 0) with null features and prediction.

A :class:`ServingLogWriter` takes :class:`RequestRecord` objects without blocking (a queue); a
background thread builds the typed columns by concatenating the request frames (vectorised)
every ``flush_seconds`` seconds, as soon as ``flush_rows`` rows wait, and on
:meth:`ServingLogWriter.close`. A failing sink is counted, never raised to the caller.

:func:`read_window` reads one model's rows with pyarrow.dataset: the model and date partitions
and the timestamp range are pushed down and only the requested columns are read. Files of the
earlier layout (``<dir>/date=YYYY-MM-DD/part-*.parquet``, features, prediction and probabilities
as JSON strings) are read too and converted to the typed shape. An unreadable file is named in a
warning, passed to ``on_skip`` and skipped.

SQL (``db_url``): one table per model, ``serving_log__<safe name>`` (:func:`sql_table_name`),
with the same typed columns, created on first write; columns a later version adds are added as
first seen. The legacy ``serving_log`` table (JSON columns) is no longer written and stays
readable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from prefect_mlops.errors import ConfigError
from prefect_mlops.files import atomic_path

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from prefect_mlops.serving.schema import InputSchema

logger = logging.getLogger(__name__)

FEATURE_PREFIX = "feature."
"""Prefix of the feature columns: ``feature.<input column name>``."""
PROBA_PREFIX = "proba."
"""Prefix of the class-probability columns: ``proba.<class label as str>``."""
PREDICTION = "prediction"

COLUMNS: tuple[str, ...] = (
    "request_id",
    "client_request_id",
    "timestamp",
    "model_name",
    "model_version",
    "variant",
    "row_index",
    "latency_ms",
    "status",
    "error",
)
"""The common columns, present in every file and every frame read (in this order)."""

LEGACY_COLUMNS: tuple[str, ...] = (
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
"""The columns of the earlier layout (features, prediction and probabilities as JSON)."""

LEGACY_SQL_TABLE = "serving_log"
"""The SQL table of the earlier layout; no longer written, left readable."""
SQL_TABLE_PREFIX = "serving_log__"
SORT_KEY = ["timestamp", "request_id", "row_index"]
UNKNOWN_MODEL = "__HIVE_DEFAULT_PARTITION__"
"""The model partition of rows without a model name (hive's name for a null partition)."""

# MLflow DataType names of a signature → the Parquet type of its feature column.
_MLFLOW_TYPES = {
    "double": "float64",
    "float": "float64",
    "long": "int64",
    "integer": "int64",
    "string": "string",
    "boolean": "bool",
}

SkipCallback = Callable[[str, str], None]
"""``on_skip(path, reason)``: called for every file :func:`read_window` could not read."""


@dataclass
class RequestRecord:
    """One answered (or refused) request; expanded to one log row per request row.

    ``features`` is the frame the service scored, ``input_schema`` the model signature's input
    columns (their types type the ``feature.*`` columns), ``classes`` a classifier's class
    labels (the ``proba.*`` column names, in ``probabilities`` order).
    """

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
    classes: list[Any] | None = None
    input_schema: InputSchema | None = None

    @property
    def scored(self) -> bool:
        """Whether this request has rows scored (not refused)."""
        return self.features is not None and self.predictions is not None

    def common(self) -> dict[str, Any]:
        """The common column values of this request's rows (all but ``row_index``)."""
        return {
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


def _n_rows(item: Any) -> int:
    if isinstance(item, RequestRecord) and item.predictions is not None:
        return len(item.predictions)
    return 1


def _common_fields() -> list[pa.Field]:
    import pyarrow as pa

    types = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "row_index": pa.int64(),
        "latency_ms": pa.float64(),
    }
    return [pa.field(c, types.get(c, pa.string())) for c in COLUMNS]


def arrow_schema(
    frame: pd.DataFrame | None = None, feature_types: Mapping[str, str] | None = None
) -> pa.Schema:
    """The pyarrow schema of a serving-log file holding ``frame``: the common fields fixed
    (:data:`COLUMNS`), then every other column of ``frame`` in its order, typed by
    ``feature_types`` (MLflow type name by input column name, for ``feature.*`` columns) or
    else from the data. Without ``frame``, the common fields only. Raises what pyarrow raises
    when a column's type cannot be inferred."""
    import pyarrow as pa

    fields = _common_fields()
    if frame is None:
        return pa.schema(fields)
    rest = [c for c in frame.columns if c not in COLUMNS]
    known = feature_types or {}
    infer = [c for c in rest if _declared(c, known) is None]
    inferred = pa.Schema.from_pandas(frame[infer], preserve_index=False) if infer else None
    for name in rest:
        declared = _declared(name, known)
        fields.append(
            pa.field(name, declared if declared is not None else inferred.field(name).type)  # type: ignore[union-attr]
        )
    return pa.schema(fields)


def _declared(column: str, feature_types: Mapping[str, str]) -> pa.DataType | None:
    import pyarrow as pa

    if column.startswith(PROBA_PREFIX):
        return pa.float64()
    if not column.startswith(FEATURE_PREFIX):
        return None
    name = _MLFLOW_TYPES.get(feature_types.get(column[len(FEATURE_PREFIX) :], ""))
    return pa.type_for_alias(name) if name else None  # datetime & unknown: from the data


def typed_frame(records: Sequence[RequestRecord]) -> pd.DataFrame:
    """The log rows of ``records`` as one frame with the physical columns (common, then
    ``feature.*``, ``prediction``, ``proba.*``), built by concatenating the request frames;
    refused requests give one row each with the typed columns null. Records of one model
    version (one signature, one set of classes). Raises ValueError when the probabilities do
    not match the classes."""
    scored = [r for r in records if r.scored]
    refused = [r for r in records if not r.scored]
    parts: list[pd.DataFrame] = []
    if scored:
        counts = np.fromiter((len(r.predictions or ()) for r in scored), int, len(scored))
        part = _repeat_common(scored, counts)
        features = _concat_features([r.features for r in scored if r.features is not None])
        extra = {
            **features,
            PREDICTION: list(chain.from_iterable(r.predictions or () for r in scored)),
        }
        if any(r.probabilities is not None for r in scored):
            extra.update(_proba_columns(scored))
        part = pd.concat([part, pd.DataFrame(extra)], axis=1)
        parts.append(part)
    if refused:
        parts.append(_repeat_common(refused, np.ones(len(refused), dtype=int)))
    if not parts:
        return arrow_schema().empty_table().to_pandas()
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


SMALL_FRAME_ROWS = 16
"""Below this many rows per request on average, request frames are stacked as object arrays
(~8 µs a frame) rather than by ``pd.concat`` (~25 µs a frame); the Parquet types come from the
signature either way."""


def _concat_features(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The request frames one under the other, columns named ``feature.<name>``."""
    names = tuple(frames[0].columns)
    rows = sum(len(f) for f in frames)
    alike = all(tuple(f.columns) == names for f in frames)
    if alike and rows < SMALL_FRAME_ROWS * len(frames):
        block = np.concatenate([f.to_numpy(dtype=object) for f in frames])
        return pd.DataFrame(
            {FEATURE_PREFIX + str(c): block[:, i] for i, c in enumerate(names)}, copy=False
        )
    features = pd.concat(frames, ignore_index=True, copy=False)
    features.columns = [FEATURE_PREFIX + str(c) for c in features.columns]
    return features


def _repeat_common(records: Sequence[RequestRecord], counts: np.ndarray) -> pd.DataFrame:
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    out: dict[str, Any] = {}
    for column in COLUMNS:
        if column == "row_index":
            out[column] = np.arange(total, dtype="int64") - starts
        elif column == "timestamp":
            stamps = pd.DatetimeIndex([r.timestamp for r in records])
            stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
            out[column] = stamps.repeat(counts)
        elif column == "latency_ms":
            out[column] = np.repeat(np.array([r.latency_ms for r in records], "float64"), counts)
        else:
            values = np.array([getattr(r, column) for r in records], dtype=object)
            out[column] = np.repeat(values, counts)
    return pd.DataFrame(out)


def _proba_columns(records: Sequence[RequestRecord]) -> dict[str, np.ndarray]:
    proba = np.array(
        list(chain.from_iterable(r.probabilities or () for r in records)), dtype="float64"
    )
    if proba.ndim != 2 or len(proba) != sum(len(r.predictions or ()) for r in records):
        raise ValueError("probabilities: one list per scored row and class expected")
    classes = next((r.classes for r in records if r.classes is not None), None)
    names = [str(c) for c in classes] if classes is not None else []
    if len(names) != proba.shape[1]:
        names = [str(i) for i in range(proba.shape[1])]
    return {PROBA_PREFIX + name: proba[:, i] for i, name in enumerate(names)}


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Dict rows (physical column names: :data:`COLUMNS`, ``prediction``, ``feature.*``,
    ``proba.*``) as a frame. Raises ValueError naming a key outside the layout."""
    frame = pd.DataFrame.from_records(list(rows))
    unknown = [c for c in frame.columns if not _physical(str(c))]
    if unknown:
        raise ValueError(
            f"serving-log row: unknown column(s) {unknown}; use {list(COLUMNS)}, "
            f"{PREDICTION!r}, {FEATURE_PREFIX}<name> or {PROBA_PREFIX}<class>"
        )
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def _physical(column: str) -> bool:
    return (
        column in COLUMNS
        or column == PREDICTION
        or column.startswith((FEATURE_PREFIX, PROBA_PREFIX))
    )


def to_table(frame: pd.DataFrame, feature_types: Mapping[str, str] | None = None) -> pa.Table:
    """``frame`` (physical columns) as a pyarrow table of the log's schema
    (:func:`arrow_schema`), its columns in documented order. Raises what pyarrow raises on a
    value that does not fit its column's type."""
    import pyarrow as pa

    frame = frame[_ordered(frame.columns)]
    schema = arrow_schema(frame, feature_types)
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    return table.replace_schema_metadata(None)  # no pandas metadata: readers unify schemas


def _ordered(columns: Iterable[Any]) -> list[str]:
    """Columns in documented order: common, ``feature.*``, ``prediction``, ``proba.*``, rest."""
    names = [str(c) for c in columns]

    def rank(name: str) -> int:
        if name in COLUMNS:
            return 0
        if name.startswith(FEATURE_PREFIX):
            return 1
        if name == PREDICTION:
            return 2
        return 3 if name.startswith(PROBA_PREFIX) else 4

    common = [c for c in COLUMNS if c in names]
    return common + sorted((n for n in names if n not in COLUMNS), key=rank)


def model_partition(model_name: str | None) -> str:
    """The folder name of ``model_name``'s partition: ``model=<URI-encoded name>``."""
    return "model=" + (UNKNOWN_MODEL if model_name is None else quote(model_name, safe=""))


def sql_table_name(model_name: str | None) -> str:
    """The SQL table of ``model_name``'s rows: ``serving_log__<name>`` when the name is made of
    lower-case letters, digits and ``_`` (at most 40 characters), else its safe characters cut
    to 40 plus an 8-character hash of the whole name (names stay distinct and within
    PostgreSQL's 63 characters)."""
    name = model_name or UNKNOWN_MODEL.lower()
    safe = re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]
    if safe != name:
        safe += "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return SQL_TABLE_PREFIX + safe


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
        """The counters as a dict."""
        return dict(self.__dict__)


class ServingLogWriter:
    """Appends serving-log rows to Parquet files under ``directory`` (and SQL tables).

    :meth:`log` never blocks and never raises; rows beyond ``max_queue`` waiting rows are
    dropped and counted. The background thread wakes every ``flush_seconds``, or when
    ``flush_rows`` rows wait, and writes everything queued in one go (one file per model
    version and day): it never wakes per request, which would take the GIL from the request
    path (~1 ms a request). Call :meth:`close` on shutdown to flush what is queued.
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
        self._sql_tables: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._flushed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="serving-log", daemon=True)
        self._thread.start()

    # -- producer side ------------------------------------------------------------------------

    def log(self, items: Sequence[Mapping[str, Any] | RequestRecord]) -> None:
        """Queue whole :class:`RequestRecord` objects (expanded to rows on the writer thread)
        or dict rows (physical column names, see :func:`rows_frame`). Never blocks, never
        raises."""
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
        """Write everything queued now (one file per model version and day)."""
        with self._lock:
            self._waiting_rows = 0
        groups: dict[tuple[str | None, str | None, str], list[Any]] = {}
        items = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            items += 1
            try:
                groups.setdefault(_group_key(item), []).append(item)
            except Exception as exc:
                self._failed("expand", exc, 1)
        for (model, _version, day), group in groups.items():
            self._write(model, day, group)
        if items:
            with self._lock:
                self.stats.queued -= items

    def _write(self, model: str | None, day: str, items: list[Any]) -> None:
        n = sum(_n_rows(i) for i in items)
        try:
            table = _group_table(items)
        except Exception as exc:
            self._failed("expand", exc, n)
            return
        try:
            self._write_parquet(model, day, table)
            self.stats.written_rows += n
        except Exception as exc:
            self._failed("parquet", exc, n)
        if self.db_url:
            try:
                self._write_sql(model, table)
                self.stats.sql_rows += n
            except Exception as exc:
                self._failed("sql", exc, n)

    def _failed(self, sink: str, exc: Exception, n: int) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{sink}: {type(exc).__name__}: {exc}"
        logger.warning("serving log: %d rows not written to %s: %s", n, sink, exc)

    def _write_parquet(self, model: str | None, day: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        folder = self.directory / model_partition(model) / f"date={day}"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp)
        self.stats.written_files += 1

    def _write_sql(self, model: str | None, table: pa.Table) -> None:
        if self._engine is None:
            from sqlalchemy import create_engine

            assert self.db_url is not None  # only called when a SQL sink is configured
            self._engine = create_engine(self.db_url)
        name = sql_table_name(model)
        sql_table = self._sql_tables.get(name)
        sql_table = ensure_sql_table(self._engine, name, table.schema, sql_table)
        self._sql_tables[name] = sql_table
        present = {c.name for c in sql_table.columns}
        rows = table.select([c for c in table.column_names if c in present]).to_pylist()
        with self._engine.begin() as conn:
            conn.execute(sql_table.insert(), rows)


def _group_key(item: Any) -> tuple[str | None, str | None, str]:
    if isinstance(item, RequestRecord):
        stamp = pd.Timestamp(item.timestamp)
        model, version = item.model_name, item.model_version
    else:
        stamp = pd.Timestamp(item["timestamp"])
        model, version = item.get("model_name"), item.get("model_version")
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return model, None if version is None else str(version), stamp.strftime("%Y-%m-%d")


def _group_table(items: list[Any]) -> pa.Table:
    """One model version's items (records and dict rows) of one day as one typed table."""
    import pyarrow as pa

    records = [i for i in items if isinstance(i, RequestRecord)]
    dicts = [i for i in items if not isinstance(i, RequestRecord)]
    tables = []
    scored = [r for r in records if r.scored]
    if scored:
        schema = next((r.input_schema for r in scored if r.input_schema is not None), None)
        types = {c.name: c.type for c in schema.columns} if schema is not None else None
        tables.append(to_table(typed_frame(scored), types))
    refused = [r for r in records if not r.scored]
    if refused:
        tables.append(to_table(typed_frame(refused)))
    if dicts:
        tables.append(to_table(rows_frame(dicts)))
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def ensure_sql_table(engine: Any, name: str, schema: pa.Schema, known: Any = None) -> Any:
    """The SQLAlchemy ``Table`` ``name`` with a column for every field of ``schema`` that has
    a type: created when absent, missing columns added (``ALTER TABLE … ADD COLUMN``, names
    quoted by SQLAlchemy; an all-null field waits for its first value). ``known`` is the table
    as last returned (skips reflection when it has every column). Raises what SQLAlchemy
    raises."""
    import pyarrow as pa
    from sqlalchemy import Column, MetaData, Table, inspect, text

    wanted = [f for f in schema if not pa.types.is_null(f.type)]
    if known is not None and all(f.name in known.columns for f in wanted):
        return known
    metadata = MetaData()
    if not inspect(engine).has_table(name):
        table = Table(name, metadata, *(Column(f.name, _sql_type(f.type)) for f in wanted))
        metadata.create_all(engine)
        return table
    table = Table(name, metadata, autoload_with=engine)
    missing = [f for f in wanted if f.name not in table.columns]
    if missing:
        prep = engine.dialect.identifier_preparer
        with engine.begin() as conn:
            for f in missing:  # names from the model's signature and classes, quoted
                kind = _sql_type(f.type).compile(dialect=engine.dialect)
                conn.execute(
                    text(f"ALTER TABLE {prep.quote(name)} ADD COLUMN {prep.quote(f.name)} {kind}")
                )
        table = Table(name, MetaData(), autoload_with=engine)
    return table


def _sql_type(arrow_type: pa.DataType) -> Any:
    import pyarrow as pa
    from sqlalchemy import BigInteger, Boolean, DateTime, Double, Text

    if pa.types.is_integer(arrow_type):
        return BigInteger()
    if pa.types.is_floating(arrow_type):
        return Double()
    if pa.types.is_boolean(arrow_type):
        return Boolean()
    if pa.types.is_timestamp(arrow_type):
        return DateTime(timezone=arrow_type.tz is not None)
    return Text()


# -- reading ---------------------------------------------------------------------------------


def _timestamp(value: datetime | str | pd.Timestamp | None, field: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"read_window: {field} {value!r} is not a time ({exc})") from exc
    if pd.isna(stamp):
        raise ConfigError(f"read_window: {field} {value!r} is not a time")
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


@dataclass(frozen=True)
class _Window:
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    versions: list[str] | None
    variants: list[str] | None

    def rows(self) -> ds.Expression | None:
        """The row filter (timestamp range, versions, variants)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        parts = []
        kind = pa.timestamp("us", tz="UTC")
        if self.start is not None:
            parts.append(ds.field("timestamp") >= pa.scalar(self.start.to_pydatetime(), kind))
        if self.end is not None:
            parts.append(ds.field("timestamp") < pa.scalar(self.end.to_pydatetime(), kind))
        if self.versions is not None:
            parts.append(ds.field("model_version").isin(self.versions))
        if self.variants is not None:
            parts.append(ds.field("variant").isin(self.variants))
        return _all(parts)

    def days(self) -> ds.Expression | None:
        """The date-partition filter (UTC days the range touches)."""
        import pyarrow.dataset as ds

        parts = []
        if self.start is not None:
            parts.append(ds.field("date") >= self.start.strftime("%Y-%m-%d"))
        if self.end is not None:
            last = self.end - pd.Timedelta(microseconds=1)
            parts.append(ds.field("date") <= last.strftime("%Y-%m-%d"))
        return _all(parts)


def _all(parts: list[Any]) -> Any:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def read_window(
    directory: Path | str,
    model_name: str,
    *,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
    versions: Iterable[str] | None = None,
    variants: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    last_n: int | None = None,
    classes: Sequence[Any] | None = None,
    on_skip: SkipCallback | None = None,
    ordered: bool = True,
) -> pd.DataFrame:
    """The serving-log rows of ``model_name`` under ``directory`` with ``start <= timestamp <
    end`` (naive times are UTC; either bound may be None), of ``versions`` and ``variants``
    when given, oldest first (sorted by timestamp, request_id, row_index); with
    ``ordered=False`` (and no ``last_n``) in file order, unsorted — what a reader that only
    summarises the rows (monitoring) wants: the sort is most of a large window's read time.

    ``columns``: the physical columns to read (None: all); a requested column no file has
    comes back null. ``last_n``: only the newest ``last_n`` rows of the range. Files whose
    feature columns differ (a later version added one) are unified: a missing column is null.
    Legacy files (JSON columns) are converted; their probabilities become ``proba.<class>``
    named by ``classes`` when given (and of the right length), else ``proba.0``, ``proba.1``…

    An unreadable file is logged as a warning naming it, passed to ``on_skip(path, reason)``
    and skipped. Returns the common columns and no rows when nothing matches. Raises
    ConfigError when ``start``/``end`` is not a time or ``last_n`` is not positive.
    """
    window = _Window(
        _timestamp(start, "start"),
        _timestamp(end, "end"),
        None if versions is None else [str(v) for v in versions],
        None if variants is None else [str(v) for v in variants],
    )
    if last_n is not None and (isinstance(last_n, bool) or int(last_n) != last_n or last_n < 1):
        raise ConfigError(f"read_window: last_n must be a positive whole number, got {last_n!r}")
    return _read(
        Path(directory), model_name, window, columns, last_n, classes, on_skip, ordered=ordered
    )


def read_serving_log(directory: Path | str) -> pd.DataFrame:
    """Every row of the serving log under ``directory``, every model, typed and legacy files
    (legacy probabilities named by position), oldest first; the common columns and no rows if
    none. Unreadable files are skipped with a warning naming them."""
    return _read(Path(directory), None, _Window(None, None, None, None), None, None, None, None)


def feature_frame(window: pd.DataFrame) -> pd.DataFrame:
    """The ``feature.*`` columns of ``window``, named without the prefix."""
    names = [c for c in window.columns if str(c).startswith(FEATURE_PREFIX)]
    return window[names].rename(columns=lambda c: str(c)[len(FEATURE_PREFIX) :])


def probability_frame(window: pd.DataFrame) -> pd.DataFrame | None:
    """The ``proba.*`` columns of ``window``, named by class (as a string); None when there are
    none (a regressor, or not read)."""
    names = [c for c in window.columns if str(c).startswith(PROBA_PREFIX)]
    if not names:
        return None
    return window[names].rename(columns=lambda c: str(c)[len(PROBA_PREFIX) :])


def _read(
    root: Path,
    model_name: str | None,
    window: _Window,
    columns: Sequence[str] | None,
    last_n: int | None,
    classes: Sequence[Any] | None,
    on_skip: SkipCallback | None,
    *,
    ordered: bool = True,
) -> pd.DataFrame:
    skip = _skipper(on_skip)
    ordered = ordered or last_n is not None  # the newest rows need the order
    wanted = None if columns is None else list(dict.fromkeys(str(c) for c in columns))
    keys = SORT_KEY if ordered else []
    read = None if wanted is None else list(dict.fromkeys([*wanted, *keys]))
    typed_source = _typed_source(root, model_name, window)
    legacy_source = _legacy_source(root, model_name, window)
    if last_n is not None:
        _keep_newest_days([s for s in (typed_source, legacy_source) if s is not None], last_n)
    typed = None if typed_source is None else typed_source.scan(read, skip)
    legacy = None
    if legacy_source is not None:
        legacy = _read_legacy(legacy_source, read, classes, skip)
    if legacy is None:
        if typed is None:
            frame = _empty(wanted)
        else:
            if ordered:
                typed = typed.sort_by([(k, "ascending") for k in SORT_KEY])
            if last_n is not None and typed.num_rows > last_n:
                typed = typed.slice(typed.num_rows - last_n)
            order = wanted if wanted is not None else _ordered(typed.column_names)
            # Reordered in Arrow (no copy), not in pandas (a copy of every column).
            frame = typed.select([c for c in order if c in typed.column_names]).to_pandas()
    else:
        frames = [legacy] if typed is None else [typed.to_pandas(), legacy]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if ordered:
            frame = frame.sort_values(SORT_KEY, kind="stable")
        if last_n is not None:
            frame = frame.tail(last_n)
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0:
        frame = frame.reset_index(drop=True)  # (a copy of every column: only when needed)
    order = wanted if wanted is not None else _ordered(frame.columns)
    for i, column in enumerate(order):
        if column not in frame:  # no file has it: null
            frame.insert(i, column, pd.Series([None] * len(frame), dtype=object))
    return frame if list(frame.columns) == order else frame[order]


def _empty(columns: Sequence[str] | None) -> pd.DataFrame:
    frame = arrow_schema().empty_table().to_pandas()
    if columns is None:
        return frame
    return pd.DataFrame(
        {c: frame[c] if c in frame else pd.Series([], dtype=object) for c in columns}
    )


def _skipper(on_skip: SkipCallback | None) -> SkipCallback:
    def skip(path: str, reason: str) -> None:
        logger.warning("serving log: skipping unreadable file %s: %s", path, reason)
        if on_skip is not None:
            on_skip(path, reason)

    return skip


def _fragments(root: Path, sources: list[Path], partitioning: Any, where: Any) -> list[Any]:
    """The Parquet fragments under ``sources`` whose partition passes ``where``: listed and
    pruned by their folder names, no file opened."""
    import pyarrow.dataset as ds

    out = []
    for source in sources:
        # With a schema given, discovery only lists files: none is opened here.
        dataset = ds.dataset(
            str(source), format="parquet", partitioning=partitioning,
            partition_base_dir=str(root), schema=partitioning.schema,
        )  # fmt: skip
        out += [
            f for f in dataset.get_fragments(filter=where) if Path(f.path).name.startswith("part-")
        ]
    return out


def _opened(fragments: list[Any], skip: SkipCallback) -> list[tuple[Any, pa.Schema]]:
    """``fragments`` with their file schemas (each file's footer read); unreadable files are
    skipped."""
    out = []
    for fragment in fragments:
        try:
            out.append((fragment, fragment.physical_schema))
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            skip(fragment.path, str(exc))
    return out


def _unify(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for files that differ in columns (missing → null) or in a column's type
    (widened where pyarrow can, else read as string)."""
    import pyarrow as pa

    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        fields: dict[str, pa.DataType] = {}
        for schema in schemas:
            for f in schema:
                have = fields.get(f.name)
                if have is None or pa.types.is_null(have):
                    fields[f.name] = f.type
                elif have != f.type and not pa.types.is_null(f.type):
                    try:
                        both = [pa.schema([(f.name, have)]), pa.schema([(f.name, f.type)])]
                        fields[f.name] = pa.unify_schemas(both, promote_options="permissive")[
                            0
                        ].type
                    except (pa.ArrowTypeError, pa.ArrowInvalid):
                        fields[f.name] = pa.string()
        return pa.schema(list(fields.items()))


def _scan(
    found: list[tuple[Any, pa.Schema]],
    schema: pa.Schema,
    columns: list[str] | None,
    where: Any,
    skip: SkipCallback,
) -> pa.Table | None:
    """The rows of ``found`` passing ``where``, ``columns`` only (those ``schema`` has); one
    scan of all files, or file by file (skipping the unreadable) when that fails."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not found:
        return None
    names = None if columns is None else [c for c in columns if c in schema.names]
    fragments = [f for f, _ in found]
    first = fragments[0]
    try:
        dataset = ds.FileSystemDataset(fragments, schema, first.format, first.filesystem)
        return dataset.to_table(columns=names, filter=where)
    except (OSError, ValueError, pa.ArrowException):
        tables = []
        for fragment in fragments:
            try:
                tables.append(fragment.to_table(schema=schema, columns=names, filter=where))
            except (OSError, ValueError, pa.ArrowException) as exc:
                skip(fragment.path, str(exc))
        return pa.concat_tables(tables) if tables else None


@dataclass
class _Source:
    """Files of one layout: their fragments (pruned by partition, not yet opened), the schema
    every file has (for counting), the row filter, and whether files need a unified schema."""

    fragments: list[Any]
    base_schema: pa.Schema
    rows: Any
    unify: bool

    def days(self) -> set[str]:
        """The UTC days (``date=`` partitions) of the files."""
        return {_day(f) for f in self.fragments}

    def count(self, day: str) -> int | None:
        """Rows of ``day`` passing the row filter (None when a file cannot be counted)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        fragments = [f for f in self.fragments if _day(f) == day]
        if not fragments:
            return 0
        first = fragments[0]
        try:
            dataset = ds.FileSystemDataset(
                fragments, self.base_schema, first.format, first.filesystem
            )
            return int(dataset.count_rows(filter=self.rows))
        except (OSError, ValueError, pa.ArrowException):
            return None  # the scan names the unreadable file

    def keep(self, days: set[str]) -> None:
        """Forget the files of other days."""
        self.fragments = [f for f in self.fragments if _day(f) in days]

    def scan(self, columns: list[str] | None, skip: SkipCallback) -> pa.Table | None:
        """The rows passing the filter (``columns`` only); None when there are none."""
        found = _opened(self.fragments, skip)
        if not found:
            return None
        schema = _unify([s for _, s in found]) if self.unify else self.base_schema
        table = _scan(found, schema, columns, self.rows, skip)
        return table if table is not None and table.num_rows else None


def _day(fragment: Any) -> str:
    return Path(fragment.path).parent.name.removeprefix("date=")


def _keep_newest_days(sources: list[_Source], last_n: int) -> None:
    """Keep only the newest days that together hold ``last_n`` rows of the window (a row's
    day partition is its timestamp's UTC day, so older days hold only older rows)."""
    days = sorted(set().union(*(s.days() for s in sources)), reverse=True)
    total, kept = 0, set()
    for day in days:
        kept.add(day)
        counts = [s.count(day) for s in sources]
        total += sum(c for c in counts if c is not None)
        if total >= last_n:
            break
    for source in sources:
        source.keep(kept)


def _typed_source(root: Path, model_name: str | None, window: _Window) -> _Source | None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(
        pa.schema([("model", pa.string()), ("date", pa.string())]), flavor="hive"
    )
    if model_name is None:
        sources = sorted(p for p in root.glob("model=*") if p.is_dir())
        where = window.days()
    else:
        sources = [s for s in [root / model_partition(model_name)] if s.is_dir()]
        where = _all([ds.field("model") == model_name, window.days()])
    fragments = _fragments(root, sources, partitioning, where)
    if not fragments:
        return None
    return _Source(fragments, arrow_schema(), window.rows(), unify=True)


def _legacy_source(root: Path, model_name: str | None, window: _Window) -> _Source | None:
    """Files of the earlier layout (``<root>/date=*/part-*.parquet``)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    sources = sorted(p for p in root.glob("date=*") if p.is_dir())
    if not sources:
        return None
    partitioning = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    fragments = _fragments(root, sources, partitioning, window.days())
    if not fragments:
        return None
    rows = window.rows()
    if model_name is not None:
        rows = _all([ds.field("model_name") == model_name, rows])
    return _Source(fragments, _legacy_schema(), rows, unify=False)


def _read_legacy(
    source: _Source, columns: list[str] | None, classes: Sequence[Any] | None, skip: SkipCallback
) -> pd.DataFrame | None:
    """The legacy rows in the typed shape (None when none pass)."""
    if columns is None:
        names = None
    else:
        names = [c for c in columns if c in COLUMNS]
        names += [c for c in ("features", "prediction", "probabilities") if _wants(columns, c)]
    table = source.scan(names, skip)
    return None if table is None else _from_legacy(table.to_pandas(), classes)


def _wants(columns: list[str], legacy: str) -> bool:
    if legacy == "features":
        return any(c.startswith(FEATURE_PREFIX) for c in columns)
    if legacy == "probabilities":
        return any(c.startswith(PROBA_PREFIX) for c in columns)
    return PREDICTION in columns


def _legacy_schema() -> pa.Schema:
    import pyarrow as pa

    common = {f.name: f for f in _common_fields()}
    return pa.schema(
        [common[c] if c in common else pa.field(c, pa.string()) for c in LEGACY_COLUMNS]
    )


def _from_legacy(frame: pd.DataFrame, classes: Sequence[Any] | None) -> pd.DataFrame:
    """Legacy rows (JSON columns) in the typed shape: ``feature.*`` from the features object,
    ``prediction`` decoded, ``proba.<class>`` (by ``classes`` when their number matches, else
    by position)."""
    out = frame[[c for c in COLUMNS if c in frame]].copy()
    parts = [out]
    if "features" in frame:
        decoded = [json.loads(s) if isinstance(s, str) else {} for s in frame["features"]]
        features = pd.DataFrame.from_records(decoded, index=frame.index)
        parts.append(features.add_prefix(FEATURE_PREFIX))
    if "prediction" in frame:
        values = [json.loads(p) if isinstance(p, str) else None for p in frame["prediction"]]
        parts.append(pd.DataFrame({PREDICTION: values}, index=frame.index))
    if "probabilities" in frame:
        lists = [json.loads(p) if isinstance(p, str) else None for p in frame["probabilities"]]
        width = max((len(p) for p in lists if p is not None), default=0)
        if width:
            matrix = np.full((len(lists), width), np.nan)
            for i, p in enumerate(lists):
                if p is not None:
                    matrix[i, : len(p)] = p
            names = [str(c) for c in classes] if classes is not None else []
            if len(names) != width:
                names = [str(i) for i in range(width)]
            probas = {PROBA_PREFIX + n: matrix[:, i] for i, n in enumerate(names)}
            parts.append(pd.DataFrame(probas, index=frame.index))
    result = pd.concat(parts, axis=1) if len(parts) > 1 else out
    if PREDICTION in result and len(result):
        inferred = pd.Series(result[PREDICTION].tolist(), index=result.index).infer_objects()
        result[PREDICTION] = inferred
    return result
