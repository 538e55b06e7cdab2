"""The batch-scoring flow: resolve the model → stage the input in chunks → map scoring over the
chunk files → summary artifacts.

``batch_scoring(config)`` runs on whatever task runner it is given: Prefect's default thread-pool
runner (chunks scored ``config.parallelism`` at a time, so memory stays bounded) or a
``DaskTaskRunner``. :func:`run_batch_scoring` picks the runner from ``config.runner``.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_mlops import scoring
from prefect_mlops.scoring import ScoringConfig, ScoringSummary
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.scoring import resolve_model, score_chunk_file, stage_input

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@flow(
    name="batch-scoring",
    description="Score a CSV/Parquet file or a SQL query with the champion (or a pinned version) "
    "in chunks; write Parquet with predictions, model version and request ids.",
)
def batch_scoring(config: ScoringConfig) -> ScoringSummary:
    """Score ``config.data`` with ``config.model_name``, chunk by chunk, into ``output_dir``."""
    started = time.perf_counter()
    logger = get_run_logger()
    settings = get_settings()
    tracking_uri, registry_uri = settings.resolved_tracking_uri, settings.resolved_registry_uri
    job_id = config.job_id or str(flow_run.id or scoring.new_job_id())
    runner = _runner_name()
    if config.runner == "dask" and runner != "dask":
        logger.warning(
            "config.runner is 'dask' but this flow run uses %s; start it with "
            "run_batch_scoring(config) or `prefect-mlops score --dask` for a Dask cluster",
            runner,
        )
    model = resolve_model(config, tracking_uri, registry_uri)
    logger.info("scoring with %s (asked for %s)", model.model_uri, model.requested)
    staged = stage_input(config, model.features, job_id)
    logger.info("staged %d rows in %d chunk(s)", staged.rows, len(staged.chunks))
    try:
        results = _score_all(config, model, staged, job_id, window=_window(config, runner))
    finally:
        if not config.keep_staging:
            scoring.remove_staging(staged.staging_dir)
    summary = scoring.summarize(
        config, model, job_id, staged, results, time.perf_counter() - started, runner
    )
    create_markdown_artifact(
        markdown=scoring.summary_markdown(summary),
        key="batch-scoring-summary",
        description=f"Batch scoring with {model.model_uri}",
    )
    create_table_artifact(
        table=[
            {
                "chunk": r.index,
                "rows": r.rows,
                "seconds": round(r.seconds, 3),
                "worker": r.worker,
                "file": r.path,
            }
            for r in sorted(results, key=lambda r: r.index)
        ],
        key="batch-scoring-chunks",
        description=f"Chunks scored with {model.model_uri}",
    )
    return summary


def _score_all(
    config: ScoringConfig,
    model: scoring.ResolvedModel,
    staged: scoring.StagingResult,
    job_id: str,
    window: int,
) -> list[scoring.ChunkResult]:
    """Map ``score_chunk_file`` over the chunk files, ``window`` chunks in flight at a time."""
    results: list[scoring.ChunkResult] = []
    chunks = staged.chunks
    for start in range(0, len(chunks), window):
        futures = score_chunk_file.map(
            chunks[start : start + window],
            model=model,
            output_dir=config.output_dir,
            job_id=job_id,
            id_column=config.id_column,
            include_probabilities=config.include_probabilities,
            predict_threads=config.predict_threads,
        )
        wait(futures)
        results.extend(futures.result())
    return results


def _runner_name() -> str:
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    if runner is None:
        return "default"
    name = type(runner).__name__
    if name == "DaskTaskRunner":
        return "dask"
    return "default" if isinstance(runner, ThreadPoolTaskRunner) else name


def _window(config: ScoringConfig, runner: str) -> int:
    """Chunks in flight at once. The thread-pool runner starts every submitted task, so it gets
    ``parallelism``; Dask runs one task per worker thread and queues the rest (small)."""
    return config.parallelism if runner == "default" else 1_000_000


def dask_task_runner(config: ScoringConfig) -> Any:
    """A ``DaskTaskRunner`` for ``config``: the scheduler at ``dask_address``, else a local
    cluster of ``dask_workers`` processes with one thread each and OMP_NUM_THREADS=1."""
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
            "env": dict(WORKER_ENV),
        }
    )


def run_batch_scoring(config: ScoringConfig) -> ScoringSummary:
    """Run :func:`batch_scoring` on the runner ``config.runner`` names.

    Dask workers are other processes: without a configured ``PREFECT_API_URL`` each would start
    its own ephemeral Prefect server, so this starts the ephemeral server here first and hands
    its URL to the workers (through the settings context Prefect serializes with each task).
    """
    if config.runner != "dask":
        runner = ThreadPoolTaskRunner(max_workers=config.parallelism)
        return batch_scoring.with_options(task_runner=runner)(config)
    flow_with_dask = batch_scoring.with_options(task_runner=dask_task_runner(config))
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        return flow_with_dask(config)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        return flow_with_dask(config)
