"""Data sources: read a table (CSV, Parquet or SQL) with its timestamp column and time window.

One reader (``_stream``) reads a :class:`~prefect_mlops.config.DataSource` whole or in chunks,
checks its columns, parses its timestamp column and applies its since/until window; two entry
points are built on it:

* :func:`read_table` — the whole table as one pandas frame (training, labels, scaffolding);
* :func:`iter_tables` — Arrow tables of bounded size (batch scoring), Parquet text columns
  optionally read dictionary-encoded and named in the schema (:func:`read_as_dictionary`).

Every failure is a ``DataIngestError`` naming the file (or the SQL URL, every password and
secret masked), the column and the fix. A SQL source's password is resolved from its reference
(``DataSource.connection_url``) only here, where the connection is opened.

The timestamp parsing and the time window are in :mod:`~prefect_mlops.data.time_window`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from prefect_mlops.config import DataSource
from prefect_mlops.data.time_window import (
    no_rows_in_window,
    parse_timestamps,
    window_mask,
)
from prefect_mlops.errors import DataIngestError, MLOpsError, first_line
from prefect_mlops.secrets import chainable, mask_text, secret_values

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


# --------------------------------------------------------------------------- the one reader

# A chunk as a reader produces it: pandas for CSV and SQL (their type inference), Arrow for
# Parquet read in chunks; converted to the kind the caller asked for.
Chunk: TypeAlias = pd.DataFrame | pa.Table

# Schema metadata naming the plain text columns read dictionary-encoded (a JSON list).
READ_AS_DICTIONARY = b"prefect_mlops.read_as_dictionary"


@dataclass(frozen=True)
class _Plan:
    """How one read goes: whole or in chunks, which columns, which kind of chunk."""

    chunk_size: int | None = None  # None: the whole table as one chunk
    columns: tuple[str, ...] | None = None  # None: every column
    arrow: bool = False
    dictionary_columns: frozenset[str] = frozenset()
    check_header: Callable[[list[str]], None] | None = None
    allow_empty: bool = False


def describe_source(source: DataSource) -> str:
    """``data file <path>``, or the SQL URL (masked) and query: how errors name it."""
    return f"data file {source.path}" if source.path else source.describe()


def read_table(source: DataSource, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read the table ``source`` describes.

    Returns the frame with ``source.timestamp_column`` (when set) parsed to datetimes and only
    the rows in ``[source.since, source.until)``. Raises DataIngestError naming the file (or
    the masked SQL URL) for a missing, empty or unreadable file, an unknown
    extension, a failing query, a missing or unparseable timestamp column, or a time window
    that leaves no rows. With ``allow_empty`` a file or query with a header but no rows gives
    an empty frame instead (a table that fills over time, such as late labels).
    """
    (frame,) = list(_stream(source, _Plan(allow_empty=allow_empty)))  # the whole table: one chunk
    return cast(pd.DataFrame, frame)


def iter_tables(
    source: DataSource,
    *,
    chunk_size: int,
    columns: Sequence[str] | None = None,
    check_header: Callable[[list[str]], None] | None = None,
    dictionary_columns: Collection[str] = (),
) -> Iterator[pa.Table]:
    """Stream ``source`` as Arrow tables of at most ``chunk_size`` rows, the time window applied.

    Reads ``columns`` (all when None) and, for a since/until window, the timestamp column,
    which keeps the values as read (it is parsed only to filter; a chunk may be left with no
    rows). Parquet stays in Arrow (``iter_batches``); CSV and SQL chunks are read by pandas
    (its type inference) and converted. Plain text Parquet columns among
    ``dictionary_columns`` are read dictionary-encoded and named in the schema's
    ``READ_AS_DICTIONARY`` metadata (:func:`read_as_dictionary`). ``check_header`` sees the
    column names before any row is yielded (from the Parquet schema or CSV header; the first
    SQL chunk). Local files only.

    Raises DataIngestError like :func:`read_table` (an input with no rows, or none in the
    window, after the last chunk), and whatever ``check_header`` raises.
    """
    plan = _Plan(
        chunk_size=chunk_size,
        columns=None if columns is None else tuple(columns),
        arrow=True,
        dictionary_columns=frozenset(dictionary_columns),
        check_header=check_header,
    )
    return cast(Iterator[pa.Table], _stream(source, plan))


