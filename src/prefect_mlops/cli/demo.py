"""The ``demo`` command: the closed loop of :mod:`prefect_mlops.cli.demo_loop` (``--quick``:
training only)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prefect_mlops.cli import exit_codes

if TYPE_CHECKING:
    from prefect_mlops.cli.demo_loop import LoopResult


def demo(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Only the training demo: train on a generated table, register, print where "
            "to look (no server, no loop).",
        ),
    ] = False,
    keep_running: Annotated[
        bool,
        typer.Option(
            help="Leave the Prefect server, worker, service and an MLflow UI running after the "
            "loop, until Ctrl-C."
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Prefect server port (any free one if taken).")] = 4200,
    rows: Annotated[int, typer.Option(help="--quick: rows of generated churn data.")] = 5000,
    seed: Annotated[int, typer.Option(help="--quick: seed of the data generator.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the loop's result as JSON here.")
    ] = None,
) -> None:
    """Run the closed loop on embedded defaults: drift → retrain → bless → canary → serve.

    Starts a local Prefect server (state in $MLOPS_HOME/loop-demo, wiped at each start), a
    process worker, the loop's deployments and the BentoML service; trains a champion, sends
    clean then drifted traffic, runs monitoring, and waits while the drift event retrains, the
    new version is blessed, canaried under live traffic and promoted, and the service answers
    with it. Prints each step with its seconds and the URLs to open; stops everything at the
    end unless --keep-running. Exit 0 when the new version was promoted and answers, 1 on an
    error.

    --quick runs the training-only demo instead (exit 0 whether or not blessed, 4 unchanged).
    """
    if quick:
        from prefect_mlops.cli.training import demo as quick_demo

        quick_demo(rows=rows, seed=seed)
        return
    from prefect_mlops.cli.demo_loop import run_demo_loop
    from prefect_mlops.cli.environment import quiet_environment
    from prefect_mlops.settings import get_settings

    quiet_environment()

    def report(step: str, seconds: float, detail: str) -> None:
        typer.echo(f"[{seconds:6.1f} s] {step:<20} {detail}")

    def hold(result: LoopResult) -> None:
        _print_urls(result)
        typer.secho("Running until Ctrl-C (MLflow UI starting)...", bold=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("stopping")

    result = run_demo_loop(
        get_settings().home_path, report, prefect_port=port, wait=hold if keep_running else None
    )
    if json_path is not None:
        json_path.write_text(result.to_json())
    headline = (
        f"{result.model_name}: v{result.new_version} {result.rollout_result}; "
        f"the service answers with v{result.answering_version}"
    )
    ok = result.rollout_result == "promoted" and result.answering_version == result.new_version
    typer.secho(headline, fg=typer.colors.GREEN if ok else typer.colors.YELLOW, bold=True)
    t = result.times
    typer.echo(
        "  drift event → retrain run started: "
        f"{_seconds(t.between('drift_event', 'retrain_started'))} "
        f"(run created: {_seconds(t.between('drift_event', 'retrain_created'))})"
    )
    typer.echo(
        "  drift onset → new champion answering: "
        f"{_seconds(t.between('drift_onset', 'new_champion_answering'))}"
    )
    typer.echo(
        f"  total {result.total_seconds:.1f} s (set-up {result.setup_seconds:.1f} s, "
        f"loop {result.total_seconds - result.setup_seconds:.1f} s)"
    )
    if not keep_running:
        _print_urls(result, stopped=True)
    raise typer.Exit(exit_codes.OK if ok else exit_codes.ERROR)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _print_urls(result: LoopResult, *, stopped: bool = False) -> None:
    typer.secho("Where to look" + (" (stopped now; --keep-running keeps them):" if stopped
                                    else ":"), bold=True)  # fmt: skip
    for name, url in result.urls.items():
        typer.echo(f"  {name + ':':<12} {url}")
