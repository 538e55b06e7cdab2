"""Tasks of the batch-scoring flow: resolve the model, score one staged chunk file.

Staging the input is no task: the flow streams it (``scoring.stage_chunks``) so that each chunk
is submitted as soon as it is written. Only small values cross the task graph (paths, row
counts, the resolved model's URI and the MLflow store URIs); each worker loads the model itself,
once per process.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_mlops import scoring
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
