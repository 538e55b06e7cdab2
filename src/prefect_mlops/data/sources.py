"""Data sources: read a table (CSV, Parquet or SQL) with its timestamp column and time window.

:func:`read_table` reads a :class:`~prefect_mlops.config.DataSource`, parses its timestamp
column and applies its since/until window; every failure is a ``DataIngestError`` naming the
file (or the SQL URL without its password), the column and the fix.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from prefect_mlops.config import DataSource
from prefect_mlops.errors import DataIngestError, first_line

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
READ_ERRORS = (
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
    except READ_ERRORS as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise DataIngestError(
            f"data file {path} is not a readable {kind} file: {first_line(exc)}; check the "
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
            f"cannot connect to {where}: {first_line(exc)}; check data.sql_url and that the "
            f"database driver is installed"
        ) from exc
    try:
        with engine.connect() as conn:
            df = pd.read_sql_query(text(source.query or ""), conn)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataIngestError(
            f"SQL query failed on {where}: {type(cause).__name__}: {first_line(cause)}"
        ) from exc
    finally:
        engine.dispose()
    if df.empty and not allow_empty:
        raise DataIngestError(f"SQL query on {where} has no rows (returned 0 rows)")
    return df


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
