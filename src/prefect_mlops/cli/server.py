"""``server start | stop | url``: the checkout's local Prefect server (what `make server` runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from prefect_mlops.cli.environment import quiet_environment
from prefect_mlops.errors import PrefectAPIError

server_app = typer.Typer(
    name="server",
    help="The local Prefect server of this MLOPS_HOME (state in $MLOPS_HOME/prefect): the "
    "CLI's flows use it while it runs, instead of starting a temporary one each time.",
    no_args_is_help=True,
)


@server_app.command()
def start(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on.")] = 4200,
) -> None:
    """Start the local Prefect server in the background (reused when it already runs) and
    print its API URL once it answers; the UI is at the same port."""
    quiet_environment()
    from prefect_mlops.cli.prefect_api import server_dir, start_local_server
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    url, started = start_local_server(settings, port=port)
    typer.echo(f"Prefect server {'started' if started else 'already running'}: {url}")
    typer.echo(f"  UI: {url.removesuffix('/api')}   log: {server_dir(settings) / 'server.log'}")
    typer.echo("  stop it: make server-stop")


@server_app.command()
def stop() -> None:
    """Stop the local Prefect server."""
    from prefect_mlops.cli.prefect_api import stop_local_server
    from prefect_mlops.settings import get_settings

    stopped = stop_local_server(get_settings())
    typer.echo("Prefect server stopped" if stopped else "no local Prefect server was running")


@server_app.command()
def url() -> None:
    """Print the API URL the CLI's flows would use (configured, else the local server); exit 1
    with one line when there is none (a worker or `prefect deploy` needs one)."""
    from prefect_mlops.cli.prefect_api import choose_prefect_api
    from prefect_mlops.settings import get_settings

    api_url = choose_prefect_api(get_settings())
    if not api_url:
        raise PrefectAPIError(
            "no Prefect server: start one with `make server` (or set PREFECT_API_URL)"
        )
    typer.echo(api_url)
