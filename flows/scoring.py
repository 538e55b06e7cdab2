"""The batch-scoring flow: resolve the model → score the input chunk by chunk → summary
artifacts.

On Prefect's default runner the scoring is one ``score-chunks`` task run in this process
(``scoring.runner.score_in_process``): the input is read chunk by chunk, nothing is staged on disk,
each chunk is cut in ``parallelism`` row slices predicted by as many threads, and two chunks are
in flight, so reading and writing overlap predicting. One task run, not one per chunk, keeps the
Prefect API's per-task-run cost from growing with the chunk count; each chunk is still visible
in the UI (a log line as it is written, a progress artifact, the chunk table at the end).

On Dask (``DaskTaskRunner``) the flow streams the input into chunk files
(``scoring.staging.stage_chunks``, a generator, not a task run: a Prefect generator task keeps its
task-run context set while the flow body runs between its yields) and submits each to
``score-chunk-file`` as soon as it is written, with a sliding window of twice the cluster's
worker threads (each worker has its next chunk queued). A scored chunk's staged file is deleted
at once. Memory is bounded by chunk size x window, not by the input, on both runners.
:func:`run_batch_scoring` picks the runner from ``config.runner``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.model import ResolvedModel
from prefect_mlops.scoring.output import ChunkResult, new_job_id
from prefect_mlops.scoring.staging import (
    ChunkFile,
    remove_staged_chunk,
    remove_staging,
    stage_chunks,
    staging_dir,
)
from prefect_mlops.scoring.summary import ScoringSummary, summarize, summary_markdown
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.scoring import resolve_model, score_chunk_file, score_chunks

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
WORKER_DEATH_TIMEOUT = 180  # seconds; a cold worker start on a loaded machine takes ~30 s


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
    job_id = config.job_id or str(flow_run.id or new_job_id())
    runner = _runner_name()
    if config.runner == "dask" and runner != "dask":
        logger.warning(
            "config.runner is 'dask' but this flow run uses %s; start it with "
            "run_batch_scoring(config) or `prefect-mlops score --dask` for a Dask cluster",
            runner,
        )
    model = resolve_model(config, tracking_uri, registry_uri)
    logger.info("scoring with %s (asked for %s)", model.model_uri, model.requested)
    if runner == "dask":
        results, read_seconds = _score_on_dask(config, model, job_id)
    else:
        results, read_seconds = score_chunks(config, model, job_id)
    logger.info("scored %d rows in %d chunk(s)", sum(r.rows for r in results), len(results))
    summary = summarize(
        config, model, job_id, read_seconds, results, time.perf_counter() - started, runner
    )
    create_markdown_artifact(
        markdown=summary_markdown(summary),
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


def _recorded(chunks: Iterable[ChunkFile], into: list[ChunkFile]) -> Iterable[ChunkFile]:
    """``chunks``, appending each to ``into`` as it goes by."""
    for chunk in chunks:
        into.append(chunk)
        yield chunk


def _score_on_dask(
    config: ScoringConfig, model: ResolvedModel, job_id: str
) -> tuple[list[ChunkResult], float]:
    """Stage the input into chunk files and score them on the Dask workers (:func:`_score_all`);
    the chunks scored and the seconds spent staging. The staging folder goes afterwards unless
    ``keep_staging``."""
    staged: list[ChunkFile] = []
    try:
        results = _score_all(
            config,
            model,
            _recorded(stage_chunks(config, model.features, job_id), staged),
            job_id,
        )
    finally:
        if not config.keep_staging:
            remove_staging(staging_dir(config.output_dir, job_id))
    return results, sum(c.seconds for c in staged)


def _score_all(
    config: ScoringConfig,
    model: ResolvedModel,
    chunks: Iterable[ChunkFile],
    job_id: str,
) -> list[ChunkResult]:
    """Submit ``score_chunk_file`` for each chunk as soon as ``chunks`` yields it, with at most
    ``_dask_window()`` chunks in flight; when the window is full, wait for whichever chunk finishes
    first. A failed chunk raises once the chunks still in flight have finished."""
    finished: queue.SimpleQueue[PrefectFuture[ChunkResult]] = queue.SimpleQueue()
    in_flight: dict[PrefectFuture[ChunkResult], ChunkFile] = {}
    results: list[ChunkResult] = []

    def collect_one() -> None:
        future = finished.get()
        chunk = in_flight.pop(future)
        results.append(future.result())
        if not config.keep_staging:
            remove_staged_chunk(chunk)

    window = 0
    try:
        for chunk in chunks:
            # Sized at the first chunk, so a bad input fails before a Dask cluster starts.
            window = window or _dask_window()
            while len(in_flight) >= window:
                collect_one()
            future = score_chunk_file.submit(
                chunk,
                model=model,
                output_dir=config.output_dir,
                job_id=job_id,
                id_column=config.id_column,
                include_probabilities=config.include_probabilities,
                predict_threads=config.predict_threads,
            )
            in_flight[future] = chunk
            future.add_done_callback(finished.put)
        while in_flight:
            collect_one()
    except Exception:
        # No chunk still writing when the staging folder goes. Not on an interrupt or a
        # timeout (BaseException): those must not wait for the very chunk that hangs.
        wait(list(in_flight))
        raise
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


def _dask_window() -> int:
    """Chunks in flight at once on Dask: twice the cluster's worker threads (at least 2), so
    each worker has its next chunk queued while it scores one."""
    ctx = FlowRunContext.get()
    client = ctx.task_runner.client  # type: ignore[union-attr]  # a DaskTaskRunner
    return max(2, 2 * sum(client.nthreads().values()))


def dask_task_runner(config: ScoringConfig) -> Any:
    """A ``DaskTaskRunner`` for ``config``: the scheduler at ``dask_address``, else a local
    cluster of ``dask_workers`` processes with one thread each and OMP_NUM_THREADS=1, its
    scheduler and dashboard listening on loopback only.

    The local workers give up after ``WORKER_DEATH_TIMEOUT`` seconds without reaching the
    scheduler (a worker process that never connects would otherwise keep the cluster's start,
    and so the flow run, waiting forever)."""
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": config.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            # Scheduler and dashboard on loopback only (":0" served the dashboard, which shows
            # the tasks and their data, on every interface).
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",
            "env": dict(WORKER_ENV),
            "death_timeout": WORKER_DEATH_TIMEOUT,
        }
    )


def run_batch_scoring(config: ScoringConfig) -> ScoringSummary:
    """Run :func:`batch_scoring` on the runner ``config.runner`` names.

    Dask workers are other processes: without a configured ``PREFECT_API_URL`` each would start
    its own ephemeral Prefect server, so this starts the ephemeral server here first and hands
    its URL to the workers (through the settings context Prefect serializes with each task).
    """
    if config.runner != "dask":
        runner: Any = ThreadPoolTaskRunner(max_workers=config.parallelism)
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
