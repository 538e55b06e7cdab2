"""Ingest a table (CSV, Parquet or SQL) and keep it as an immutable, content-addressed snapshot.

* :func:`read_table` reads a :class:`~prefect_mlops.config.DataSource`, parses its timestamp
  column and applies its since/until window; every failure is a ``DataIngestError`` naming the
  file (or the SQL URL without its password), the column and the fix.
* :func:`frame_digest` is a SHA-256 of a frame's content (column names, dtypes, values).
* :func:`write_snapshot` stores a frame as ``<snapshot_dir>/<digest>.parquet`` (read-only, never
  rewritten) with a ``<digest>.json`` sidecar; :func:`verify_snapshot` proves that a snapshot
  still holds exactly the rows its name promises, so lineage resolves to the exact data.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_mlops.config import DataSource
from prefect_mlops.errors import DataIngestError
from prefect_mlops.files import publish, temp_path_beside, write_bytes_atomic

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
_READ_ERRORS = (
    OSError,
    ValueError,
    UnicodeDecodeError,
    ImportError,
    pd.errors.ParserError,
    pa.ArrowException,
)


# --------------------------------------------------------------------------- reading


def is_remote_uri(path: str) -> bool:
    """True for a URI with a non-file scheme (s3://, gs://, https://...)."""
    scheme = urlparse(path).scheme
    return "://" in path and scheme not in ("", "file")


def local_path(path: str) -> Path:
    """The local path of a plain path or a ``file://`` URI."""
    if path.startswith("file://"):
        return Path(unquote(urlparse(path).path))
    return Path(path).expanduser()


def resolve_format(path: str, declared: str = "auto") -> str:
    """Return ``"csv"`` or ``"parquet"`` for ``path``.

    ``declared`` wins unless it is ``"auto"``; then the extension decides (``.csv``, ``.tsv``,
    ``.txt``, optionally compressed, or ``.parquet`` / ``.pq``). Raises DataIngestError for an
    unknown extension.
    """
    if declared != "auto":
        return declared
    suffixes = [
        s.lower() for s in Path(urlparse(path).path if is_remote_uri(path) else path).suffixes
    ]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise DataIngestError(
        f"data file {path} has an unknown extension {suffix or '(none)'!r}; rename it to "
        f".csv or .parquet, or set data.format to 'csv' or 'parquet'"
    )


def _read_file(source: DataSource, allow_empty: bool = False) -> pd.DataFrame:
    """Read the CSV or Parquet file of ``source``; raise DataIngestError naming the file."""
    path = source.path or ""
    fmt = resolve_format(path, source.format)
    target: str | Path = path
    if not is_remote_uri(path):
        local = local_path(path)
        if not local.exists():
            raise DataIngestError(
                f"data file {path} does not exist; check data.path (relative paths resolve "
                f"against the config file's folder)"
            )
        if local.is_file() and local.stat().st_size == 0:
            raise DataIngestError(f"data file {path} is empty (0 bytes): it has no rows")
        if local.is_dir() and fmt == "csv":
            raise DataIngestError(f"data file {path} is a folder, not a CSV file")
        target = local
    try:
        if fmt == "csv":
            sep = "\t" if ".tsv" in [s.lower() for s in Path(str(target)).suffixes] else ","
            df = pd.read_csv(target, sep=sep, low_memory=False)
        else:
            df = pd.read_parquet(target)
    except pd.errors.EmptyDataError as exc:
        raise DataIngestError(f"data file {path} has no rows (and no header)") from exc
    except _READ_ERRORS as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise DataIngestError(
            f"data file {path} is not a readable {kind} file: {_first_line(exc)}; check the "
            f"file, or set data.format if it is not {kind}"
        ) from exc
    if df.empty and not allow_empty:
        raise DataIngestError(f"data file {path} has no rows (columns: {list(df.columns)})")
    return df


def _read_sql(source: DataSource, allow_empty: bool = False) -> pd.DataFrame:
    """Run the query of ``source``; raise DataIngestError naming the URL without password."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    where = source.describe()
    try:
        engine = create_engine(source.sql_url or "")
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DataIngestError(
            f"cannot connect to {where}: {_first_line(exc)}; check data.sql_url and that the "
            f"database driver is installed"
        ) from exc
    try:
        with engine.connect() as conn:
            df = pd.read_sql_query(text(source.query or ""), conn)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataIngestError(
            f"SQL query failed on {where}: {type(cause).__name__}: {_first_line(cause)}"
        ) from exc
    finally:
        engine.dispose()
    if df.empty and not allow_empty:
        raise DataIngestError(f"SQL query on {where} has no rows (returned 0 rows)")
    return df


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_timestamps(series: pd.Series, column: str, where: str) -> pd.Series:
    """Return ``series`` as datetimes (unchanged when it already is).

    Strings are parsed as ISO-8601, else per value; mixed UTC offsets give UTC datetimes.
    Raises DataIngestError naming ``column`` and ``where`` with example bad values when the
    column holds numbers, booleans or strings that are not timestamps.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        raise DataIngestError(
            f"timestamp column {column!r} in {where} holds {series.dtype} values such as "
            f"{series.dropna().head(3).tolist()}, not timestamps; store ISO-8601 strings "
            f"(e.g. 2025-01-31T12:00:00) or datetimes"
        )
    parsed: pd.Series | None = None
    for fmt in ("ISO8601", "mixed"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(series, format=fmt)
                if not pd.api.types.is_datetime64_any_dtype(parsed):
                    parsed = pd.to_datetime(series, format=fmt, utc=True)
            break
        except (ValueError, TypeError, OverflowError):
            parsed = None
    if parsed is None:
        sample = series.dropna().head(10_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coerced = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
        bad = sample[coerced.isna()].head(3).tolist()
        raise DataIngestError(
            f"timestamp column {column!r} in {where} cannot be parsed as datetimes "
            f"(bad values such as {bad}); fix those values or set data.timestamp_column "
            f"to a timestamp column"
        )
    return parsed


def as_time_bound(bound: datetime | pd.Timestamp, tz: Any) -> pd.Timestamp:
    """``bound`` made comparable with a column in time zone ``tz`` (None = naive, taken as UTC)."""
    ts = pd.Timestamp(bound)
    if tz is None:
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts


def apply_time_filter(
    df: pd.DataFrame,
    column: str,
    since: datetime | None,
    until: datetime | None,
    *,
    where: str = "the data",
) -> pd.DataFrame:
    """Return the rows of ``df`` with ``since <= df[column] < until`` (index reset).

    Either bound may be None (no limit); with both None ``df`` is returned unchanged. Naive
    and time-zone-aware values are compared by taking naive ones as UTC. Rows with a missing
    timestamp are dropped when a bound is given. Raises DataIngestError naming ``column`` and
    ``where`` when the column is missing or not datetimes, or when no row is left.
    """
    if since is None and until is None:
        return df
    if column not in df.columns:
        raise DataIngestError(
            f"timestamp column {column!r} is not in {where}; columns are {list(df.columns)}"
        )
    values = df[column]
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise DataIngestError(
            f"timestamp column {column!r} in {where} has dtype {values.dtype}, not datetime; "
            f"parse it first (parse_timestamps)"
        )
    tz = getattr(values.dtype, "tz", None)
    mask = values.notna()
    if since is not None:
        mask &= values >= as_time_bound(since, tz)
    if until is not None:
        mask &= values < as_time_bound(until, tz)
    if not mask.any():
        raise DataIngestError(
            f"no rows of {where} have {column!r} in [since={since}, until={until}); "
            f"the column spans {values.min()} .. {values.max()}; widen data.since/data.until"
        )
    return df.loc[mask].reset_index(drop=True)


def normalize_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values of text (object) columns as NaN, whatever the reader produced (None from
    Parquet, SQL and JSON; NaN from CSV), so a model sees a missing text value the same way in
    training, batch scoring and serving (scikit-learn's encoders tell None and NaN apart).
    Changes ``df`` in place and returns it."""
    for name in df.select_dtypes(include="object").columns:
        column = df[name]
        missing = column.isna()
        if missing.any():
            df[name] = column.mask(missing, np.nan)
    return df


def read_table(source: DataSource, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read the table ``source`` describes.

    Returns the frame with ``source.timestamp_column`` (when set) parsed to datetimes and only
    the rows in ``[source.since, source.until)``. Raises DataIngestError naming the file (or
    the SQL URL without password) for a missing, empty or unreadable file, an unknown
    extension, a failing query, a missing or unparseable timestamp column, or a time window
    that leaves no rows. With ``allow_empty`` a file or query with a header but no rows gives
    an empty frame instead (a table that fills over time, such as late labels).
    """
    df = _read_sql(source, allow_empty) if source.sql_url else _read_file(source, allow_empty)
    normalize_missing(df)
    where = f"data file {source.path}" if source.path else source.describe()
    column = source.timestamp_column
    if column:
        if column not in df.columns:
            raise DataIngestError(
                f"timestamp column {column!r} is not in {where}; columns are "
                f"{list(df.columns)}; fix data.timestamp_column"
            )
        df[column] = parse_timestamps(df[column], column, where)
        df = apply_time_filter(df, column, source.since, source.until, where=where)
    return df


# --------------------------------------------------------------------------- digests


def _schema_bytes(df: pd.DataFrame) -> bytes:
    """Canonical JSON of the column names and dtypes."""
    schema = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    return json.dumps(schema, separators=(",", ":")).encode()


def row_hashes(df: pd.DataFrame) -> pd.Series:
    """Return one uint64 content hash per row of ``df`` (index kept, column names ignored).

    Equal rows get equal hashes; record them to know which rows went to which split.
    """
    return pd.util.hash_pandas_object(df, index=False)


def frame_digest(df: pd.DataFrame) -> str:
    """Return the SHA-256 hex digest of ``df``'s content: column names, dtypes and values.

    The index is ignored. Equal frames give equal digests; any changed cell, column name or
    dtype changes it. A frame written by :func:`write_snapshot` and read back keeps its digest.
    """
    digest = hashlib.sha256()
    digest.update(_schema_bytes(df))
    digest.update(len(df).to_bytes(8, "little"))
    if len(df.columns):
        digest.update(row_hashes(df).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotRef:
    """Where a snapshot lives and what it holds."""

    digest: str
    path: str
    n_rows: int
    n_columns: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def _check_columns(df: pd.DataFrame) -> None:
    """Raise DataIngestError for duplicate column names (Parquet cannot store them)."""
    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataIngestError(
            f"cannot snapshot a table with duplicate column names {dupes}; rename them"
        )


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table without its index; DataIngestError names a bad column."""
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        for name in df.columns:
            try:
                pa.array(df[name], from_pandas=True)
            except (pa.ArrowException, ValueError, TypeError) as col_exc:
                raise DataIngestError(
                    f"cannot snapshot column {name!r} (dtype {df[name].dtype}): "
                    f"{_first_line(col_exc)}; cast it to one type, e.g. df[{name!r}].astype(str)"
                ) from exc
        raise DataIngestError(f"cannot snapshot the table: {_first_line(exc)}") from exc


def _write_sidecar(df: pd.DataFrame, json_path: Path, digest: str, source: str) -> None:
    """Write ``<digest>.json`` unless it exists."""
    if json_path.exists():
        return
    meta = {
        "digest": digest,
        "source": source,
        "n_rows": len(df),
        "n_columns": len(df.columns),
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "created_at": datetime.now(UTC).isoformat(),
    }
    write_bytes_atomic(json.dumps(meta, indent=2).encode(), json_path, read_only=True)


def write_snapshot(df: pd.DataFrame, snapshot_dir: Path, source: str) -> SnapshotRef:
    """Store ``df`` (index dropped) as the immutable snapshot ``<snapshot_dir>/<digest>.parquet``.

    ``digest`` is :func:`frame_digest` of the frame as it reads back from the file. The file is
    written to a temp file in the same folder, made read-only and moved into place; an
    existing snapshot of the same content is never rewritten but returned as is. A sidecar
    ``<digest>.json`` records source, n_rows, columns, dtypes and created_at. Returns the
    :class:`SnapshotRef`. Raises DataIngestError when the folder cannot be written or a column
    cannot be stored in Parquet (mixed types, duplicate names).
    """
    snapshot_dir = Path(snapshot_dir).expanduser().resolve()
    _check_columns(df)
    try:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataIngestError(
            f"cannot create snapshot folder {snapshot_dir}: {_first_line(exc)}; set "
            f"MLOPS_SNAPSHOT_DIR to a writable folder"
        ) from exc

    def ref(digest: str) -> SnapshotRef:
        return SnapshotRef(
            digest=digest,
            path=str(snapshot_dir / f"{digest}.parquet"),
            n_rows=len(df),
            n_columns=len(df.columns),
            source=source,
        )

    digest = frame_digest(df)
    final = snapshot_dir / f"{digest}.parquet"
    if final.exists():
        _write_sidecar(df, final.with_suffix(".json"), digest, source)
        return ref(digest)

    table = _to_arrow(df)
    try:
        with temp_path_beside(final) as tmp:
            pq.write_table(table, tmp)
            back = pd.read_parquet(tmp)
            read_digest = frame_digest(back)
            if read_digest != digest:  # a dtype did not round-trip: the file's content decides
                digest, final = read_digest, snapshot_dir / f"{read_digest}.parquet"
            if not final.exists():
                publish(tmp, final, read_only=True)
        _write_sidecar(back, final.with_suffix(".json"), digest, source)
        _remember(final, back)
    except OSError as exc:
        raise DataIngestError(
            f"cannot write snapshot {final}: {_first_line(exc)}; check that "
            f"{snapshot_dir} is writable and has free space"
        ) from exc
    return ref(digest)


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """Return the frame stored in the snapshot file ``path``.

    Raises DataIngestError naming the file when it does not exist or is not readable Parquet.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataIngestError(f"snapshot {path} does not exist; was the snapshot folder moved?")
    try:
        frame = pd.read_parquet(path)
    except _READ_ERRORS as exc:
        raise DataIngestError(
            f"snapshot {path} is not a readable Parquet file: {_first_line(exc)}"
        ) from exc
    return normalize_missing(frame)


# Snapshots are immutable, so the last one read can be shared by the steps of a flow run
# instead of each re-reading the file. One entry: memory stays at one frame.
_SNAPSHOT_CACHE: dict[str, pd.DataFrame] = {}


def _remember(path: Path, frame: pd.DataFrame) -> None:
    _SNAPSHOT_CACHE.clear()
    _SNAPSHOT_CACHE[str(Path(path).expanduser().resolve())] = frame


def load_snapshot(path: str | Path) -> pd.DataFrame:
    """Like :func:`read_snapshot`, but the most recently written or read snapshot is served
    from memory. Callers must not modify the returned frame in place."""
    key = str(Path(path).expanduser().resolve())
    if key not in _SNAPSHOT_CACHE:
        _remember(Path(key), read_snapshot(key))
    return _SNAPSHOT_CACHE[key]


def forget_snapshots() -> None:
    """Drop the in-memory snapshot (at the end of a flow run)."""
    _SNAPSHOT_CACHE.clear()


def verify_snapshot(path: str | Path) -> str:
    """Recompute the digest of the snapshot ``path`` and return it.

    Raises DataIngestError naming the file when the content digest differs from the digest in
    the file name (the file was changed or corrupted), or when the file cannot be read.
    """
    path = Path(path)
    digest = frame_digest(read_snapshot(path))
    if digest != path.stem:
        raise DataIngestError(
            f"snapshot {path} does not match its name: its content digest is {digest}; the "
            f"file was modified or corrupted, re-create it from the source data"
        )
    return digest
