"""Child processes: the telemetry-off environment, free loopback ports, and servers started as
subprocesses (the BentoML service, a local Prefect server) that are always stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Every usage-telemetry switch of the stack, off (PINS.md lists them).
TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
}


def telemetry_off_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every telemetry switch off."""
    return {**(os.environ if base is None else base), **TELEMETRY_OFF}


def turn_telemetry_off() -> None:
    """Switch telemetry off in this process's environment (before the libraries are imported)."""
    os.environ.update(TELEMETRY_OFF)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` (loopback by default) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerProcess:
    """A server started by :func:`start_server`: its process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[str]:
        """Everything the server wrote so far, as lines ([] when the log cannot be read)."""
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the server wrote."""
        return "\n".join(self.log_lines()[-lines:])


def start_server(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str | Path, log_path: Path
) -> ServerProcess:
    """Start ``command`` in its own session (so :func:`stop_process` can stop its children),
    stdin closed, stdout and stderr to ``log_path``. Raises OSError when it cannot start."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServerProcess(process=process, log_path=log_path)


def wait_until(
    server: ServerProcess,
    ready: Callable[[], bool],
    *,
    timeout: float,
    poll_seconds: float = 0.5,
) -> int | None:
    """Poll ``ready()`` until it is true (returns None), the server exits (returns its exit code)
    or ``timeout`` seconds pass (raises TimeoutError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return code
        if ready():
            return None
        time.sleep(poll_seconds)
    raise TimeoutError(f"not ready within {timeout:.0f} s")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 (any connection error is a no)."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM ``process`` and wait; SIGKILL it if it lingers; then SIGKILL what is left of its
    session (a process started by :func:`start_server` leads its own process group)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
