"""``demo``, ``train`` and ``init``: continuous training from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefect_mlops.cli import exit_codes
from prefect_mlops.cli.environment import prepare_flow_process, quiet_environment

if TYPE_CHECKING:
    from prefect_mlops.config import TrainingConfig

#: TrainingOutcome.status → (exit code, colour of the headline).
STATUS_EXIT = {
    "blessed": (exit_codes.OK, typer.colors.GREEN),
    "not_blessed": (exit_codes.NOT_BLESSED, typer.colors.YELLOW),
    "unchanged": (exit_codes.UNCHANGED, typer.colors.CYAN),
}


def run_training(config: TrainingConfig) -> int:
    """Run the continuous-training flow and print its outcome; returns the exit code."""
    from prefect_mlops.flows.training import continuous_training

    outcome = continuous_training(config)
    status = str(outcome.status)
    code, color = STATUS_EXIT.get(status, (exit_codes.ERROR, typer.colors.RED))
    version = getattr(outcome, "version", None)
    headline = f"version {version}" if version else "no new version"
    typer.secho(f"{outcome.model_name} {headline}: {status.replace('_', ' ')}", fg=color, bold=True)
    typer.echo(f"  reason:   {outcome.reason}")
    if status == "unchanged":
        typer.echo("  unchanged: same data and config as the last registered version")
        return code
    typer.echo(f"  aliases:  {', '.join(outcome.aliases) or 'none'}")
    typer.echo(f"  champion before this run: {outcome.champion_before or 'none'}")
    typer.echo(f"  metrics:  {', '.join(f'{k}={v:.4f}' for k, v in outcome.metrics.items())}")
    typer.echo(f"  MLflow run {outcome.run_id} (experiment {outcome.experiment_id})")
    typer.echo(f"  data snapshot {outcome.snapshot_path}")
    return code


def demo(
    rows: Annotated[int, typer.Option(help="Rows of generated churn data.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the data generator.")] = 0,
) -> None:
    """Run continuous training on a generated churn table with embedded defaults.

    Writes the data and its config to $MLOPS_HOME/demo, trains, registers the model in the
    local MLflow registry and prints where to look. Run it twice: the second run is compared
    with the first champion. Exit 0 whether or not the model was blessed, 4 when nothing
    changed since the last run (same data and config: nothing registered), 1 on an error.
    """
    prepare_flow_process(loads_models=True)
    from prefect_mlops.cli.demo_setup import prepare_demo
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    config, config_path = prepare_demo(settings.home_path, n_rows=rows, seed=seed)
    typer.echo(f"demo data and config: {config_path.parent}")
    code = run_training(config)
    from prefect_mlops.secrets import mask_url

    uri = settings.resolved_tracking_uri
    if mask_url(uri) != uri:  # never print a password: the shell reads it from the variable
        uri = '"$MLOPS_TRACKING_URI"'
    typer.echo("")
    typer.secho("Where to look (after `source env.sh` in the checkout):", bold=True)
    typer.echo(f"  MLflow UI:   mlflow ui --backend-store-uri {uri} --port 5000")
    typer.echo("               then open http://127.0.0.1:5000 (experiment and model 'churn-demo')")
    typer.echo("  Prefect UI:  make server   then open http://127.0.0.1:4200")
    typer.echo(f"  Registry:    prefect-mlops models {config.model_name}")
    typer.echo(f"  Train again: prefect-mlops train --config {config_path}")
    raise typer.Exit(exit_codes.OK if code == exit_codes.NOT_BLESSED else code)


def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training config YAML (see `init`).")
    ],
) -> None:
    """Run the continuous-training flow on a config file.

    Exit code 0: the model was blessed (and promoted if `promote: true`); 3: trained and
    registered but not blessed (champion unchanged); 4: unchanged (the data and config are
    those of the last registered version: nothing trained or registered); 1: failed (bad data,
    bad config, registry error: nothing registered, champion unchanged).

    Example: `prefect-mlops train --config .mlops/demo/train.yaml`
    """
    prepare_flow_process(loads_models=True)
    from prefect_mlops.config import TrainingConfig

    raise typer.Exit(run_training(TrainingConfig.from_yaml(config)))


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
    quiet_environment()
    from prefect_mlops.cli.scaffold import write_project

    written = write_project(
        directory,
        data=data,
        target=target,
        model_name=model_name,
        id_column=id_column,
        timestamp_column=timestamp_column,
        force=force,
    )
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: prefect-mlops train --config {written[0]}")
