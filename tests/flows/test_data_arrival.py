"""The data-arrival check end to end: a champion trained by the real training flow (MLflow on
SQLite in tmp_path), its source grown by new rows, ``mlops.data.arrived`` read back from a real
Prefect API; and a run whose API refuses events fails and says so."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from helpers import churn_config, last_flow_run, write_frame

from prefect_mlops import events
from prefect_mlops.config import TrainingConfig
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import ConfigError, PrefectAPIError
from prefect_mlops.flows.data_arrival import data_arrival_check

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "churn-arrival"


async def _stored(name: str, model_name: str, **payload: Any) -> list[Any]:
    """Events ``name`` about ``model_name`` whose payload holds ``payload`` (newest first)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    flt = EventFilter(
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[events.model_resource_id(model_name)]),
    )
    async with get_client() as client:
        page = await client.read_events(filter=flt, limit=50)
    return [e for e in page.events if all(e.payload.get(k) == v for k, v in payload.items())]


def stored(name: str, model_name: str, *, wait: float = 10.0, **payload: Any) -> list[Any]:
    """The stored events (see ``_stored``), waiting up to ``wait`` seconds for one: the server
    stores an event shortly after it was sent."""
    deadline = time.monotonic() + wait
    while True:
        found = asyncio.run(_stored(name, model_name, **payload))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def champion(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """v1 of ``churn-arrival`` trained on 1,200 demo rows of 2025 (a fast tree); yields the
    folder holding its source ``churn.csv``, with ``MLOPS_HOME`` under it."""
    from prefect_mlops.flows.training import continuous_training

    root = tmp_path_factory.mktemp("arrival")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops-home"))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        csv = write_frame(generate_churn(1200, seed=5), root / "churn.csv")
        outcome = continuous_training(_config(csv))
        assert (outcome.version, outcome.status) == ("1", "blessed")
        yield root


def _config(csv: Path, **overrides: Any) -> TrainingConfig:
    tree = {"class_path": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 4}}
    return churn_config(csv, **{"model_name": MODEL, "estimator": tree, **overrides})


def _grown(root: Path, new_rows: int, name: str) -> Path:
    """The champion's source plus ``new_rows`` rows of 2026 (all newer than its snapshot)."""
    old = pd.read_csv(root / "churn.csv")
    new = generate_churn(new_rows, seed=6, start="2026-01-01")
    new["customer_id"] = new["customer_id"].astype(str) + "-new"
    return write_frame(pd.concat([old, new], ignore_index=True), root / name)


def test_new_rows_past_the_threshold_emit_data_arrived(champion: Path) -> None:
    csv = _grown(champion, 300, "grown-300.csv")
    found = data_arrival_check(config=_config(csv), min_new_rows=250)
    assert (found.new_rows, found.basis, found.champion_version) == (300, "timestamp", "1")
    assert found.event == events.DATA_ARRIVED
    [event] = stored(events.DATA_ARRIVED, MODEL, source=str(csv))
    assert event.payload["new_rows"] == 300 and event.payload["threshold"] == 250
    assert event.payload["version"] == "1" and event.payload["champion_version"] == "1"
    assert event.payload["basis"] == "timestamp"
    assert "300 new rows since v1's snapshot" in event.payload["reason"]
    assert {r.role for r in event.related} >= {"model-version", "flow-run", "flow"}


def test_fewer_new_rows_than_the_threshold_emit_nothing(champion: Path) -> None:
    csv = _grown(champion, 40, "grown-40.csv")
    found = data_arrival_check(config=_config(csv), min_new_rows=1000)
    assert (found.new_rows, found.event) == (40, None)
    assert stored(events.DATA_ARRIVED, MODEL, wait=1.0, source=str(csv)) == []


def test_the_champions_own_source_has_no_new_rows(champion: Path) -> None:
    found = data_arrival_check(config=_config(champion / "churn.csv"), min_new_rows=1)
    assert (found.new_rows, found.event) == (0, None)


def test_without_a_timestamp_column_the_row_counts_decide(champion: Path) -> None:
    csv = _grown(champion, 60, "grown-60.csv")
    config = _config(csv, data={"path": str(csv)})
    found = data_arrival_check(config=config, min_new_rows=50)
    assert (found.new_rows, found.basis, found.event) == (60, "row_count", events.DATA_ARRIVED)


def test_the_config_is_read_from_a_yaml_file(champion: Path) -> None:
    csv = _grown(champion, 20, "grown-20.csv")
    path = champion / "arrival.yaml"
    path.write_text(yaml.safe_dump(_config(csv).model_dump(mode="json", exclude_defaults=True)))
    found = data_arrival_check(config_path=str(path), min_new_rows=20)
    assert (found.new_rows, found.event) == (20, events.DATA_ARRIVED)


def test_a_model_without_champion_counts_every_row(champion: Path) -> None:
    config = _config(champion / "churn.csv", model_name="churn-arrival-none")
    found = data_arrival_check(config=config, min_new_rows=1000)
    assert (found.new_rows, found.basis, found.champion_version) == (1200, "no_champion", None)
    [event] = stored(events.DATA_ARRIVED, "churn-arrival-none")
    assert event.payload["version"] is None
    assert "model-version" not in {r.role for r in event.related}
    assert "(no champion yet)" in event.payload["reason"]


def test_neither_config_nor_path_is_refused(champion: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of config_path or config"):
        data_arrival_check()


# -- the Prefect API refuses events ---------------------------------------------------------------


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the real API except the events stream (``/events/in``):
    the API answers the run's state changes and logs, but takes no event."""

    upstream = ""

    def _forward(self) -> None:
        if self.path.rstrip("/").endswith("/events/in"):
            self.send_error(503, "events refused by the test proxy")
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        skip = {"host", "content-length", "connection", "accept-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        base = self.upstream.removesuffix("/api")
        answer = httpx.request(
            self.command, base + self.path, content=body, headers=headers, timeout=30
        )
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in {"content-length", "transfer-encoding", "connection",
                                   "content-encoding"}:  # fmt: skip
                self.send_header(key, value)
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def api_refusing_events() -> Iterator[str]:
    """A loopback proxy to the test API that refuses the events stream; yields its API URL."""
    from prefect.settings import PREFECT_API_URL

    handler = type("Handler", (_Proxy,), {"upstream": str(PREFECT_API_URL.value())})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_run_whose_api_takes_no_event_fails_and_says_so(champion: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    csv = _grown(champion, 30, "grown-refused.csv")
    with (
        api_refusing_events() as url,
        temporary_settings({PREFECT_API_URL: url}),
        pytest.raises(
            PrefectAPIError, match=r"cannot emit mlops\.data\.arrived for 'churn-arrival'"
        ),
    ):
        data_arrival_check(config=_config(csv), min_new_rows=10)

    run = last_flow_run("data-arrival-check")
    assert run.state is not None and run.state.is_failed()
    assert "cannot emit mlops.data.arrived" in str(run.state.message)
