"""``serve``: the online prediction service (BentoML) for a registered model."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from prefect_mlops.cli.environment import quiet_environment


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
    quiet_environment()
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
