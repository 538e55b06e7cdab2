"""Prove the run-time dependency pins hold, against real components (no mocks).

Each pin in pyproject.toml exists because a newer version breaks something measurable
(see ../shared/PINS.md). These tests exercise exactly those failure points so that a lock
refresh that breaks a pin fails CI instead of a user:

- ``fastapi<0.151``: a real ``prefect server start`` becomes healthy and answers client
  filter queries (0.151-0.154 answer bodies with null fields, e.g. ``read_flows`` or an
  ``offset: null``, with 422; 0.155+ does not even import).
- ``sqlalchemy<2.1``: the server's scheduler inserts runs for a cron deployment
  (2.1 fails in ``_insert_scheduled_flow_runs``).
- ``pandas<3``: Evidently 0.7 imports and computes a drift report.
- ``skops<0.15``: MLflow saves (in its default skops format) and loads a scikit-learn
  tree model.

The server starts at module setup (autouse) and boots while the server-independent tests,
placed first, run; the server tests wait for ``/api/health``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.version import Version

from prefect_mlops.processes import TELEMETRY_OFF, free_port, start_server, stop_process

SERVER_HEALTH_TIMEOUT_S = 60.0  # counted from the first test that needs it
SCHEDULED_RUNS_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- helpers


class PrefectServer(NamedTuple):
    api_url: str  # http://127.0.0.1:<port>/api
    log_path: Path  # the server's stdout + stderr


def _log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<no server log: {exc}>"


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _prefect_server_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], PrefectServer]]:
    """Launch a real ``prefect server start`` on a free loopback port, own PREFECT_HOME.

    Autouse and not waited for here, so the server boots (~15-25 s) while the
    server-independent tests (placed first in this module) run; ``prefect_server`` waits.
    The finalizer always stops it.
    """
    home = tmp_path_factory.mktemp("prefect-home")
    log_path = home / "server.log"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"

    # Start from the current environment minus any Prefect setting (a test harness or a
    # developer profile must not leak into this server), then configure it explicitly.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            **TELEMETRY_OFF,
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
            "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
            # Scheduled runs must stay plain "Scheduled": no late-run marking.
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = start_server(cmd, env=env, cwd=home, log_path=log_path).process
    try:
        yield proc, PrefectServer(api_url, log_path)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def prefect_server(
    _prefect_server_process: tuple[subprocess.Popen[bytes], PrefectServer],
) -> PrefectServer:
    """The module's server, once ``GET /api/health`` answers 200 (bounded wait)."""
    proc, server = _prefect_server_process
    deadline = time.monotonic() + SERVER_HEALTH_TIMEOUT_S
    while not _healthy(server.api_url):
        if proc.poll() is not None:
            pytest.fail(
                f"prefect server exited with {proc.returncode} before becoming healthy:\n"
                f"{_log_tail(server.log_path)}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"prefect server not healthy at {server.api_url} after "
                f"{SERVER_HEALTH_TIMEOUT_S:.0f} s:\n{_log_tail(server.log_path)}"
            )
        time.sleep(0.5)
    return server


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """Point every Prefect client in this process at the module's server, explicitly.

    Works whether or not a ``prefect_test_harness`` is active: the innermost
    ``temporary_settings`` wins.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server


# --------------------------------------------------------------------------- versions


def test_pinned_versions_installed() -> None:
    """The lock resolves every transitive pin to an allowed version."""
    assert Version(version("pandas")).major < 3
    assert Version(version("fastapi")) < Version("0.151")
    assert Version(version("sqlalchemy")) < Version("2.1")
    assert Version(version("skops")) < Version("0.15")
    assert Version("3.8.8") <= Version(version("prefect")) < Version("3.9")

    import pandas

    assert Version(pandas.__version__).major < 3


# --------------------------------------------------------------------------- evidently


def test_evidently_drift_report_with_pandas() -> None:
    """pandas<3: Evidently 0.7's API imports and computes a drift report."""
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    assert Version(version("evidently")) < Version("0.8")
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 200), "y": rng.normal(5, 2, 200), "c": rng.choice(["a", "b"], 200)}
    )
    current = pd.DataFrame(
        {"x": rng.normal(3, 1, 200), "y": rng.normal(5, 2, 200), "c": rng.choice(["a", "b"], 200)}
    )
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    metrics = snapshot.dict()["metrics"]
    by_type: dict[str, list[dict]] = {}
    for metric in metrics:
        by_type.setdefault(metric["config"]["type"].rsplit(":", 1)[-1], []).append(metric)
    assert by_type["DriftedColumnsCount"][0]["value"]["count"] >= 1, metrics
    # The shifted column "x" is drifted (K-S p-value far below 0.05); "y" is not.
    p_values = {m["config"]["column"]: float(m["value"]) for m in by_type["ValueDrift"]}
    assert set(p_values) == {"x", "y", "c"}, metrics
    assert p_values["x"] < 0.05, p_values
    assert p_values["y"] > 0.05, p_values


# --------------------------------------------------------------------------- mlflow


