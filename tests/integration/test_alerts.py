"""Alerts through a Prefect automation with a webhook action, on a real `prefect server`
(loopback port), posting to a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prefect_mlops import automations, events
from prefect_mlops.errors import ConfigError
from prefect_mlops.processes import free_port
from prefect_mlops.settings import Settings

ENV = "TEST_ALERT_WEBHOOK_URL"


class Receiver:
    """A webhook receiver on 127.0.0.1: every POST body, parsed as JSON, with its path."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token-123"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.posts) < count:
            time.sleep(0.1)
        return [body for _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_mlops.cli.prefect_api import start_local_server, stop_local_server

    settings = Settings(home=tmp_path_factory.mktemp("alerts") / "mlops-home")
    url, _ = start_local_server(settings, free_port())
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        stop_local_server(settings)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


async def _automations() -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_automations_by_name(automations.ALERT_AUTOMATION)


async def _block_document() -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_block_document_by_name(
            automations.ALERT_BLOCK, block_type_slug="webhook", include_secrets=False
        )


def test_drift_quality_failing_and_rollback_are_posted(
    server: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, receiver.url)
    automation_id = automations.ensure_alerts(url_env=ENV)
    assert automation_id is not None
    sent = time.time()
    for event, version, reason in [
        (events.DRIFT_DETECTED, "3", "5 of 9 columns drifted"),
        (events.MODEL_PROMOTED, "4", "canary passed"),  # not an alert
        (events.QUALITY_DEGRADED, "3", "estimated accuracy 0.71, 0.09 below the test set"),
        (events.MODEL_FAILING, "3", "error rate 0.2 > 0.01"),
        (events.MODEL_ROLLED_BACK, "3", "fallback: champion back to v2"),
    ]:
        events.emit(event, "alert-model", version=version, reason=reason)
    posts = receiver.wait_for(4)
    print(f"\nalerts: 4 posts {time.time() - sent:.2f} s after the first event")
    time.sleep(1)  # room for a wrong fifth post (the promoted event) to arrive
    assert sorted(p["event"] for p in posts) == sorted(
        [
            events.DRIFT_DETECTED,
            events.QUALITY_DEGRADED,
            events.MODEL_FAILING,
            events.MODEL_ROLLED_BACK,
        ]
    )
    assert len(receiver.posts) == 4
    quality = next(p for p in posts if p["event"] == events.QUALITY_DEGRADED)
    assert quality["model_name"] == "alert-model" and quality["version"] == "3"
    assert quality["reason"] == "estimated accuracy 0.71, 0.09 below the test set"
    assert quality["event_id"] and quality["occurred"]
    assert {path for path, _ in receiver.posts} == {"/hooks/secret-token-123"}


def test_the_url_is_stored_as_a_secret_and_setup_is_idempotent(
    server: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, receiver.url)
    automations.ensure_alerts(url_env=ENV)
    automations.ensure_alerts(url_env=ENV)
    assert len(asyncio.run(_automations())) == 1
    (automation,) = asyncio.run(_automations())
    assert "secret-token-123" not in automation.model_dump_json()
    block = asyncio.run(_block_document())
    assert "secret-token-123" not in json.dumps(block.data, default=str)


def test_unset_means_off_and_removes_the_automation(
    server: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, receiver.url)
    automations.ensure_alerts(url_env=ENV)
    monkeypatch.delenv(ENV)
    assert automations.ensure_alerts(url_env=ENV) is None
    assert asyncio.run(_automations()) == []
    events.emit(events.DRIFT_DETECTED, "alert-model", version="3", reason="drift, alerts off")
    time.sleep(3)
    assert receiver.posts == []


def test_a_url_that_is_not_http_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV, f"file://{tmp_path}/hook")
    with pytest.raises(ConfigError, match=f"{ENV}: the alert webhook URL must start with http"):
        automations.ensure_alerts(url_env=ENV)
