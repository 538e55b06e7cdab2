"""The ``prefect-mlops`` command line.

Exit codes: 0 success (for ``train``: blessed), 1 error (bad data, bad config, registry failure),
2 usage error, 3 trained but not blessed. Heavy libraries are imported inside the commands, so
``--help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from prefect_mlops.errors import MLOpsError
from prefect_mlops.processes import TELEMETRY_OFF

EXIT_ERROR = 1
EXIT_NOT_BLESSED = 3

app = typer.Typer(
    name="prefect-mlops",
    help="MLOps on Prefect: continuous training with GX validation, scikit-learn, MLflow "
    "registry and lineage.\n\nState lives under $MLOPS_HOME (default ./.mlops): the MLflow "
    "SQLite store, artifacts and content-addressed data snapshots.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

QUIET_ENVIRONMENT = {
    **TELEMETRY_OFF,
    # Prefect's ephemeral API takes ~15 s to start; give a busy machine room.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def _quiet_environment() -> None:
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def _import_model_format_first() -> None:
    """Import skops (MLflow's format for scikit-learn models) before Prefect and MLflow.

    Its import looks up the module of each of ~800 numpy and scikit-learn objects by scanning
    every module loaded so far (``skops.io._utils.whichmodule``): with Prefect, MLflow and their
    dependencies loaded first that scan took ~9 s of a 30,000-row ``score`` run (flow wall
    11.3 s → 2.2 s, whole command 21.4 s → 15.4 s on this project's 2-core machine). Commands
    that save or load a model in their own process (demo, train, score) call this first;
    ``deploy`` does not: its service subprocess loads the models.
    """
    import skops.io  # noqa: F401


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _run_training(config) -> int:
    """Run the flow and print its outcome; returns the exit code."""
    from prefect_mlops.flows.training import continuous_training

    outcome = continuous_training(config)
    color = typer.colors.GREEN if outcome.status == "blessed" else typer.colors.YELLOW
    typer.secho(
        f"{outcome.model_name} version {outcome.version}: {outcome.status.replace('_', ' ')}",
        fg=color,
        bold=True,
    )
    typer.echo(f"  reason:   {outcome.reason}")
    typer.echo(f"  aliases:  {', '.join(outcome.aliases) or 'none'}")
    typer.echo(f"  champion before this run: {outcome.champion_before or 'none'}")
    typer.echo(f"  metrics:  {', '.join(f'{k}={v:.4f}' for k, v in outcome.metrics.items())}")
    typer.echo(f"  MLflow run {outcome.run_id} (experiment {outcome.experiment_id})")
    typer.echo(f"  data snapshot {outcome.snapshot_path}")
    return 0 if outcome.status == "blessed" else EXIT_NOT_BLESSED


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows of generated churn data.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 0,
) -> None:
    """Run continuous training on a generated churn table with embedded defaults.

    Writes the data and its config to $MLOPS_HOME/demo, trains, registers the model in the
    local MLflow registry and prints where to look. Run it twice: the second run is compared
    with the first champion.
    """
    _quiet_environment()
    _import_model_format_first()
    from prefect_mlops.cli.demo import prepare_demo
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    try:
        config, config_path = prepare_demo(settings.home_path, n_rows=rows, seed=seed)
        typer.echo(f"demo data and config: {config_path.parent}")
        code = _run_training(config)
    except MLOpsError as exc:
        _fail(str(exc))
    uri = settings.resolved_tracking_uri
    typer.echo("")
    typer.secho("Where to look:", bold=True)
    typer.echo(f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000")
    typer.echo("               then open http://127.0.0.1:5000 (experiment and model 'churn-demo')")
    typer.echo("  Prefect UI:  .venv/bin/prefect server start   then open http://127.0.0.1:4200")
    typer.echo(f"  Registry:    .venv/bin/prefect-mlops models {config.model_name}")
    typer.echo(f"  Train again: .venv/bin/prefect-mlops train --config {config_path}")
    raise typer.Exit(0 if code in (0, EXIT_NOT_BLESSED) else code)


@app.command()
def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training config YAML (see `init`).")
    ],
) -> None:
    """Run the continuous-training flow on a config file.

    Exit code 0: the model was blessed (and promoted if `promote: true`); 3: trained and
    registered but not blessed (champion unchanged); 1: failed (bad data, bad config, registry
    error: nothing registered, champion unchanged).

    Example: `prefect-mlops train --config .mlops/demo/train.yaml`
    """
    _quiet_environment()
    _import_model_format_first()
    from prefect_mlops.config import TrainingConfig

    try:
        training_config = TrainingConfig.from_yaml(config)
        code = _run_training(training_config)
    except MLOpsError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Registered model name; omit to list.")] = None,
) -> None:
    """List registered models, or the versions of one with aliases, blessing and metrics."""
    _quiet_environment()
    from rich.console import Console
    from rich.table import Table

    from prefect_mlops import registry
    from prefect_mlops.settings import get_settings

    client = registry.mlflow_client(get_settings())
    console = Console()
    try:
        if name is None:
            table = Table("model", "versions", "aliases", title="Registered models")
            for model in client.search_registered_models():
                aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model.aliases.items()))
                count = len(client.search_model_versions(f"name = '{model.name}'"))
                table.add_row(model.name, str(count), aliases or "-")
            console.print(table)
            return
        versions = registry.list_versions(client, name)
    except MLOpsError as exc:
        _fail(str(exc))
    table = Table("version", "aliases", "blessed", "metrics", "reason", "created", title=name)
    for v in versions:
        metrics = " ".join(f"{k}={val}" for k, val in sorted(v.metrics.items()))
        table.add_row(
            v.version, ", ".join(v.aliases) or "-", v.blessed, metrics, v.reason, v.created
        )
    console.print(table)


def _move_champion(action: str, name: str, *args: str, reason: str) -> Any:
    """Run the registry's alias move ``action`` (``promote_version``, ``rollback_champion``)
    with the configured client; a registry error exits 1 naming the problem."""
    _quiet_environment()
    from prefect_mlops import registry
    from prefect_mlops.settings import get_settings

    try:
        client = registry.mlflow_client(get_settings())
        return getattr(registry, action)(client, name, *args, reason=reason)
    except MLOpsError as exc:
        _fail(str(exc))


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the alias move).")] = "manual",
) -> None:
    """Make a version the champion by hand; the previous champion is remembered."""
    move = _move_champion("promote_version", name, version, reason=reason)
    typer.echo(f"{name}: champion v{move.from_version or '-'} → v{move.to_version}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the alias move).")] = "manual",
) -> None:
    """Point the champion back at the previous champion."""
    move = _move_champion("rollback_champion", name, reason=reason)
    typer.echo(f"{name}: champion v{move.from_version} → v{move.to_version} (rolled back)")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to write train.yaml and prefect.yaml.")],
    data: Annotated[Path, typer.Option("--data", help="Your CSV or Parquet table.")],
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name; default: the folder name.")
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="Entity id column (not a feature).")] = None,
    timestamp_column: Annotated[
        str | None, typer.Option(help="Timestamp column (time filter / time split).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a project for your own table: a training config and a Prefect deployment file.

    Example: `prefect-mlops init my-model --data data/loans.csv --target defaulted`, then
    `prefect-mlops train --config my-model/train.yaml`.
    """
    _quiet_environment()
    from prefect_mlops.cli.scaffold import write_project

    try:
        written = write_project(
            directory,
            data=data,
            target=target,
            model_name=model_name,
            id_column=id_column,
            timestamp_column=timestamp_column,
            force=force,
        )
    except MLOpsError as exc:
        _fail(str(exc))
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: prefect-mlops train --config {written[0]}")


@app.command()
def score(
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the part-NNNNN.parquet files.")
    ],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="CSV or Parquet file to score.")
    ] = None,
    sql_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL to read `--query` from (instead of --data).")
    ] = None,
    query: Annotated[str | None, typer.Option(help="SQL query, with --sql-url.")] = None,
    version: Annotated[
        str | None, typer.Option(help="Pin a model version; default: the alias.")
    ] = None,
    alias: Annotated[str, typer.Option(help="Alias used when no --version.")] = "champion",
    chunk_size: Annotated[
        int, typer.Option(help="Rows per chunk; memory grows with this, not the file.")
    ] = 200_000,
    id_column: Annotated[
        str | None, typer.Option(help="Column copied next to each prediction.")
    ] = None,
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Add a proba_CLASS column per class.")
    ] = False,
    parallelism: Annotated[
        int, typer.Option(help="Default runner: threads predicting each chunk (in row slices).")
    ] = 2,
    dask: Annotated[
        bool, typer.Option("--dask", help="Run on a Dask cluster (local unless --dask-address).")
    ] = False,
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="Scheduler of a running Dask cluster, e.g. tcp://host:8786 (implies --dask)."
        ),
    ] = None,
    dask_workers: Annotated[
        int, typer.Option(help="Worker processes of the local Dask cluster.")
    ] = 2,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace part files already in --output.")
    ] = False,
) -> None:
    """Score a file (or a SQL query) with the champion or a pinned version, in chunks.

    Writes `part-<chunk>.parquet` files (id column, request_id, prediction, model_name,
    model_version) and `_scoring_summary.json` into --output; runs the `batch-scoring` flow on
    Prefect's default runner, or on Dask with --dask. Exit code 1 names the bad input (unknown
    model or version, missing file or feature column, output already written).

    Example: `prefect-mlops score --model churn-demo --data new.csv --output scored/`
    """
    _quiet_environment()
    _import_model_format_first()
    from pydantic import ValidationError

    from prefect_mlops.config import format_validation_error
    from prefect_mlops.flows.scoring import run_batch_scoring
    from prefect_mlops.scoring.batch import ScoringConfig

    raw = {
        "model_name": model,
        "alias": alias,
        "version": version,
        "data": {"path": data, "sql_url": sql_url, "query": query},
        "output_dir": str(output),
        "chunk_size": chunk_size,
        "runner": "dask" if dask or dask_address else "default",
        "parallelism": parallelism,
        "dask_address": dask_address,
        "dask_workers": dask_workers,
        "id_column": id_column,
        "include_probabilities": probabilities,
        "overwrite": overwrite,
    }
    try:
        config = ScoringConfig.model_validate(raw)
    except ValidationError as exc:
        _fail(format_validation_error(exc, "score options"))
    try:
        summary = run_batch_scoring(config)
    except MLOpsError as exc:
        _fail(str(exc))
    typer.secho(
        f"{summary.model_name} v{summary.model_version}: scored {summary.rows:,} rows in "
        f"{summary.chunks} chunk(s), {summary.wall_seconds:.1f} s "
        f"({summary.rows_per_second:,.0f} rows/s, runner {summary.runner})",
        fg=typer.colors.GREEN,
        bold=True,
    )
    typer.echo(f"  output: {summary.output_dir}")


