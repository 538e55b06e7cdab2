"""Which Prefect API the CLI's flows talk to, and the checkout's own local Prefect server.

The order, decided before Prefect is imported:

1. ``PREFECT_API_URL`` in the environment, or in the active profile of ``$PREFECT_HOME``
   (``~/.prefect`` unless set): used as is. A loopback URL that does not answer is an error
   (one line naming the fix) instead of a connection traceback deep inside a flow.
2. Else the local server that ``make server`` (``prefect-mlops server start``) started for this
   ``MLOPS_HOME``, when it answers: its URL is in ``$MLOPS_HOME/prefect/server.json``.
3. Else Prefect's ephemeral mode: a temporary server in this process (~10 s before the flow).

The local server keeps its state in ``$MLOPS_HOME/prefect`` (its ``PREFECT_HOME``) and writes its
URL into the profile there, so a shell where ``source env.sh`` set ``PREFECT_HOME`` to that folder
points raw ``prefect`` commands (deploy, worker) at it as well.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

from prefect_mlops.errors import PrefectAPIError
from prefect_mlops.settings import Settings

DEFAULT_PORT = 4200
PROFILE_NAME = "mlops-local"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
START_TIMEOUT_SECONDS = 180.0


def server_dir(settings: Settings) -> Path:
    """The local server's ``PREFECT_HOME``: ``$MLOPS_HOME/prefect``."""
    return settings.home_path / "prefect"


def _state_file(settings: Settings) -> Path:
    return server_dir(settings) / "server.json"


def _healthy(api_url: str) -> bool:
    from prefect_mlops.processes import http_ok

    return http_ok(f"{api_url.rstrip('/')}/health")


def profile_api_url(environ: dict[str, str] | None = None) -> tuple[str | None, Path]:
    """``PREFECT_API_URL`` of the active profile (None when the file, the profile or the key is
    missing) and the profiles file it was read from, without importing Prefect."""
    env = os.environ if environ is None else environ
    home = Path(env.get("PREFECT_HOME") or "~/.prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None, path
    active = env.get("PREFECT_PROFILE") or profiles.get("active")
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return (str(url) if url else None), path


def running_local_server(settings: Settings) -> str | None:
    """The API URL of this home's local server when it is running and healthy, else None."""
    try:
        state = json.loads(_state_file(settings).read_text())
        url, pid = str(state["url"]), int(state["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _healthy(url) else None


def choose_prefect_api(settings: Settings) -> str | None:
    """Point this process at the Prefect API to use (see the module docstring); returns its URL,
    or None for Prefect's ephemeral mode. Raises PrefectAPIError when a loopback API the user
    configured does not answer."""
    configured = os.environ.get("PREFECT_API_URL")
    source = "PREFECT_API_URL"
    if not configured:
        configured, profiles = profile_api_url()
        source = f"the active profile in {profiles}"
        if configured and profiles.resolve() == (server_dir(settings) / "profiles.toml"):
            configured = None  # the local server's own profile: used below while it runs
    if configured:
        if urlparse(configured).hostname in LOOPBACK_HOSTS and not _healthy(configured):
            raise PrefectAPIError(
                f"the Prefect API at {configured} (from {source}) does not answer; start it "
                "(`make server`) or unset it to run on a temporary server"
            )
        return configured
    local = running_local_server(settings)
    if local:
        os.environ["PREFECT_API_URL"] = local
    return local


def _write_profile(settings: Settings, url: str | None) -> None:
    """Make the profile in the server's folder point at ``url`` (None: at no server)."""
    from prefect_mlops.files import write_text_atomic

    settings_line = f'PREFECT_API_URL = "{url}"\n' if url else ""
    text = f'active = "{PROFILE_NAME}"\n\n[profiles.{PROFILE_NAME}]\n{settings_line}'
    write_text_atomic(text, server_dir(settings) / "profiles.toml")


def start_local_server(settings: Settings, port: int = DEFAULT_PORT) -> tuple[str, bool]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` in the background, its state in
    :func:`server_dir`, and wait until it answers; returns (API URL, started now). A server
    already running for this home is reused. Raises PrefectAPIError when it does not start."""
    from prefect_mlops.files import write_text_atomic
    from prefect_mlops.processes import start_server, telemetry_off_env, wait_until

    running = running_local_server(settings)
    if running:
        return running, False
    folder = server_dir(settings)
    url = f"http://127.0.0.1:{port}/api"
    if _healthy(url):
        raise PrefectAPIError(
            f"another Prefect server already answers on port {port}; stop it or pass --port"
        )
    env = {k: v for k, v in telemetry_off_env().items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(folder), "PREFECT_API_URL": url}
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    try:
        server = start_server(command, env=env, cwd=folder, log_path=folder / "server.log")
        code = wait_until(server, lambda: _healthy(url), timeout=START_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise PrefectAPIError(
            f"the Prefect server did not start ({exc}); see {folder / 'server.log'}"
        ) from exc
    if code is not None:
        raise PrefectAPIError(
            f"the Prefect server exited with {code} while starting:\n{server.log_tail(15)}"
        )
    write_text_atomic(json.dumps({"url": url, "pid": server.process.pid}), _state_file(settings))
    _write_profile(settings, url)
    return url, True


def stop_local_server(settings: Settings) -> bool:
    """Stop this home's local server (SIGTERM to its main process, which stops its children);
    returns whether one was running."""
    import signal
    import time

    state_file = _state_file(settings)
    try:
        pid = int(json.loads(state_file.read_text())["pid"])
        os.kill(pid, signal.SIGTERM)
        stopped = True
    except (OSError, ValueError, KeyError, TypeError):
        stopped = False
    deadline = time.monotonic() + 30
    while stopped and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    state_file.unlink(missing_ok=True)
    if server_dir(settings).is_dir():
        _write_profile(settings, None)
    return stopped