def read_as_dictionary(table: pa.Table) -> set[str]:
    """The columns of ``table`` that were plain text in the source and that the reader
    dictionary-encoded (:func:`iter_tables`' ``dictionary_columns``)."""
    return set(json.loads((table.schema.metadata or {}).get(READ_AS_DICTIONARY, b"[]")))


def mark_read_as_dictionary(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``table`` with ``columns`` named as read dictionary-encoded (:func:`read_as_dictionary`)."""
    if not columns:
        return table
    metadata = {**(table.schema.metadata or {}), READ_AS_DICTIONARY: json.dumps(list(columns))}
    return table.replace_schema_metadata(metadata)


def is_text_type(dtype: pa.DataType) -> bool:
    """Whether an Arrow type is plain text: string, large or view string (not a dictionary)."""
    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    )


def known_row_count(source: DataSource) -> int | None:
    """Rows a read of ``source`` gives when known before reading (a local Parquet file without
    a time window: its footer says), else None (CSV, SQL, a time window, an unreadable file:
    the read itself names the problem)."""
    import pyarrow.parquet as pq

    if source.is_sql or _has_window(source):
        return None
    try:
        fmt = resolve_format(source.path or "", source.format)
        if fmt != "parquet":
            return None
        return int(pq.ParquetFile(_checked_target(source, fmt, local_only=True)).metadata.num_rows)
    except (MLOpsError, *READ_ERRORS):
        return None


def _stream(source: DataSource, plan: _Plan) -> Iterator[Chunk]:
    """The one reader: chunks of ``source`` as ``plan`` says, checked, the time window applied.

    Per chunk: the no-rows check (a first chunk with no rows), the header checks (once), the
    column selection, the conversion to pandas or Arrow, missing text as NaN (pandas), the
    timestamp column parsed and the window applied. At the end: no rows at all, or none in
    the window, raise (so a whole-table read raises as soon as it is read).
    """
    where = describe_source(source)
    timestamp = _timestamp_column(source, plan)
    wanted = None if plan.columns is None else list(plan.columns)
    if wanted is not None and timestamp and timestamp not in wanted:
        wanted.append(timestamp)
    header, chunks = _open(source, plan, wanted)
    if header is not None:
        _check_header(header, plan, wanted, timestamp, where)
    rows = kept = 0
    spans: list[tuple[Any, Any]] = []
    for raw in chunks:
        if not rows and not len(raw) and not plan.allow_empty:
            raise _no_rows(source, where, _names(raw))
        if header is None:
            header = _names(raw)
            _check_header(header, plan, wanted, timestamp, where)
        rows += len(raw)
        chunk = _as_kind(_select(raw, wanted), plan.arrow, where)
        if isinstance(chunk, pd.DataFrame):
            normalize_missing(chunk)
        if timestamp:
            chunk, span = _apply_window(chunk, source, timestamp, where)
            spans.append(span)
        kept += len(chunk)
        yield chunk
    if not rows and not plan.allow_empty:
        raise _no_rows(source, where, header or [])
    if timestamp and _has_window(source) and not kept:
        raise no_rows_in_window(where, timestamp, source.since, source.until, _span(spans))


def _timestamp_column(source: DataSource, plan: _Plan) -> str | None:
    """The timestamp column a read parses: whenever one is named for a pandas read (the frame
    carries it parsed); for an Arrow read only when a since/until window needs it."""
    if source.timestamp_column and (not plan.arrow or _has_window(source)):
        return source.timestamp_column
    return None


def _has_window(source: DataSource) -> bool:
    """Whether a since/until window filters the rows (it needs a timestamp column)."""
    return bool(source.timestamp_column) and (source.since is not None or source.until is not None)


def _check_header(
    names: list[str], plan: _Plan, wanted: list[str] | None, timestamp: str | None, where: str
) -> None:
    """The caller's check, then the timestamp column and the columns asked for."""
    if plan.check_header is not None:
        plan.check_header(names)
    if timestamp and timestamp not in names:
        raise DataIngestError(
            f"timestamp column {timestamp!r} is not in {where}; columns are {names}; "
            f"fix data.timestamp_column"
        )
    missing = [c for c in wanted or [] if c not in names]
    if missing:
        raise DataIngestError(f"{where} lacks the column(s) {missing}; columns are {names}")


def _names(chunk: Chunk) -> list[str]:
    return (
        [str(c) for c in chunk.columns] if isinstance(chunk, pd.DataFrame) else chunk.column_names
    )


def _select(chunk: Chunk, columns: list[str] | None) -> Chunk:
    if columns is None or _names(chunk) == columns:
        return chunk
    return chunk[columns] if isinstance(chunk, pd.DataFrame) else chunk.select(columns)


def _as_kind(chunk: Chunk, arrow: bool, where: str) -> Chunk:
    """``chunk`` as an Arrow table (``arrow``) or a pandas frame."""
    if not arrow:
        return chunk if isinstance(chunk, pd.DataFrame) else chunk.to_pandas()
    if isinstance(chunk, pa.Table):
        return chunk
    try:
        return pa.Table.from_pandas(chunk, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataIngestError(
            f"{where} cannot be read in chunks: {first_line(exc)}; give each column values of "
            f"one type"
        ) from exc


def _apply_window(
    chunk: Chunk, source: DataSource, column: str, where: str
) -> tuple[Chunk, tuple[Any, Any]]:
    """``chunk`` with the rows in ``[since, until)`` (all when no bound is set), and the span
    of its timestamps. A pandas chunk carries the column parsed; an Arrow one as read."""
    if isinstance(chunk, pd.DataFrame):
        values = chunk[column] = parse_timestamps(chunk[column], column, where)
    else:
        values = parse_timestamps(chunk.column(column).to_pandas(), column, where)
    span = (values.min(), values.max())
    if not _has_window(source):
        return chunk, span
    mask = window_mask(values, source.since, source.until)
    if isinstance(chunk, pd.DataFrame):
        return chunk.loc[mask].reset_index(drop=True), span
    return chunk.filter(pa.array(mask)), span


def _span(spans: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """The span of the timestamps over all chunks (NaT when none has one)."""
    lows = [low for low, _ in spans if pd.notna(low)]
    highs = [high for _, high in spans if pd.notna(high)]
    if not lows:
        return pd.NaT, pd.NaT
    try:
        return min(lows), max(highs)
    except TypeError:  # chunks parsed apart: naive in one, time-zone-aware in another
        return lows[0], highs[-1]


def _no_rows(source: DataSource, where: str, columns: list[str]) -> DataIngestError:
    if source.is_sql:
        return DataIngestError(f"SQL query on {where} has no rows (returned 0 rows)")
    return DataIngestError(f"{where} has no rows (columns: {columns})")


# --------------------------------------------------------------------------- opening a source


def _open(
    source: DataSource, plan: _Plan, columns: list[str] | None
) -> tuple[list[str] | None, Iterator[Chunk]]:
    """The column names when known before reading rows (None: from the first chunk), and the
    raw chunks of ``source``. Read errors become DataIngestError naming the file or query."""
    if source.is_sql:
        return None, _sql_chunks(source, plan.chunk_size)
    path = source.path or ""
    fmt = resolve_format(path, source.format)
    target = _checked_target(source, fmt, local_only=plan.chunk_size is not None)
    if plan.chunk_size is None:
        return None, _whole_file(target, path, fmt)
    if fmt == "csv":
        return _csv_chunks(target, path, plan.chunk_size, columns)
    return _parquet_chunks(target, path, plan, columns)


def _checked_target(source: DataSource, fmt: str, *, local_only: bool) -> str | Path:
    """What to open for ``source``'s file: its local path, or a remote URI as it is (unless
    ``local_only``: reading in chunks streams local files). Raises DataIngestError naming a
    missing, empty (0 bytes) or remote-when-local-only file, or a folder given as CSV."""
    path = source.path or ""
    if is_remote_uri(path):
        if local_only:
            raise DataIngestError(
                f"data file {path}: reading in chunks streams local files only; copy it "
                f"locally first"
            )
        return path
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
    return local


@contextlib.contextmanager
def _reading_file(path: str, fmt: str) -> Iterator[None]:
    """Turn a reader's error into a DataIngestError naming the file and the fix."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise DataIngestError(f"data file {path} has no rows (and no header)") from exc
    except READ_ERRORS as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise DataIngestError(
            f"data file {path} is not a readable {kind} file: {first_line(exc)}; check the "
            f"file, or set data.format if it is not {kind}"
        ) from exc


def _csv_sep(target: str | Path) -> str:
    return "\t" if ".tsv" in [s.lower() for s in Path(str(target)).suffixes] else ","


def _whole_file(target: str | Path, path: str, fmt: str) -> Iterator[Chunk]:
    with _reading_file(path, fmt):
        if fmt == "csv":
            frame = pd.read_csv(target, sep=_csv_sep(target), low_memory=False)
        else:
            frame = pd.read_parquet(target)
    yield frame


def _csv_chunks(
    target: str | Path, path: str, size: int, columns: list[str] | None
) -> tuple[list[str], Iterator[Chunk]]:
    sep = _csv_sep(target)
    with _reading_file(path, "csv"):
        header = [str(c) for c in pd.read_csv(target, sep=sep, nrows=0).columns]

    def chunks() -> Iterator[Chunk]:
        with (
            _reading_file(path, "csv"),
            pd.read_csv(target, sep=sep, usecols=columns, chunksize=size) as reader,
        ):
            yield from reader

    return header, chunks()


def _parquet_chunks(
    target: str | Path, path: str, plan: _Plan, columns: list[str] | None
) -> tuple[list[str], Iterator[Chunk]]:
    import pyarrow.parquet as pq

    with _reading_file(path, "parquet"):
        schema = pq.read_schema(target)
    # Plain text columns read dictionary-encoded (as Parquet writers store them) decode no
    # string per row; the metadata names them, so a reader of the chunk can give them back as
    # plain text.
    text = [
        c
        for c in schema.names
        if c in plan.dictionary_columns and is_text_type(schema.field(c).type)
    ]

    def chunks() -> Iterator[Chunk]:
        with _reading_file(path, "parquet"):
            batches = pq.ParquetFile(target, read_dictionary=text).iter_batches(
                batch_size=plan.chunk_size or 1,
                columns=columns,
                # One thread: a chunked read overlaps its consumer's work, which keeps the
                # cores busy already (Arrow's decoding threads cost more CPU than they save).
                use_threads=False,
            )
            for batch in batches:
                yield mark_read_as_dictionary(pa.Table.from_batches([batch]), text)

    return schema.names, chunks()


def _sql_chunks(source: DataSource, size: int | None) -> Iterator[Chunk]:
    """The query's rows (in chunks of ``size`` rows, streamed by the driver, or all at once);
    raise DataIngestError naming the masked URL (a driver's error text masked too, and not
    chained when it shows a secret), ConfigError when the password cannot be resolved."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    where = source.describe()
    url = source.connection_url()
    known = secret_values(url)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DataIngestError(
            f"cannot connect to {where}: {mask_text(first_line(exc), known)}; check "
            f"data.sql_url (or the URL in data.sql_url_env) and that the database driver is "
            f"installed"
        ) from chainable(exc, known)
    try:
        with engine.connect() as conn:
            query = text(source.query or "")
            if size is None:
                yield pd.read_sql_query(query, conn)
            else:
                streaming = conn.execution_options(stream_results=True)
                yield from pd.read_sql_query(query, streaming, chunksize=size)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataIngestError(
            f"SQL query failed on {where}: {type(cause).__name__}: "
            f"{mask_text(first_line(cause), known)}"
        ) from chainable(exc, known)
    finally:
        engine.dispose()
