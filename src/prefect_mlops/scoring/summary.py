"""What a batch-scoring job produced: :class:`ScoringSummary`, its JSON file and its markdown."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from prefect_mlops.files import write_text_atomic
from prefect_mlops.scoring.config import ScoringConfig
from prefect_mlops.scoring.model import ResolvedModel
from prefect_mlops.scoring.output import ChunkResult

SUMMARY_FILE = "_scoring_summary.json"


class ScoringSummary(BaseModel):
    """What one batch-scoring job produced."""

    job_id: str = Field(description="Prefix of the request ids (the flow run id by default).")
    model_name: str
    model_version: str
    model_uri: str
    requested: str = Field(description="The model as asked for: name@alias or name/version.")
    source: str = Field(description="The input file or SQL query.")
    output_dir: str
    output_files: list[str]
    rows: int
    chunks: int
    chunk_size: int
    max_chunk_rows: int = Field(description="Rows of the largest chunk (≤ chunk_size).")
    runner: str
    workers: int = Field(description="Distinct worker processes that scored chunks.")
    worker_processes: list[str] = Field(description="host:pid of each worker process.")
    wall_seconds: float
    staging_seconds: float = Field(
        description="Time spent reading the input (and, on Dask, writing the chunk files); it "
        "overlaps scoring (chunk i is scored while chunk i + 1 is read)."
    )
    scoring_seconds: float = Field(
        description="From the first chunk's start to the last chunk's end (excludes model "
        "resolution, staging the first chunk and cluster start-up)."
    )
    rows_per_second: float = Field(description="rows / wall_seconds.")


def summarize(
    config: ScoringConfig,
    model: ResolvedModel,
    job_id: str,
    read_seconds: float,
    results: list[ChunkResult],
    wall_seconds: float,
    runner: str,
) -> ScoringSummary:
    """The job's summary (also written to ``<output_dir>/_scoring_summary.json``) from the
    seconds spent reading (and staging) the input and the chunks scored."""
    results = sorted(results, key=lambda r: r.index)
    rows = sum(r.rows for r in results)
    summary = ScoringSummary(
        job_id=job_id,
        model_name=model.model_name,
        model_version=model.version,
        model_uri=model.model_uri,
        requested=model.requested,
        source=config.data.describe(),
        output_dir=str(Path(config.output_dir).resolve()),
        output_files=[r.path for r in results],
        rows=rows,
        chunks=len(results),
        chunk_size=config.chunk_size,
        max_chunk_rows=max((r.rows for r in results), default=0),
        runner=runner,
        workers=len({r.worker for r in results}),
        worker_processes=sorted({r.worker for r in results}),
        wall_seconds=round(wall_seconds, 3),
        staging_seconds=round(read_seconds, 3),
        scoring_seconds=round(
            max((r.finished_at for r in results), default=0.0)
            - min((r.started_at for r in results), default=0.0),
            3,
        ),
        rows_per_second=round(rows / wall_seconds, 1) if wall_seconds > 0 else 0.0,
    )
    final = Path(config.output_dir) / SUMMARY_FILE
    write_text_atomic(json.dumps(summary.model_dump(mode="json"), indent=2), final)
    return summary


def summary_markdown(summary: ScoringSummary) -> str:
    """The job's summary for the Prefect UI."""
    files = summary.output_files
    shown = "\n".join(f"- `{f}`" for f in files[:10])
    more = f"\n- … and {len(files) - 10} more" if len(files) > 10 else ""
    return f"""# Batch scoring: {summary.model_name} v{summary.model_version}

| | |
|---|---|
| Model | `{summary.model_uri}` (asked for `{summary.requested}`) |
| Input | `{summary.source}` |
| Rows scored | {summary.rows:,} |
| Chunks | {summary.chunks} (size {summary.chunk_size:,}, largest {summary.max_chunk_rows:,}) |
| Runner | {summary.runner} ({summary.workers} worker process(es)) |
| Wall time | {summary.wall_seconds:.2f} s (scoring {summary.scoring_seconds:.2f} s; staging \
{summary.staging_seconds:.2f} s, overlapping scoring) |
| Throughput | {summary.rows_per_second:,.0f} rows/s |
| Request ids | `{summary.job_id}-<chunk>-<row>` |
| Output | `{summary.output_dir}` |

Output files:
{shown}{more}
"""
