"""Tasks of the batch-scoring flow: resolve the model; score the whole input in this process
(default runner: one task run, per-chunk progress in its logs and a progress artifact), or one
staged chunk file (Dask: one task run per chunk, on a worker).

On Dask, staging the input is no task: the flow streams it (``scoring.stage_chunks``) so that
each chunk is submitted as soon as it is written. Only small values cross the task graph
(paths, row counts, the resolved model's URI and the MLflow store URIs); each worker loads the
model itself, once per process. No result is persisted.
"""

from __future__ import annotations

import time
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops.scoring import batch as scoring
from prefect_mlops.tasks.common import retry_transient


@task(
    name="resolve-model",
    retries=2,
    retry_delay_seconds=3,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def resolve_model(
    config: scoring.ScoringConfig, tracking_uri: str, registry_uri: str
) -> scoring.ResolvedModel:
    """Alias → version (or the pinned version) and the model's feature columns."""
    return scoring.resolve_model(config, tracking_uri, registry_uri)


@task(
    name="score-chunk-file",
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def score_chunk_file(
    chunk: scoring.ChunkFile,
    model: scoring.ResolvedModel,
    output_dir: str,
    job_id: str,
    id_column: str | None,
    include_probabilities: bool,
    predict_threads: int | None,
) -> scoring.ChunkResult:
    """Score one staged chunk into ``part-<chunk>.parquet`` (atomic, so a retry is safe)."""
    return scoring.score_chunk_file(
        chunk,
        model,
        output_dir,
        job_id,
        id_column=id_column,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )


PROGRESS_EVERY_SECONDS = 1.0  # progress artifact updates at most this often (each is an API call)


@task(name="score-chunks", cache_policy=NO_CACHE, persist_result=False)
def score_chunks(
    config: scoring.ScoringConfig, model: scoring.ResolvedModel, job_id: str
) -> tuple[list[scoring.ChunkResult], float]:
    """Score the whole input in this process (``scoring.score_in_process``): one task run
    for all chunks, so orchestration costs do not grow with the chunk count. Each chunk is
    logged as it is written; a progress artifact follows the rows scored when the row count is
    known up front (Parquet). Not retried: a re-run needs ``overwrite`` (parts exist)."""
    logger = get_run_logger()
    total = scoring.expected_rows(config)
    progress_id: UUID | None = None
    rows_done, last_update = 0, 0.0

    def report(result: scoring.ChunkResult) -> None:
        nonlocal rows_done, last_update, progress_id
        rows_done += result.rows
        logger.info(
            "chunk %d: %d rows in %.2f s -> %s (%d rows scored so far)",
            result.index,
            result.rows,
            result.seconds,
            result.path,
            rows_done,
        )
        if not total:
            return
        now, percent = time.monotonic(), min(100.0, 100.0 * rows_done / total)
        if progress_id is None:  # created once scoring runs: off the critical path
            progress_id = cast(
                "UUID",
                create_progress_artifact(
                    progress=percent,
                    key="batch-scoring-progress",
                    description=f"Rows of {total:,} scored with {model.model_uri}",
                ),
            )
            last_update = now
        elif now - last_update >= PROGRESS_EVERY_SECONDS:
            last_update = now
            update_progress_artifact(progress_id, progress=percent)

    results, read_seconds = scoring.score_in_process(config, model, job_id, on_chunk=report)
    if progress_id:
        update_progress_artifact(progress_id, progress=100.0)
    return results, read_seconds
