"""Tasks of the batch-scoring flow: resolve the model; score the whole input in this process
(default runner: one task run, per-chunk progress in its logs and a progress artifact), or one
staged chunk file (Dask: one task run per chunk, on a worker).

On Dask, staging the input is no task: the flow streams it (``scoring.staging.stage_chunks``)
so that each chunk is submitted as soon as it is written. Only small values cross the task graph
(paths, row counts, the resolved model's URI and the MLflow store URIs); each worker loads the
model itself, once per process. No result is persisted.
"""

from __future__ import annotations

import time
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.data.sources import known_row_count
from prefect_mlops.scoring import model as scoring_model
from prefect_mlops.scoring import runner
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.model import ResolvedModel
from prefect_mlops.scoring.output import ChunkResult
from prefect_mlops.scoring.staging import ChunkFile
from prefect_mlops.tasks.common import retry_transient


@task(
    name="resolve-model",
    retries=2,
    retry_delay_seconds=3,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def resolve_model(config: ScoringConfig, tracking_uri: str, registry_uri: str) -> ResolvedModel:
    """Alias → version (or the pinned version) and the model's feature columns."""
    return scoring_model.resolve_model(config, tracking_uri, registry_uri)


@task(
    name="score-chunk-file",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def score_chunk_file(
    chunk: ChunkFile,
    model: ResolvedModel,
    output_dir: str,
    job_id: str,
    id_column: str | None,
    include_probabilities: bool,
    predict_threads: int | None,
) -> ChunkResult:
    """Score one staged chunk into ``part-<chunk>.parquet`` (atomic, so a retry is safe)."""
    return runner.score_chunk_file(
        chunk,
        model,
        output_dir,
        job_id,
        id_column=id_column,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )


PROGRESS_EVERY_SECONDS = 1.0  # progress artifact updates at most this often (each is an API call)


class _ChunkReport:
    """Logs each scored chunk; keeps a progress artifact when the row count is known."""

    def __init__(self, logger: Any, total: int | None, model_uri: str) -> None:
        self.logger, self.total, self.model_uri = logger, total, model_uri
        self.rows_done, self.last_update = 0, 0.0
        self.progress_id: UUID | None = None

    def __call__(self, result: ChunkResult) -> None:
        self.rows_done += result.rows
        self.logger.info(
            "chunk %d: %d rows in %.2f s -> %s (%d rows scored so far)",
            result.index,
            result.rows,
            result.seconds,
            result.path,
            self.rows_done,
        )
        if not self.total:
            return
        now, percent = time.monotonic(), min(100.0, 100.0 * self.rows_done / self.total)
        if self.progress_id is None:  # created once scoring runs: off the critical path
            self.progress_id = cast(
                "UUID",
                create_progress_artifact(
                    progress=percent,
                    key="batch-scoring-progress",
                    description=f"Rows of {self.total:,} scored with {self.model_uri}",
                ),
            )
            self.last_update = now
        elif now - self.last_update >= PROGRESS_EVERY_SECONDS:
            self.last_update = now
            update_progress_artifact(self.progress_id, progress=percent)

    def finish(self) -> None:
        """The progress artifact at 100 % (when there is one)."""
        if self.progress_id:
            update_progress_artifact(self.progress_id, progress=100.0)


@task(name="score-chunks", cache_policy=NO_CACHE, persist_result=False)
def score_chunks(
    config: ScoringConfig, model: ResolvedModel, job_id: str
) -> tuple[list[ChunkResult], float]:
    """Score the whole input in this process (``scoring.runner.score_in_process``): one task
    run for all chunks, so orchestration costs do not grow with the chunk count. Returns the
    chunks scored and the seconds spent reading. Each chunk is logged as it is written; a
    progress artifact follows the rows scored when the row count is known up front (Parquet).
    Not retried: a re-run needs ``overwrite`` (parts exist)."""
    report = _ChunkReport(get_run_logger(), known_row_count(config.data), model.model_uri)
    results, read_seconds = runner.score_in_process(config, model, job_id, on_chunk=report)
    report.finish()
    return results, read_seconds