@app.command()
def deploy(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        str | None, typer.Option(help="Candidate version; default: the 'challenger' alias.")
    ] = None,
    strategy: Annotated[str, typer.Option(help="blue-green, canary or shadow.")] = "blue-green",
    latency_slo_ms: Annotated[
        float, typer.Option(help="Infra-validation: p99 latency must be below (ms).")
    ] = 500.0,
    canary_share: Annotated[
        float, typer.Option(help="Canary: share of live requests for the challenger.")
    ] = 0.1,
    min_requests: Annotated[
        int, typer.Option(help="Canary/shadow: challenger requests to observe.")
    ] = 100,
    max_minutes: Annotated[
        float, typer.Option(help="Canary/shadow: longest observation (minutes).")
    ] = 30.0,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Canary: CSV/Parquet of late ground truth (request_id, row_index, label), "
            "re-read while watching; the canary then also judges live quality."
        ),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Canary: label column; default: the training target.")
    ] = None,
    quality_metric: Annotated[
        str | None,
        typer.Option(help="Canary: accuracy/f1 or rmse/mae/r2; default accuracy / rmse."),
    ] = None,
    max_quality_drop: Annotated[
        float, typer.Option(help="Canary: allowed drop of the live metric vs the champion.")
    ] = 0.02,
    min_labelled_rows: Annotated[
        int, typer.Option(help="Canary: labelled challenger rows needed to judge quality.")
    ] = 50,
    service_url: Annotated[
        list[str] | None,
        typer.Option(
            help="Canary/shadow: base URL of a live service (repeatable), e.g. "
            "http://127.0.0.1:3000; its /metadata is read at every poll, so a challenger it "
            "cannot load ends the rollout at once."
        ),
    ] = None,
) -> None:
    """Run the model-deployment flow: infra-validate the candidate in a real BentoML server
    on a loopback port, then roll it out.

    blue-green moves `champion` after validation; canary and shadow need the live service
    (`prefect-mlops serve`) to receive traffic, read its serving log, then promote or roll back.
    Exit 0 when promoted (or shadowed), 3 when rolled back, 1 when validation failed.

    Example: `prefect-mlops deploy churn-demo --strategy canary --canary-share 0.2
    --labels labels.csv`
    """
    _quiet_environment()
    from pydantic import ValidationError

    from prefect_mlops.config import format_validation_error
    from prefect_mlops.deployment.rollout import DeploymentConfig

    try:
        config = DeploymentConfig(
            model_name=name,
            version=version,
            strategy=strategy,  # type: ignore[arg-type]
            latency_slo_ms=latency_slo_ms,
            canary_share=canary_share,
            min_requests=min_requests,
            max_minutes=max_minutes,
            labels={"path": labels} if labels else None,  # type: ignore[arg-type]
            label_column=label_column,
            quality_metric=quality_metric,
            max_quality_drop=max_quality_drop,
            min_labelled_rows=min_labelled_rows,
            service_urls=service_url or [],
        )
    except ValidationError as exc:
        _fail(format_validation_error(exc, "deploy options"))
    from prefect_mlops.flows.deployment import model_deployment

    try:
        outcome = model_deployment(config)
    except MLOpsError as exc:
        _fail(str(exc))
    typer.echo(f"{name} v{outcome.version}: {outcome.result.replace('_', ' ')}")
    typer.echo(f"  reason: {outcome.reason}")
    typer.echo(f"  {outcome.infra_validation}")
    raise typer.Exit(EXIT_NOT_BLESSED if outcome.result == "rolled_back" else 0)


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="Registered model name to serve.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    alias: Annotated[str, typer.Option(help="Alias to serve.")] = "champion",
    version: Annotated[
        str | None, typer.Option(help="Serve this version instead of the alias.")
    ] = None,
) -> None:
    """Serve a registered model over HTTP with BentoML (`POST /predict`, `/healthz`,
    `/readyz`, `/metadata`), logging requests to the serving log.

    Set `MLOPS_SERVE_TOKEN` to require a bearer token. Stops on Ctrl-C.
    """
    _quiet_environment()
    import sys

    from prefect_mlops.serving.process import SERVICE_TARGET, neutral_working_dir
    from prefect_mlops.settings import get_settings

    # The server runs from a neutral folder: pass every location absolute (./.mlops is here).
    env = {**os.environ, **get_settings().location_env()}
    env |= {"MLOPS_SERVE_MODEL_NAME": name, "MLOPS_SERVE_ALIAS": alias}
    if version:
        env["MLOPS_SERVE_VERSION"] = version
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE_TARGET]
    command += ["--host", host, "--port", str(port)]
    # Become the server (exec, no parent left behind): SIGTERM from a supervisor, `docker stop`
    # or a test reaches BentoML itself, which stops its workers and flushes the serving log.
    os.chdir(neutral_working_dir())
    os.execve(sys.executable, command, env)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
