"""``monitor``: the continuous-monitoring flow from the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from prefect_mlops.cli import exit_codes
from prefect_mlops.cli.environment import prepare_flow_process


def monitor(
    model: Annotated[str, typer.Argument(help="Registered model name in MLflow.")],
    version: Annotated[
        str | None, typer.Option(help="Version to monitor (e.g. '3'); default: the champion.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Window start, UTC (2026-12-01 or 2026-12-01T06:00:00); default: the end of "
            "the model's last monitoring window, at most `monitoring.max_window_days` back."
        ),
    ] = None,
    end: Annotated[datetime | None, typer.Option(help="Window end, UTC; default: now.")] = None,
    last: Annotated[
        int | None, typer.Option("--last", min=1, help="Only the newest N rows of the window.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A training config YAML whose `monitoring:` section to use; default: the "
            "section the version was trained with.",
        ),
    ] = None,
) -> None:
    """Judge a model version's served traffic (the serving log) against what it was trained on.

    Checks schema skew (the version's GX suite), feature and prediction drift (the tests of
    Evidently's DataDriftPreset), live quality on late labels, estimated quality before them,
    and latency and errors; records a run in the MLflow experiment `<model>-monitoring` with
    every score and Evidently's HTML report. Exit code 5 when it found something to act on.

    Example: `prefect-mlops monitor churn-demo --last 10000`
    """
    prepare_flow_process(loads_models=True)
    from prefect_mlops.config import TrainingConfig
    from prefect_mlops.flows.monitoring import continuous_monitoring
    from prefect_mlops.monitoring.checks import alarming

    section = TrainingConfig.from_yaml(config).monitoring if config else None
    _check_target(model, version)
    result = continuous_monitoring(
        model_name=model, version=version, start=start, end=end, last_n=last, monitoring=section
    )
    bad = alarming(result)
    typer.secho(result.message, fg=typer.colors.YELLOW if bad else typer.colors.GREEN, bold=True)
    if result.mlflow_run_url:
        typer.echo(f"  MLflow run: {result.mlflow_run_url}")
    for skipped in result.skipped_files:
        typer.secho(f"  skipped serving-log file: {skipped}", fg=typer.colors.YELLOW)
    if bad:
        raise typer.Exit(exit_codes.ALARM)


def _check_target(model: str, version: str | None) -> None:
    """Refuse an unknown model or version (or a model without champion) in one line, before
    a flow run starts (whose failure would print Prefect's traceback first)."""
    from prefect_mlops.monitoring.runner import resolve_target
    from prefect_mlops.registry import configure_mlflow, mlflow_client
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    configure_mlflow(settings)
    resolve_target(mlflow_client(settings), model, version)
