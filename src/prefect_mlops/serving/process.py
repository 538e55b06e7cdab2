"""Run the BentoML prediction service as a child process on a loopback port (infra-validation,
tests, benchmarks; the process is always stopped when the block ends), and what every start of
it checks first: the token and the address it binds.

The server runs from a private folder made for that start (``tempfile.mkdtemp``: empty, only
this user may write it; removed when the server stops) with the interpreter's safe path
(``-P`` and ``PYTHONSAFEPATH=1``, inherited by BentoML's workers): ``bentoml serve`` puts its
working directory first on ``sys.path`` and ``python -m`` its current one, so a shared folder
(or the checkout) there would let whoever can write it run code as the server's user.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prefect_mlops.errors import ConfigError, ServiceStartError
from prefect_mlops.processes import (
    ServerProcess,
    free_port,
    http_ok,
    start_server,
    stop_process,
    telemetry_off_env,
    wait_until,
)
from prefect_mlops.serving.auth import bearer_headers
from prefect_mlops.serving.loading import CANNOT_START
from prefect_mlops.settings import get_settings

SERVICE_TARGET = "prefect_mlops.deployments.service:ModelService"
# The interpreter's safe path: neither the working directory (``-m``) nor a script's folder is
# put on ``sys.path``; the variable reaches every Python process BentoML starts.
SAFE_PATH_ENV = {"PYTHONSAFEPATH": "1"}


@dataclass(frozen=True)
class RunningService:
    """A started service: its base URL and its server process (with the log)."""

    url: str
    server: ServerProcess

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The ``bentoml serve`` process."""
        return self.server.process

    @property
    def log_path(self) -> Path:
        """The file the server's output goes to."""
        return self.server.log_path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote."""
        return self.server.log_tail(lines)

    def start_failure(self) -> str | None:
        """The service's own reason for not starting (``prefect-mlops service cannot start:
        ...``, naming the model), when its log has one: BentoML's traceback may bury it."""
        for line in reversed(self.server.log_lines()):
            at = line.find(CANNOT_START)
            if at >= 0:
                return line[at:]
        return None


def service_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command of the model service (safe path: ``-P``)."""
    return [
        sys.executable, "-P", "-m", "bentoml", "serve", SERVICE_TARGET,
        "--host", host, "--port", str(port),
    ]  # fmt: skip


@contextmanager
def private_working_dir() -> Iterator[str]:
    """A new private folder to start a server from (``tempfile.mkdtemp``: empty, mode 0700),
    removed when the block ends."""
    folder = tempfile.mkdtemp(prefix="prefect-mlops-serve-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_token(token: str | None) -> None:
    """Raises ConfigError when ``MLOPS_SERVE_TOKEN`` is set but blank (it would turn auth off
    without anyone asking)."""
    if token is not None and not token.strip():
        raise ConfigError(
            "MLOPS_SERVE_TOKEN is set but empty; set it to a secret (e.g. `openssl rand -hex 32`) "
            "or unset it to serve without a token on 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(host: str, token: str | None, *, allow_unauthenticated: bool) -> None:
    """Raises ConfigError for a blank token (:func:`check_token`), or for a ``host`` beyond
    loopback with no token unless ``allow_unauthenticated`` says so explicitly."""
    check_token(token)
    if token or allow_unauthenticated or is_loopback(host):
        return
    raise ConfigError(
        f"--host {host}: the service would answer anyone who can reach it, with no token; "
        "set MLOPS_SERVE_TOKEN (clients send `Authorization: Bearer <token>`), bind 127.0.0.1, "
        "or pass --allow-unauthenticated if the network in front of it does the access control"
    )


@contextmanager
def run_service(
    env: dict[str, str],
    *,
    port: int | None = None,
    startup_timeout: float = 180.0,
    ready_path: str = "/readyz",
) -> Iterator[RunningService]:
    """Start ``bentoml serve`` for the model service with ``env`` added to this environment,
    wait until ``ready_path`` answers 200, yield it, and stop it (SIGTERM, then SIGKILL).

    It runs from a private folder, removed when it stops (see the module docstring). Raises
    ServiceStartError with the server's last log lines when it is not ready in
    ``startup_timeout`` seconds, or as soon as it exits (a model that cannot be loaded exits
    it; the error then leads with the service's reason, naming the model URI).
    """
    port = port or free_port()
    fd, log_name = tempfile.mkstemp(prefix="mlops-service-", suffix=".log")
    os.close(fd)
    child_env = {
        **telemetry_off_env(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        # It runs from a neutral folder: every location absolute, unless ``env`` sets it.
        **get_settings().location_env(),
        **env,
    }
    child_env.update(SAFE_PATH_ENV)
    with private_working_dir() as cwd:
        command = service_command("127.0.0.1", port)
        server = start_server(command, env=child_env, cwd=cwd, log_path=Path(log_name))
        service = RunningService(url=f"http://127.0.0.1:{port}", server=server)
        try:
            wait_ready(service, ready_path, startup_timeout)
            yield service
        finally:
            stop_process(server.process)


def wait_ready(service: RunningService, path: str, timeout: float) -> None:
    """Wait until ``service`` answers 200 on ``path``; raises ServiceStartError (with the
    service's own reason and its log tail) when it exits first or ``timeout`` passes."""
    try:
        code = wait_until(service.server, lambda: http_ok(service.url + path), timeout=timeout)
    except TimeoutError:
        raise ServiceStartError(
            f"the prediction service was not ready within {timeout:.0f} s:\n{service.log_tail()}"
        ) from None
    if code is not None:
        reason = service.start_failure()
        raise ServiceStartError(
            f"the prediction service exited with code {code} before it was ready"
            + (f": {reason}" if reason else "")
            + f"\nlast lines of its log:\n{service.log_tail()}",
            code,
        )


@dataclass
class ProbeResult:
    """What a service answered to ``send_rows``: one prediction per row (None where the request
    failed), per-request latencies in ms, and the failed request count."""

    predictions: list
    latencies_ms: list[float]
    errors: int


def send_rows(
    url: str, frame: pd.DataFrame, *, rows_per_request: int, token: str | None = None
) -> ProbeResult:
    """POST ``frame`` to ``url``/predict as ``{"records": [...]}`` in chunks, timing each call."""
    import httpx

    headers = bearer_headers(token, url + "/predict")  # the token goes to allowed hosts only
    result = ProbeResult(predictions=[], latencies_ms=[], errors=0)
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        for start in range(0, len(frame), rows_per_request):
            chunk = frame.iloc[start : start + rows_per_request]
            records = json.loads(chunk.to_json(orient="records", date_format="iso"))
            began = time.perf_counter()
            try:
                response = http.post("/predict", json={"records": records})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            result.latencies_ms.append((time.perf_counter() - began) * 1000)
            if ok:
                result.predictions.extend(response.json()["predictions"])
            else:
                result.errors += 1
                result.predictions.extend([None] * len(chunk))
    return result