def test_mlflow_saves_and_loads_tree_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skops<0.15: MLflow 3.17 saves a scikit-learn tree model and loads it back."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5)
    y = np.array([0, 1, 1, 0] * 5)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)

    # Restore MLflow's global tracking URI afterwards: the module global that
    # set_tracking_uri() writes, and the MLFLOW_TRACKING_URI variable it mirrors into
    # (monkeypatch puts that variable back as it was).
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous_uri = getattr(tracking_utils, "_tracking_uri", None)
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment_id = mlflow.create_experiment(
            "pins", artifact_location=(tmp_path / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(model, name="tree", pip_requirements=["scikit-learn"])
        loaded = mlflow.sklearn.load_model(info.model_uri)
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)

    # The default format is what the pin protects: skops, not (cloud)pickle.
    assert info.flavors["sklearn"]["serialization_format"] == "skops", info.flavors
    assert isinstance(loaded, DecisionTreeClassifier)
    assert (loaded.predict(X) == model.predict(X)).all()


# --------------------------------------------------------------------------- prefect server


def test_server_healthy_and_client_filters_work(on_server: PrefectServer) -> None:
    """fastapi<0.151: the server starts and filtered/limited client reads are not 422s."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter
    from prefect.client.schemas.sorting import FlowRunSort

    assert _healthy(on_server.api_url)

    async def exercise() -> None:
        async with get_client() as client:
            assert client.api_url is not None
            assert str(client.api_url).rstrip("/") == on_server.api_url
            response = await client.api_healthcheck()
            assert response is None, f"healthcheck failed: {response!r}"

            name = f"pins-client-{uuid.uuid4().hex[:8]}"
            flow_id = await client.create_flow_from_name(name)
            flow = await client.read_flow(flow_id)
            assert flow.name == name

            flows = await client.read_flows(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[name])), limit=5
            )
            assert [f.id for f in flows] == [flow_id]

            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=10,
                offset=0,
            )
            assert isinstance(runs, list)

            # These client methods send `"offset": null` by default; fastapi 0.151-0.154
            # answer that with 422 ("'offset' Input should be a valid integer").
            assert isinstance(await client.read_logs(limit=5), list)
            assert isinstance(await client.read_work_queues(limit=5), list)
            assert isinstance(await client.read_block_documents(limit=5), list)

    asyncio.run(exercise())


@pytest.fixture
def _drain_prefect_workers() -> Iterator[None]:
    """Flush in-process log/event workers so nothing talks to the server after the test."""
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def test_flow_run_artifacts_read_back(
    on_server: PrefectServer, _drain_prefect_workers: None
) -> None:
    """A flow run against the server creates markdown + table artifacts that read back."""
    from prefect import flow
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    suffix = uuid.uuid4().hex[:8]
    md_key = f"pins-markdown-{suffix}"
    table_key = f"pins-table-{suffix}"
    markdown = "# Pins hold\n\n- fastapi<0.151\n- sqlalchemy<2.1\n"
    table = [{"pin": "pandas<3", "ok": True}, {"pin": "skops<0.15", "ok": True}]

    @flow(name="pins-artifacts", persist_result=False)
    def make_artifacts() -> str:
        create_markdown_artifact(markdown=markdown, key=md_key, description="pins md")
        create_table_artifact(table=table, key=table_key, description="pins table")
        return "done"

    state = make_artifacts(return_state=True)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None

    async def read_back() -> None:
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
            assert flow_run.state is not None and flow_run.state.is_completed()

            (md,) = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[md_key])), limit=5
            )
            assert md.type == "markdown"
            assert md.data == markdown
            assert md.flow_run_id == flow_run_id

            (tbl,) = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[table_key])), limit=5
            )
            assert tbl.type == "table"
            assert tbl.flow_run_id == flow_run_id
            data = json.loads(tbl.data) if isinstance(tbl.data, str) else tbl.data
            assert data == table

    asyncio.run(read_back())


def test_cron_deployment_gets_scheduled_runs(on_server: PrefectServer) -> None:
    """sqlalchemy<2.1: the server's scheduler inserts runs for a cron deployment."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.schedules import CronSchedule

    async def exercise() -> list:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(f"pins-cron-{uuid.uuid4().hex[:8]}")
            deployment_id = await client.create_deployment(
                flow_id=flow_id,
                name="every-minute",
                schedules=[
                    DeploymentScheduleCreate(schedule=CronSchedule(cron="* * * * *"), active=True)
                ],
                paused=False,
            )
            deployment = await client.read_deployment(deployment_id)
            assert [s.schedule.cron for s in deployment.schedules] == ["* * * * *"]

            deployment_filter = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            scheduled_filter = FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            )
            deadline = time.monotonic() + SCHEDULED_RUNS_TIMEOUT_S
            while True:
                runs = await client.read_flow_runs(
                    deployment_filter=deployment_filter,
                    flow_run_filter=scheduled_filter,
                    limit=10,
                )
                if runs or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            for run in runs:
                assert run.deployment_id == deployment_id
                assert run.state is not None and run.state.type == StateType.SCHEDULED
            return runs

    runs = asyncio.run(exercise())
    assert len(runs) >= 1, (
        f"no scheduled flow run for the cron deployment within {SCHEDULED_RUNS_TIMEOUT_S:.0f} s;"
        f" server log tail:\n{_log_tail(on_server.log_path, lines=20)}"
    )
