"""The chunks to score: the input read through the data sources, checked against the model.

:func:`iter_scoring_tables` streams ``config.data`` with
:func:`~prefect_mlops.data.sources.iter_tables` (the reader training uses, with its time window)
in Arrow tables of at most ``chunk_size`` rows and only the columns scoring reads. The columns
are checked against the model's features (and the output folder against old results) *before*
the first chunk, so a bad input leaves the output untouched; one chunk is in memory at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect_mlops.data.sources import describe_source, iter_tables
from prefect_mlops.errors import ScoringError
from prefect_mlops.scoring.output import check_output_dir, existing_parts

if TYPE_CHECKING:
    import pyarrow as pa

    from prefect_mlops.scoring.config import ScoringConfig


@dataclass(frozen=True)
class ChunkTable:
    """One chunk of the input in memory, and the seconds it took to read."""

    index: int
    table: pa.Table
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows in the chunk."""
        return int(self.table.num_rows)


def needed_columns(features: list[str], id_column: str | None) -> list[str]:
    """The input columns scoring reads: the features and the id column (the reader adds the
    timestamp column a time window needs)."""
    cols = list(features)
    if id_column and id_column not in cols:
        cols.append(id_column)
    return cols


def check_columns(
    columns: list[str], features: list[str], config: ScoringConfig, where: str
) -> None:
    """Raise ScoringError naming every feature (or the id column) ``columns`` lack."""
    present = set(map(str, columns))
    missing = [c for c in features if c not in present]
    if missing:
        raise ScoringError(
            f"{where} lacks the model's feature column(s) {missing}; the model "
            f"{config.model_ref} reads {features}"
        )
    if config.id_column and config.id_column not in present:
        raise ScoringError(
            f"id_column {config.id_column!r} is not in {where}; columns are {sorted(present)}"
        )


def iter_scoring_tables(config: ScoringConfig, features: list[str]) -> Iterator[ChunkTable]:
    """The chunks to score, in order: the input streamed in tables of at most ``chunk_size`` rows
    (only the columns scoring reads, the time window applied, empty chunks skipped), each with
    its index and the seconds it took to read.

    Plain text features of a Parquet input are read dictionary-encoded
    (:func:`~prefect_mlops.scoring.predict.features_frame` gives them back as text); the id
    column keeps its type, as it is copied to the output.

    Checks the output folder (:func:`check_output_dir`) and the columns before the first chunk
    is yielded, and removes old part files then (``overwrite`` on), so a bad input leaves the
    output untouched. Raises ScoringError or DataIngestError (also for an input with no rows,
    or none in the time window, after the last chunk).
    """
    check_output_dir(config)
    where = describe_source(config.data)
    tables = iter_tables(
        config.data,
        chunk_size=config.chunk_size,
        columns=needed_columns(features, config.id_column),
        check_header=lambda names: check_columns(names, features, config, where),
        dictionary_columns=[c for c in features if c != config.id_column],
    )
    index = 0
    started = time.perf_counter()
    for table in tables:
        if table.num_rows == 0:  # no row of this chunk in the time window
            continue
        if index == 0:
            for old in existing_parts(config.output_dir):  # only reached with overwrite on
                old.unlink()
        yield ChunkTable(index=index, table=table, seconds=time.perf_counter() - started)
        index += 1
        started = time.perf_counter()
