"""The Dask runner's input: chunks staged as files that worker processes read.

:func:`stage_chunks` writes each chunk as ``<output_dir>/.staging-<job>/chunk-<i:05d>.arrow``
(Arrow IPC, uncompressed: a scratch copy that is cheap to write and read) and yields it at once,
so scoring starts on the first chunk while the rest is still being read;
:func:`remove_staged_chunk` deletes a scored chunk's file, so the staging folder holds only the
chunks not yet scored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_mlops.scoring.chunks import iter_scoring_tables

if TYPE_CHECKING:
    import pyarrow as pa

    from prefect_mlops.scoring.config import ScoringConfig


STAGING_PREFIX = ".staging-"


STAGED_SUFFIX = ".arrow"


@dataclass(frozen=True)
class ChunkFile:
    """One staged chunk of the input, and the seconds it took to read and write it."""

    index: int
    path: str
    rows: int
    seconds: float = 0.0


def staging_dir(output_dir: str | Path, job_id: str) -> Path:
    """``<output_dir>/.staging-<job>``: where :func:`stage_chunks` writes the job's chunks."""
    return Path(output_dir) / f"{STAGING_PREFIX}{_safe(job_id)}"


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def stage_chunks(config: ScoringConfig, features: list[str], job_id: str) -> Iterator[ChunkFile]:
    """Stream the input, write each chunk as ``<staging_dir>/chunk-<i>.arrow`` and yield it as
    soon as it is written (a generator: the caller scores chunk ``i`` while ``i + 1`` is read).
    The Dask runner's input: its worker processes read the chunks from these files.

    Only one chunk is in memory at a time. Nothing is written when the input lacks a feature
    column (ScoringError) or cannot be read (DataIngestError); a DataIngestError also names an
    input with no rows, after the last chunk. Old part files are removed before the first chunk
    is written when ``overwrite`` is on. The staging folder is deleted here when reading the
    input fails; otherwise it is the caller's to remove (:func:`remove_staging`), also when the
    caller stops early (so a failed job's chunks can be kept for debugging).
    """
    import pyarrow.feather as feather

    staging = staging_dir(config.output_dir, job_id)
    try:
        for chunk in iter_scoring_tables(config, features):
            started = time.perf_counter()
            staging.mkdir(parents=True, exist_ok=True)
            path = staging / f"chunk-{chunk.index:05d}{STAGED_SUFFIX}"
            feather.write_feather(chunk.table, path, compression="uncompressed")
            seconds = chunk.seconds + time.perf_counter() - started
            yield ChunkFile(index=chunk.index, path=str(path), rows=chunk.rows, seconds=seconds)
    except GeneratorExit:  # the caller stopped early: its cleanup decides
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_staged_chunk(chunk: ChunkFile, columns: list[str]) -> pa.Table:
    """The ``columns`` of a staged chunk (read into memory, not memory-mapped)."""
    import pyarrow.feather as feather

    return feather.read_table(chunk.path, columns=columns, memory_map=False)


def remove_staged_chunk(chunk: ChunkFile) -> None:
    """Delete a scored chunk's staged file (ignores a missing one)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(chunk.path)


def remove_staging(staging_dir: str | Path) -> None:
    """Delete a staging folder (ignores a missing one)."""
    shutil.rmtree(staging_dir, ignore_errors=True)
