"""The serving token goes only to loopback and, over https, to ``serve_token_hosts``: the live
watcher's ``/metadata`` reads and infra-validation's probe refuse any other URL before a request
is sent (a real loopback HTTP server records what arrives)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from conftest import Models

from prefect_mlops import registry
from prefect_mlops.deployment.infra_validation import probe_service
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.serving_evidence import LiveService, service_metadata
from prefect_mlops.errors import ConfigError

TOKEN = "s3cret"
STARTED = "2026-01-01T12:00:00+00:00"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'{"challenger_error": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[str, list[str | None]]]:
    """A real HTTP server on 127.0.0.1: (its URL, the Authorization headers it received)."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


REFUSED = [
    "http://127.0.0.1@evil.example:3000",
    "https://evil.example",
    "http://serving.internal.example",  # allowed, but plain http
]


def test_metadata_is_read_with_the_token_on_loopback(loopback: tuple[str, list]) -> None:
    url, seen = loopback
    assert service_metadata(url, TOKEN, []) == {"challenger_error": None}
    assert seen == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("url", REFUSED)
def test_metadata_refuses_other_hosts_before_sending(url: str) -> None:
    with pytest.raises(ConfigError, match="MLOPS_SERVE_TOKEN_HOSTS"):
        service_metadata(url, TOKEN, ["serving.internal.example"])


def test_the_watcher_refuses_a_service_url_at_construction(
    models: Models, tmp_path: Path, loopback: tuple[str, list]
) -> None:
    url, seen = loopback
    config = DeploymentConfig(
        model_name=models.name, strategy="shadow", service_urls=[url, "http://evil.example:3000"]
    )
    rollout = registry.Rollout("shadow", "2", 0.0, STARTED, "tester", "t")
    with pytest.raises(ConfigError, match=r"'evil\.example'"):
        LiveService(models.client, config, "2", rollout, tmp_path / "log", TOKEN, [])
    # Without a token nothing is sent to protect.
    LiveService(models.client, config, "2", rollout, tmp_path / "log", None, [])
    assert seen == []


@pytest.mark.parametrize("url", REFUSED)
def test_infra_validation_refuses_other_hosts_before_probing(url: str) -> None:
    expected = pd.DataFrame({"x": [1.0], "prediction": [0]})
    config = DeploymentConfig(model_name="m")
    with pytest.raises(ConfigError, match="refusing to send the serving token"):
        probe_service(url, expected, config, token=TOKEN, token_hosts=["serving.internal.example"])
