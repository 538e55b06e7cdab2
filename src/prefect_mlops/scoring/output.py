"""The scored output: request ids, the scored table's columns, and its part files.

Output columns: the id column (when ``id_column`` is set), ``request_id``, ``prediction``, one
``proba_<class>`` per class (``include_probabilities``, classifiers only), ``model_name``,
``model_version``. Each chunk is written atomically to ``<output_dir>/part-<i:05d>.parquet``.

``request_id`` is ``<job_id>-<chunk:05d>-<row:07d>``: the job id (the Prefect flow run id, or
``ScoringConfig.job_id``), the chunk number and the row's position in its chunk. It is
deterministic for a job (re-running a chunk gives the same ids), unique within the job, and
``request_id.rsplit("-", 2)`` gives back the job, chunk and row.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prefect_mlops.errors import ScoringError
from prefect_mlops.files import atomic_path

if TYPE_CHECKING:
    import pyarrow as pa

    from prefect_mlops.scoring.config import ScoringConfig


PART_PREFIX = "part-"


def new_job_id() -> str:
    """A fresh job id (used outside a Prefect flow run)."""
    return str(uuid.uuid4())


def request_ids(job_id: str, chunk_index: int, n_rows: int) -> pa.Array:
    """``<job_id>-<chunk:05d>-<row:07d>`` for each row of a chunk, as an Arrow string array
    (its bytes built with numpy, no Python string per row)."""
    import pyarrow as pa

    prefix = np.frombuffer(f"{job_id}-{chunk_index:05d}-".encode(), dtype=np.uint8)
    parts: list[pa.Array] = []
    start, digits = 0, 7
    while start < n_rows or not parts:  # rows with the same number of digits at a time
        stop = min(n_rows, 10**digits)
        parts.append(_fixed_width_ids(prefix, start, stop, digits))
        start, digits = stop, digits + 1
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _fixed_width_ids(prefix: np.ndarray, start: int, stop: int, digits: int) -> pa.Array:
    """``prefix`` + each row number in ``[start, stop)`` zero-padded to ``digits`` digits."""
    import pyarrow as pa

    n, width = stop - start, len(prefix) + digits
    text = np.empty((n, width), dtype=np.uint8)
    text[:, : len(prefix)] = prefix
    rows = np.arange(start, stop, dtype=np.int64)
    for place in range(digits):
        text[:, width - 1 - place] = rows // 10**place % 10 + ord("0")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def scored_table(
    predictions: dict[str, np.ndarray],
    *,
    model_name: str,
    version: str,
    chunk_index: int,
    job_id: str,
    ids: tuple[str, pa.Array | pa.ChunkedArray] | None = None,
) -> pa.Table:
    """The output of one chunk as an Arrow table: the id column (``ids``: name, values),
    ``request_id``, the ``predictions`` columns, ``model_name``, ``model_version``.

    Carries the pandas metadata of the same frame with object string columns, so
    ``pd.read_parquet`` of a part file gives the dtypes a pandas-built frame would.
    """
    import pyarrow as pa

    n_rows = len(predictions["prediction"])
    columns: dict[str, Any] = {}
    if ids is not None:
        name, values = ids
        if pa.types.is_dictionary(values.type):  # a categorical id is written as plain values
            values = values.cast(values.type.value_type)
        columns[name] = values
    columns["request_id"] = request_ids(job_id, chunk_index, n_rows)
    columns.update(predictions)
    columns["model_name"] = pa.repeat(pa.scalar(model_name, pa.string()), n_rows)
    columns["model_version"] = pa.repeat(pa.scalar(str(version), pa.string()), n_rows)
    table = pa.table(columns)
    head = table.slice(0, 1).to_pandas()
    return table.replace_schema_metadata(pa.Schema.from_pandas(head, preserve_index=False).metadata)


@dataclass(frozen=True)
class ChunkResult:
    """One scored chunk."""

    index: int
    rows: int
    path: str
    seconds: float
    worker: str
    started_at: float = 0.0
    finished_at: float = 0.0


def part_path(output_dir: str | Path, chunk_index: int) -> Path:
    """``<output_dir>/part-<chunk:05d>.parquet``."""
    return Path(output_dir) / f"{PART_PREFIX}{chunk_index:05d}.parquet"


# Dictionary encoding pays off for the repeated columns only; request ids are unique.
_DICTIONARY_COLUMNS = ("prediction", "model_name", "model_version")


def write_parquet_atomic(table: pa.Table, final: Path) -> None:
    """Write ``table`` to ``final`` through a temp file in the same folder, then rename."""
    import pyarrow.parquet as pq

    dictionary = [c for c in _DICTIONARY_COLUMNS if c in table.column_names]
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, use_dictionary=dictionary)


def write_part(scored: pa.Table, output_dir: str, chunk_index: int, started: float) -> ChunkResult:
    """Write a scored chunk to ``part-<chunk>.parquet`` (atomic); ``started`` is the
    ``time.time()`` its scoring began."""
    final = part_path(output_dir, chunk_index)
    write_parquet_atomic(scored, final)
    finished = time.time()
    return ChunkResult(
        index=chunk_index,
        rows=scored.num_rows,
        path=str(final),
        seconds=finished - started,
        worker=f"{os.uname().nodename}:{os.getpid()}",
        started_at=started,
        finished_at=finished,
    )


def existing_parts(output_dir: str | Path) -> list[Path]:
    """Part files already in ``output_dir``."""
    out = Path(output_dir)
    return sorted(out.glob(f"{PART_PREFIX}*.parquet")) if out.is_dir() else []


def check_output_dir(config: ScoringConfig) -> None:
    """Raise ScoringError when output_dir holds part files and ``overwrite`` is off, or is a
    file."""
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ScoringError(f"output_dir {out} is a file, not a folder")
    parts = existing_parts(out)
    if parts and not config.overwrite:
        raise ScoringError(
            f"output_dir {out} already holds {len(parts)} part file(s) ({parts[0].name}, ...); "
            f"choose another folder or set overwrite: true"
        )
