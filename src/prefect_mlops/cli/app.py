"""The ``prefect-mlops`` command line: the Typer app, its one error boundary, its commands.

Each command group lives in its own module (training: demo, train, init; models: models,
promote, rollback; scoring: score; deployment: deploy; serving: serve; server: the local
Prefect server). A command raises the library's errors; :class:`ErrorBoundary` turns any
:class:`~prefect_mlops.errors.MLOpsError` into ``error: <message>`` on stderr and exit 1, in
this one place, masked (a URL's password or secret never reaches the terminal). Heavy
libraries are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from prefect_mlops.cli import (
    alerts,
    demo,
    deployment,
    exit_codes,
    models,
    monitoring,
    scoring,
    serving,
    training,
)
from prefect_mlops.cli.server import server_app
from prefect_mlops.errors import MLOpsError
from prefect_mlops.secrets import mask_text


class ErrorBoundary(TyperGroup):
    """The app's command group: a library error ends the command with its message, exit 1."""

    # Typer builds its contexts as typer.Context (a subclass of its vendored click's Context).
    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MLOpsError as exc:
            typer.secho(f"error: {mask_text(str(exc))}", fg=typer.colors.RED, err=True)
            raise typer.Exit(exit_codes.ERROR) from None


app = typer.Typer(
    name="prefect-mlops",
    cls=ErrorBoundary,
    help="MLOps on Prefect: continuous training with GX validation, scikit-learn, MLflow "
    "registry and lineage.\n\nState lives under $MLOPS_HOME (default ./.mlops): the MLflow "
    "SQLite store, artifacts and content-addressed data snapshots. Flows run on the Prefect "
    "API in PREFECT_API_URL (or the active profile), else on the local server of `make "
    "server` while it runs, else on a temporary one.\n\n" + exit_codes.SUMMARY,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

for command in (
    demo.demo,
    training.train,
    models.models,
    models.promote,
    models.rollback,
    training.init,
    scoring.score,
    deployment.deploy,
    serving.serve,
    monitoring.monitor,
    alerts.alerts,
):
    app.command()(command)
app.add_typer(server_app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
