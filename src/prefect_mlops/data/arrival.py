"""Data arrival: how many rows the training source holds that the champion was not trained on.

With a timestamp column (``data.timestamp_column``), the new rows are those newer than the
newest timestamp of the champion's training snapshot (lineage tag ``mlops.data.snapshot``);
without one (or when that snapshot is gone), the source's row count minus the snapshot's rows
(lineage tag ``mlops.data.rows``). A model without a champion counts every row as new. The
source is read as training reads it (its since/until window applied), only the timestamp
column, in chunks for local files and SQL. Pure pandas / pyarrow (no Prefect, no MLflow).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from prefect_mlops.config import DataSource
from prefect_mlops.data.sources import (
    READ_ERRORS,
    describe_source,
    is_remote_uri,
    iter_tables,
    known_row_count,
    read_table,
)
from prefect_mlops.data.time_window import as_time_bound, parse_timestamps
from prefect_mlops.errors import DataIngestError, first_line
from prefect_mlops.registry import lineage

Basis = Literal["timestamp", "row_count", "no_champion"]

#: Rows per chunk when counting a local file or a query.
COUNT_CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class ChampionData:
    """What the champion was trained on: its version, snapshot file and row count (from its
    lineage tags; None when a tag is missing)."""

    version: str
    snapshot: str | None
    rows: int | None

    @classmethod
    def from_tags(cls, version: str, tags: Mapping[str, str]) -> ChampionData:
        """The champion's data as its version tags record it; raises DataIngestError naming
        the tag when ``mlops.data.rows`` is not a whole number."""
        raw = tags.get(lineage.DATA_ROWS)
        try:
            rows = None if raw in (None, "") else int(str(raw))
        except ValueError as exc:
            raise DataIngestError(
                f"champion v{version}: tag {lineage.DATA_ROWS}={raw!r} is not a row count; "
                "retrain the model to record it"
            ) from exc
        return cls(
            version=str(version), snapshot=tags.get(lineage.DATA_SNAPSHOT) or None, rows=rows
        )


@dataclass(frozen=True)
class ArrivalCount:
    """New rows in the source since the champion's data: ``basis`` says how they were
    counted; ``newest_trained`` is the newest timestamp of the champion's snapshot (timestamp
    basis), ``source_rows`` the source's row count (row-count basis and no champion)."""

    new_rows: int
    basis: Basis
    champion_version: str | None
    source: str
    source_rows: int | None = None
    champion_rows: int | None = None
    newest_trained: str | None = None

    def arrived(self, threshold: int) -> bool:
        """Whether at least ``threshold`` new rows arrived."""
        return self.new_rows >= threshold

    def to_dict(self) -> dict[str, Any]:
        """The count as a JSON-able dict."""
        return asdict(self)


def newest_timestamp(snapshot: str | Path, column: str) -> pd.Timestamp | None:
    """The newest value of ``column`` in the snapshot file (None when the column holds no
    timestamp). Reads that column only.

    Raises DataIngestError naming the file (missing, unreadable) or the column (not in it, not
    timestamps).
    """
    import pyarrow.parquet as pq

    path = Path(snapshot).expanduser()
    if not path.exists():
        raise DataIngestError(f"snapshot {path} does not exist; was the snapshot folder moved?")
    try:
        names = pq.ParquetFile(path).schema_arrow.names
        if column not in names:
            raise DataIngestError(
                f"snapshot {path} has no timestamp column {column!r} (columns {names}); the "
                "champion was trained without it: count by rows or retrain"
            )
        values = pq.read_table(path, columns=[column]).column(column).to_pandas()
    except READ_ERRORS as exc:
        raise DataIngestError(
            f"snapshot {path} is not a readable Parquet file: {first_line(exc)}"
        ) from exc
    parsed = parse_timestamps(values, column, f"snapshot {path}")
    newest = parsed.max()
    return None if pd.isna(newest) else pd.Timestamp(newest)


def _timestamp_chunks(source: DataSource, column: str) -> Iterator[pd.Series]:
    where = describe_source(source)
    if source.path and is_remote_uri(source.path):  # chunked reads stream local files only
        yield read_table(source)[column]
        return
    for table in iter_tables(source, chunk_size=COUNT_CHUNK_ROWS, columns=[column]):
        yield parse_timestamps(table.column(column).to_pandas(), column, where)


def count_newer(source: DataSource, column: str, after: pd.Timestamp | None) -> int:
    """Rows of ``source`` whose ``column`` is after ``after`` (every row with a timestamp
    when None); naive times are taken as UTC.

    Raises DataIngestError like :func:`~prefect_mlops.data.sources.read_table` (missing file,
    no rows, column missing or not timestamps).
    """
    newer = 0
    for values in _timestamp_chunks(source, column):
        if after is None:
            newer += int(values.notna().sum())
            continue
        bound = as_time_bound(after, getattr(values.dtype, "tz", None))
        newer += int((values > bound).sum())
    return newer


def count_rows(source: DataSource) -> int:
    """Rows of ``source`` as training reads them (its time window applied): from a Parquet
    footer when it says, else counted chunk by chunk.

    Raises DataIngestError like :func:`~prefect_mlops.data.sources.read_table`.
    """
    known = known_row_count(source)
    if known is not None:
        return known
    if source.path and is_remote_uri(source.path):
        return len(read_table(source))
    return sum(
        t.num_rows if isinstance(t, pa.Table) else len(t)
        for t in iter_tables(source, chunk_size=COUNT_CHUNK_ROWS)
    )


def count_new_rows(source: DataSource, champion: ChampionData | None) -> ArrivalCount:
    """How many rows of ``source`` the champion was not trained on (see the module).

    Raises DataIngestError naming the source or the snapshot when either cannot be read, or
    when the champion records neither a snapshot with timestamps nor its row count.
    """
    where = source.describe()
    column = source.timestamp_column
    if champion is None:
        rows = count_newer(source, column, None) if column else count_rows(source)
        return ArrivalCount(rows, "no_champion", None, where, source_rows=rows)
    if column and champion.snapshot and Path(champion.snapshot).expanduser().exists():
        newest = newest_timestamp(champion.snapshot, column)
        return ArrivalCount(
            count_newer(source, column, newest),
            "timestamp",
            champion.version,
            where,
            champion_rows=champion.rows,
            newest_trained=None if newest is None else newest.isoformat(),
        )
    if champion.rows is None:
        raise DataIngestError(
            f"champion v{champion.version} records no {lineage.DATA_ROWS} tag"
            + ("" if column else " and the source has no timestamp column")
            + (f" and its snapshot {champion.snapshot} is gone" if champion.snapshot else "")
            + ": new rows cannot be counted; retrain the model to record its data"
        )
    rows = count_rows(source)
    return ArrivalCount(
        max(rows - champion.rows, 0),
        "row_count",
        champion.version,
        where,
        source_rows=rows,
        champion_rows=champion.rows,
    )
