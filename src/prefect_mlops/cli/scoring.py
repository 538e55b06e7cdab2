"""``score``: the batch-scoring flow from the command line.

Every option is a field of :class:`~prefect_mlops.scoring.config.ScoringConfig` (``FIELDS``):
its default is the field's and its help starts with the field's description
(tests/unit/cli/test_options.py checks both, so the two cannot drift apart). The model is not
imported here: it pulls in pandas and pyarrow, and ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefect_mlops.cli.environment import prepare_flow_process

#: Option (parameter name) → the ScoringConfig field it sets (dotted into ``data``).
FIELDS = {
    "model": "model_name",
    "output": "output_dir",
    "data": "data.path",
    "sql_url": "data.sql_url",
    "sql_url_env": "data.sql_url_env",
    "query": "data.query",
    "version": "version",
    "alias": "alias",
    "chunk_size": "chunk_size",
    "id_column": "id_column",
    "probabilities": "include_probabilities",
    "parallelism": "parallelism",
    "dask": "runner",
    "dask_address": "dask_address",
    "dask_workers": "dask_workers",
    "overwrite": "overwrite",
}
#: Options whose value is turned into the field's (a flag for a choice): own default and help.
DERIVED = {"dask"}


def score(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name in MLflow.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder for part-<chunk>.parquet files and the summary JSON.",
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="CSV or Parquet file (local path or URI)."),
    ] = None,
    sql_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of a database to read with `query`, without password (see "
            "`password_env`, `password_secret`, `sql_url_env`). Instead of --data; a URL with "
            "a password is refused (a command line is visible to every user of the machine)."
        ),
    ] = None,
    sql_url_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable holding the whole SQLAlchemy URL (password "
            "included), read when the data is read; instead of `sql_url`."
        ),
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="SQL query, used with `sql_url` or `sql_url_env`.")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Pin a model version (e.g. '3'); wins over `alias`.")
    ] = None,
    alias: Annotated[
        str,
        typer.Option(help="Alias of the version to score with; ignored when `version` is set."),
    ] = "champion",
    chunk_size: Annotated[
        int,
        typer.Option(
            help="Rows per chunk; memory grows with this (two chunks in flight), not the "
            "input. Each chunk is one part file (and one task run on Dask)."
        ),
    ] = 200_000,
    id_column: Annotated[
        str | None,
        typer.Option(help="Column copied into the output next to each prediction."),
    ] = None,
    probabilities: Annotated[
        bool,
        typer.Option("--probabilities", help="Add proba_<class> columns (classifiers only)."),
    ] = False,
    parallelism: Annotated[
        int,
        typer.Option(
            help="Threads predicting at once on the default runner: each chunk is cut in this "
            "many row slices, predicted in parallel."
        ),
    ] = 2,
    dask: Annotated[
        bool,
        typer.Option(
            "--dask",
            help="Run on a Dask cluster through prefect-dask (local unless --dask-address).",
        ),
    ] = False,
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="Address of a running Dask scheduler (tcp://host:8786); default: start a "
            "local cluster. Its workers must reach the MLflow stores and the input/output "
            "folders. Implies --dask."
        ),
    ] = None,
    dask_workers: Annotated[
        int, typer.Option(help="Worker processes of the local Dask cluster (1 thread each).")
    ] = 2,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace part files already in output_dir (else an error names them).",
        ),
    ] = False,
) -> None:
    """Score a file (or a SQL query) with the champion or a pinned version, in chunks.

    Writes `part-<chunk>.parquet` files (id column, request_id, prediction, model_name,
    model_version) and `_scoring_summary.json` into --output; runs the `batch-scoring` flow on
    Prefect's default runner, or on Dask with --dask. Exit code 1 names the bad input (unknown
    model or version, missing file or feature column, output already written).

    Example: `prefect-mlops score --model churn-demo --data new.csv --output scored/`
    """
    prepare_flow_process(loads_models=True)
    from prefect_mlops.cli.options import validated
    from prefect_mlops.flows.scoring import run_batch_scoring
    from prefect_mlops.scoring.config import ScoringConfig

    config = validated(
        ScoringConfig,
        {
            "model_name": model,
            "alias": alias,
            "version": version,
            "data": {"path": data, "sql_url": sql_url, "sql_url_env": sql_url_env, "query": query},
            "output_dir": str(output),
            "chunk_size": chunk_size,
            "runner": "dask" if dask or dask_address else "default",
            "parallelism": parallelism,
            "dask_address": dask_address,
            "dask_workers": dask_workers,
            "id_column": id_column,
            "include_probabilities": probabilities,
            "overwrite": overwrite,
        },
        "score options",
    )
    summary = run_batch_scoring(config)
    typer.secho(
        f"{summary.model_name} v{summary.model_version}: scored {summary.rows:,} rows in "
        f"{summary.chunks} chunk(s), {summary.wall_seconds:.1f} s "
        f"({summary.rows_per_second:,.0f} rows/s, runner {summary.runner})",
        fg=typer.colors.GREEN,
        bold=True,
    )
    typer.echo(f"  output: {summary.output_dir}")
