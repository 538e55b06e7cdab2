"""``serve``: the online prediction service (BentoML) for a registered model."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Annotated

import typer

from prefect_mlops.cli.environment import quiet_environment


def serve(
    name: Annotated[str, typer.Argument(help="Registered model name to serve.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind. Beyond loopback (e.g. 0.0.0.0) it needs MLOPS_SERVE_TOKEN "
            "or --allow-unauthenticated."
        ),
    ] = "127.0.0.1",
    alias: Annotated[str, typer.Option(help="Alias to serve.")] = "champion",
    version: Annotated[
        str | None, typer.Option(help="Serve this version instead of the alias.")
    ] = None,
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated",
            help="Bind beyond loopback without a token (the network in front must do the "
            "access control).",
        ),
    ] = False,
) -> None:
    """Serve a registered model over HTTP with BentoML (`POST /predict`, `/healthz`,
    `/readyz`, `/metadata`), logging requests to the serving log.

    Set `MLOPS_SERVE_TOKEN` to require a bearer token (an empty one is an error). Stops on
    Ctrl-C or SIGTERM, with BentoML's exit code.
    """
    quiet_environment()
    from prefect_mlops.serving.process import (
        SAFE_PATH_ENV,
        check_exposure,
        private_working_dir,
        service_command,
    )
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    check_exposure(host, settings.serve_token, allow_unauthenticated=allow_unauthenticated)
    # The server runs from a private folder: pass every location absolute (./.mlops is here).
    env = {**os.environ, **settings.location_env(), **SAFE_PATH_ENV}
    env |= {"MLOPS_SERVE_MODEL_NAME": name, "MLOPS_SERVE_ALIAS": alias}
    if version:
        env["MLOPS_SERVE_VERSION"] = version
    with private_working_dir() as cwd:
        code = _run_until_stopped(service_command(host, port), env, cwd)
    raise typer.Exit(code)


def _run_until_stopped(command: list[str], env: dict[str, str], cwd: str) -> int:
    """Run ``command`` in this process group and wait for it; returns its exit code (128 + N
    when signal N killed it).

    Ctrl-C reaches it from the terminal (same process group; ignored here, so it is not sent
    twice: a second SIGINT makes BentoML's workers skip their shutdown, and the serving log its
    last flush); a SIGTERM or SIGHUP sent to this process (a supervisor, ``docker stop``) is
    passed on as SIGTERM. Either way BentoML stops its workers, which flush the serving log.
    """
    child = subprocess.Popen(command, env=env, cwd=cwd)

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # after Popen: the child keeps the default
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    code = child.wait()
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's 128 + N
