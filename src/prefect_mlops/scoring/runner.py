"""Scoring chunks: one table, one staged chunk file (a Dask worker), or the whole input here.

* :func:`score_in_process` — the default runner's scoring: each chunk cut in row slices
  predicted by ``parallelism`` threads, two chunks in flight (reading and writing overlap
  predicting), a part file written per chunk, nothing staged on disk.
* :func:`score_chunk_file` — one staged chunk scored on a Dask worker, the model loaded once
  per process.
* :func:`score_table` / :func:`score_chunk` — one Arrow table / pandas frame in, its scored
  output out.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import ScoringError
from prefect_mlops.scoring.chunks import iter_scoring_tables, needed_columns
from prefect_mlops.scoring.model import ResolvedModel, load_model_cached
from prefect_mlops.scoring.output import ChunkResult, scored_table, write_part
from prefect_mlops.scoring.predict import (
    concat_predictions,
    limit_openmp_threads,
    predict_columns,
    predict_table,
    row_slices,
)
from prefect_mlops.scoring.staging import ChunkFile, read_staged_chunk

if TYPE_CHECKING:
    import pyarrow as pa

    from prefect_mlops.scoring.config import ScoringConfig


def score_table(
    estimator: Any,
    table: pa.Table,
    model: ResolvedModel,
    chunk_index: int,
    job_id: str,
    *,
    id_column: str | None = None,
    include_probabilities: bool = False,
    predict_threads: int | None = 1,
) -> pa.Table:
    """One chunk (an Arrow table with the model's features and the id column) scored: the
    output table of :func:`scored_table`; the id column goes from input to output in Arrow."""
    predictions = predict_table(
        estimator,
        table,
        model,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )
    return _scored_chunk(predictions, table, model, chunk_index, job_id, id_column)


def _scored_chunk(
    predictions: dict[str, np.ndarray],
    table: pa.Table,
    model: ResolvedModel,
    chunk_index: int,
    job_id: str,
    id_column: str | None,
) -> pa.Table:
    return scored_table(
        predictions,
        model_name=model.model_name,
        version=model.version,
        chunk_index=chunk_index,
        job_id=job_id,
        ids=(id_column, table.column(id_column)) if id_column else None,
    )


def score_chunk(
    model: Any,
    chunk_df: pd.DataFrame,
    feature_columns: list[str],
    model_name: str,
    version: str,
    chunk_index: int,
    *,
    job_id: str,
    id_column: str | None = None,
    include_probabilities: bool = False,
    feature_types: dict[str, str] | None = None,
    predict_threads: int | None = None,
) -> pd.DataFrame:
    """Score one chunk: the id column (if any), ``request_id``, ``prediction``, ``proba_<class>``
    (if asked and the model has ``predict_proba``), ``model_name``, ``model_version``.

    Raises ScoringError naming the feature columns the chunk lacks.
    """
    import pyarrow as pa

    missing = [c for c in feature_columns if c not in chunk_df.columns]
    if missing:
        raise ScoringError(f"chunk {chunk_index} lacks the feature column(s) {missing}")
    predictions = predict_columns(
        model,
        chunk_df[feature_columns],
        include_probabilities=include_probabilities,
        feature_types=feature_types,
        predict_threads=predict_threads,
    )
    ids = (id_column, pa.array(chunk_df[id_column].to_numpy())) if id_column else None
    table = scored_table(
        predictions,
        model_name=model_name,
        version=version,
        chunk_index=chunk_index,
        job_id=job_id,
        ids=ids,
    )
    return table.to_pandas()


def score_chunk_file(
    chunk: ChunkFile,
    model: ResolvedModel,
    output_dir: str,
    job_id: str,
    *,
    id_column: str | None = None,
    include_probabilities: bool = False,
    predict_threads: int | None = 1,
) -> ChunkResult:
    """Score a staged chunk file into ``part-<chunk>.parquet`` (atomic); the model is loaded
    once per process from ``model.artifact_uri`` (the registered version's artifacts; the
    tracking URI in ``model`` resolves ``mlflow-artifacts:`` locations)."""
    started = time.time()
    estimator = load_model_cached(
        model.artifact_uri, model.tracking_uri, model.registry_uri, model.artifact_digest
    )
    scored = score_table(
        estimator,
        read_staged_chunk(chunk, needed_columns(model.features, id_column)),
        model,
        chunk.index,
        job_id,
        id_column=id_column,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )
    return write_part(scored, output_dir, chunk.index, started)


@dataclass
class _ChunkInFlight:
    index: int
    started: float
    table: pa.Table  # for the id column
    predictions: list[Future[dict[str, np.ndarray]]]


def score_in_process(
    config: ScoringConfig,
    model: ResolvedModel,
    job_id: str,
    *,
    on_chunk: Callable[[ChunkResult], None] | None = None,
    slices_per_thread: int = 1,
) -> tuple[list[ChunkResult], float]:
    """Score the whole input in this process, nothing staged on disk.

    Each chunk of :func:`iter_scoring_tables` is cut in row slices (:func:`row_slices`,
    ``slices_per_thread`` per thread) that a pool of ``config.parallelism`` threads predicts
    (``predict_threads`` OpenMP threads each). Two chunks are in flight: while the pool
    predicts, this thread reads the next chunk and writes the previous one's part file, then
    passes its result to ``on_chunk`` (progress reports); so the pool waits neither for I/O
    nor for the last slice of a chunk.

    Memory: the two chunks in flight and the one being read, whatever the input's size.
    Returns the chunks scored, in order, and the seconds spent reading the input. Raises like
    :func:`iter_scoring_tables` before anything is written for a bad input; a failed slice
    raises once the slices in flight are done.
    """
    threads = config.parallelism
    cols = needed_columns(model.features, config.id_column)
    results: list[ChunkResult] = []
    read_seconds = 0.0
    in_flight: collections.deque[_ChunkInFlight] = collections.deque()

    def finish_oldest() -> None:
        chunk = in_flight.popleft()
        predictions = concat_predictions([f.result() for f in chunk.predictions])
        scored = _scored_chunk(
            predictions, chunk.table, model, chunk.index, job_id, config.id_column
        )
        result = write_part(scored, config.output_dir, chunk.index, chunk.started)
        results.append(result)
        if on_chunk is not None:
            on_chunk(result)

    with ThreadPoolExecutor(
        threads,
        thread_name_prefix="scoring",
        initializer=limit_openmp_threads,
        initargs=(config.predict_threads,),
    ) as pool:
        # The model loads on a pool thread while this one reads the first chunk.
        loading = pool.submit(
            load_model_cached,
            model.artifact_uri,
            model.tracking_uri,
            model.registry_uri,
            model.artifact_digest,
        )
        try:
            for chunk in iter_scoring_tables(config, model.features):
                read_seconds += chunk.seconds
                table = chunk.table.select(cols)
                futures = [
                    pool.submit(
                        _predict_loaded,
                        loading,
                        part,
                        model,
                        include_probabilities=config.include_probabilities,
                        predict_threads=None,  # set once per pool thread
                    )
                    for part in row_slices(table, threads * slices_per_thread)
                ]
                in_flight.append(_ChunkInFlight(chunk.index, time.time(), table, futures))
                del chunk, table  # only the chunks in flight stay in memory
                if len(in_flight) == 2:
                    finish_oldest()
            while in_flight:
                finish_oldest()
            loading.result()  # a model that fails to load fails the job, rows or not
        finally:
            wait([loading, *(f for chunk in in_flight for f in chunk.predictions)])
    return results, read_seconds


def _predict_loaded(
    loading: Future[Any], table: pa.Table, model: ResolvedModel, **kwargs: Any
) -> dict[str, np.ndarray]:
    """:func:`predict_table` with the estimator ``loading`` gives (waits for it)."""
    return predict_table(loading.result(), table, model, **kwargs)
