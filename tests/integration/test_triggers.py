"""Exactly once, on a real `prefect server` (loopback port) with a real process worker: the
deployments `prefect-mlops init` writes, deployed with `prefect deploy --all`, the real
continuous-training flow on a fast config (HistGradientBoosting, max_iter 30, 2,000 demo rows).

* a burst of 10 identical drift events within the trigger's window starts one retrain;
* a drift event while a retrain of the model runs starts none (the run the trigger creates is
  cancelled by the deployment's concurrency limit, CANCEL_NEW, before it ever runs);
* a retrain on unchanged data registers nothing ("unchanged");
* a failing champion's event runs the fallback deployment, which moves champion back.

The only change to what `init` writes is a shorter trigger window (COOLDOWN_SECONDS instead of
RETRAIN_COOLDOWN_SECONDS), so the tests need not wait half an hour between scenarios. The
worker polls every second (PREFECT_WORKER_QUERY_SECONDS=1; the default is 10 s). Each test
prints the seconds from the event to the triggered flow run's creation and start.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_mlops import automations, events, registry
from prefect_mlops.data.demo import write_demo_dataset
from prefect_mlops.processes import ServerProcess, free_port, start_server, stop_process
from prefect_mlops.registry import lineage
from prefect_mlops.settings import Settings

MODEL = "trig-churn"
#: The demo seed of the rows each version is trained on (version 1 by the first test, 2 by the
#: second, whether blessed or not).
SEED_OF_VERSION = {"1": 1, "2": 2}
POOL = "trig-pool"
COOLDOWN_SECONDS = 6
FALLBACK_DEBOUNCE_SECONDS = 2
BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@dataclass
class Loop:
    url: str
    home: Path
    project: Path
    worker: ServerProcess
    deployments: dict[str, str]  # name -> id

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home)

    def client(self) -> Any:
        return registry.mlflow_client(self.settings)

    def runs(self, process: automations.Process) -> list[Any]:
        """The flow runs of ``process``'s deployment, oldest first."""
        return _api(
            self.url, _read_runs(self.deployments[automations.deployment_name(MODEL, process)])
        )

    def emit(self, event: str, *, version: str | None, reason: str) -> float:
        """Send ``event`` about the model; returns the wall-clock time it was sent."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            sent = time.time()
            events.emit(event, MODEL, version=version, reason=reason)
        return sent

    def wait_for_runs(
        self, process: automations.Process, count: int, timeout: float = 60
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs(process)
            if len(runs) >= count:
                return runs
            time.sleep(0.1)
        raise AssertionError(
            f"{count} {process} runs expected within {timeout:.0f} s, got "
            f"{len(self.runs(process))}; worker log:\n{self.worker.log_tail()}"
        )

    def wait_terminal(self, run_id: Any, timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = _api(self.url, _read_run(run_id))
            if run.state_type.value in TERMINAL:
                return run
            time.sleep(0.5)
        raise AssertionError(
            f"run {run_id} not finished in {timeout:.0f} s:\n{self.worker.log_tail()}"
        )

    def wait_state(self, run_id: Any, state: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = _api(self.url, _read_run(run_id))
            if run.state_type.value == state:
                return run
            assert run.state_type.value not in TERMINAL, (run.state_type, run.state.message)
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} not {state} in {timeout:.0f} s")


def _api(url: str, coro: Any) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        return asyncio.run(coro)


async def _read_runs(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        )


async def _read_run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(run_id)


async def _read_states(run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [s.type.value for s in await client.read_flow_run_states(run_id)]


async def _read_artifact(run_id: Any, key: str) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        )
    return str(found[0].data) if found else None


async def _read_deployments() -> dict[str, str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {d.name: str(d.id) for d in await client.read_deployments()}


def _write_project(project: Path) -> None:
    """What `prefect-mlops init` writes (its own function), with the fast config and the short
    window; only the deployments these tests trigger."""
    from prefect_mlops.cli.scaffold import deployment_file

    write_demo_dataset(project / "data" / "churn.csv", n_rows=2000, seed=SEED_OF_VERSION["1"])
    config = {
        "model_name": MODEL,
        "data": {"path": "data/churn.csv", "timestamp_column": "event_ts"},
        "target": "churned",
        "task": "classification",
        "id_column": "customer_id",
        "split": {"method": "random", "seed": 42},
        "estimator": {
            "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30},
        },
        "promote": True,
    }
    (project / "train.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    written = deployment_file(MODEL, project)
    keep = {automations.deployment_name(MODEL, p) for p in ("continuous-training", "fallback")}
    written["deployments"] = [d for d in written["deployments"] if d["name"] in keep]
    for deployment in written["deployments"]:
        deployment["work_pool"] = {"name": POOL}
        for trigger in deployment.get("triggers", []):
            trigger["within"] = (
                COOLDOWN_SECONDS
                if trigger["name"] == automations.trigger_name(MODEL, "continuous-training")
                else FALLBACK_DEBOUNCE_SECONDS
            )
    (project / "prefect.yaml").write_text(yaml.safe_dump(written, sort_keys=False))


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    from prefect_mlops.cli.prefect_api import start_local_server, stop_local_server
    from prefect_mlops.processes import telemetry_off_env

    tmp = tmp_path_factory.mktemp("triggers")
    home, project = tmp / "mlops-home", tmp / "project"
    _write_project(project)
    settings = Settings(home=home)
    url, _ = start_local_server(settings, free_port())
    worker: ServerProcess | None = None
    try:
        env = {k: v for k, v in telemetry_off_env().items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_API_URL": url,
            "PREFECT_HOME": str(tmp / "client-prefect-home"),
            "MLOPS_HOME": str(home),
            "OMP_NUM_THREADS": "1",
        }
        for command in (
            [str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"],
            [str(BIN / "prefect"), "deploy", "--all", "--no-prompt"],
        ):
            done = subprocess.run(
                command, cwd=project, env=env, capture_output=True, text=True, timeout=240,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        worker = start_server(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
            env=env | {"PREFECT_WORKER_QUERY_SECONDS": "1"},
            cwd=project,
            log_path=tmp / "worker.log",
        )
        deployments = _api(url, _read_deployments())
        yield Loop(url, home, project, worker, deployments)
    finally:
        if worker is not None:
            stop_process(worker.process)
        stop_local_server(settings)


def _created_after(run: Any, sent: float) -> float:
    return run.created.timestamp() - sent


def _started_after(run: Any, sent: float) -> float | None:
    return None if run.start_time is None else run.start_time.timestamp() - sent


def _versions(loop: Loop) -> list[str]:
    return sorted(str(v.version) for v in registry.search_versions(loop.client(), MODEL))


def test_a_burst_of_ten_drift_events_starts_one_retrain(loop: Loop) -> None:
    sent = [
        loop.emit(events.DRIFT_DETECTED, version=None, reason=f"burst {i}: 5 columns drifted")
        for i in range(10)
    ]
    (run,) = loop.wait_for_runs("continuous-training", 1)
    print(f"\nburst: 10 events in {sent[-1] - sent[0]:.2f} s; event → run created "
          f"{_created_after(run, sent[0]):.2f} s")  # fmt: skip
    assert run.parameters["trigger"]["event"] == events.DRIFT_DETECTED
    assert run.parameters["trigger"]["reason"].startswith("burst ")
    assert run.parameters["config_path"] == "train.yaml"
    done = loop.wait_terminal(run.id)
    print(f"burst: run started {_started_after(done, sent[0]):.2f} s after the event, "
          f"finished in {done.total_run_time.total_seconds():.1f} s")  # fmt: skip
    assert done.state_type.value == "COMPLETED", done.state.message
    time.sleep(2)  # the server has had every event for the whole run; none may start another
    assert len(loop.runs("continuous-training")) == 1
    assert _versions(loop) == ["1"]
    assert registry.alias_state(loop.client(), MODEL)["champion"] == "1"
    run_tags = loop.client().get_run(loop.client().get_model_version(MODEL, "1").run_id).data.tags
    assert run_tags[lineage.TRIGGER_EVENT] == events.DRIFT_DETECTED


def test_a_drift_event_while_a_retrain_runs_starts_none(loop: Loop) -> None:
    # New rows, so the retrain trains (and runs long enough to be overlapped).
    write_demo_dataset(loop.project / "data" / "churn.csv", n_rows=2000, seed=SEED_OF_VERSION["2"])
    before = len(loop.runs("continuous-training"))
    time.sleep(COOLDOWN_SECONDS)  # the previous test's window is over
    first_sent = loop.emit(events.DRIFT_DETECTED, version="1", reason="new rows drifted")
    first = loop.wait_for_runs("continuous-training", before + 1)[-1]
    loop.wait_state(first.id, "RUNNING")
    wait = first.created.timestamp() + COOLDOWN_SECONDS + 1 - time.time()
    time.sleep(max(0.0, wait))  # past the trigger's window: only the limit can stop it now
    second_sent = loop.emit(events.DRIFT_DETECTED, version="1", reason="drifted again")
    second = loop.wait_for_runs("continuous-training", before + 2)[-1]
    assert second.id != first.id
    assert _api(loop.url, _read_run(first.id)).state_type.value == "RUNNING", (
        "the first retrain ended before the second event's run; the overlap was not tested"
    )
    cancelled = loop.wait_terminal(second.id, timeout=60)
    print(f"\nwhile running: event → first run created {_created_after(first, first_sent):.2f} s; "
          f"second run created {_created_after(second, second_sent):.2f} s, "
          f"{cancelled.state_type.value} ({cancelled.state.message})")  # fmt: skip
    assert cancelled.state_type.value == "CANCELLED"
    assert "concurrency limit" in (cancelled.state.message or "").lower()
    assert "RUNNING" not in _api(loop.url, _read_states(second.id))
    finished = loop.wait_terminal(first.id)
    assert finished.state_type.value == "COMPLETED", finished.state.message
    assert len(loop.runs("continuous-training")) == before + 2
    assert _versions(loop) == ["1", "2"]


def test_a_retrain_on_unchanged_data_registers_nothing(loop: Loop) -> None:
    before_runs = len(loop.runs("continuous-training"))
    versions, aliases = _versions(loop), registry.alias_state(loop.client(), MODEL)
    # The champion's own rows again (the second test's v2 may or may not have been blessed).
    seed = SEED_OF_VERSION[aliases["champion"]]
    write_demo_dataset(loop.project / "data" / "churn.csv", n_rows=2000, seed=seed)
    time.sleep(COOLDOWN_SECONDS)
    sent = loop.emit(events.QUALITY_DEGRADED, version=aliases["champion"], reason="auc -0.08")
    run = loop.wait_for_runs("continuous-training", before_runs + 1)[-1]
    print(f"\nunchanged: event → run created {_created_after(run, sent):.2f} s")
    done = loop.wait_terminal(run.id)
    assert done.state_type.value == "COMPLETED", done.state.message
    assert run.parameters["trigger"] == {
        "event": events.QUALITY_DEGRADED,
        "version": aliases["champion"],
        "reason": "auc -0.08",
    }
    summary = _api(loop.url, _read_artifact(run.id, "training-summary"))
    assert summary is not None and "unchanged" in summary
    assert _versions(loop) == versions
    assert registry.alias_state(loop.client(), MODEL) == aliases


def test_a_failing_champion_event_runs_the_fallback(loop: Loop) -> None:
    client = loop.client()
    registry.promote_version(client, MODEL, "2", reason="test: v2 champion, v1 before it")
    registry.promote_version(client, MODEL, "1", reason="test")
    registry.promote_version(client, MODEL, "2", reason="test")
    figures = "error rate 0.31 > max 0.01 over 500 requests"
    sent = loop.emit(events.MODEL_FAILING, version="2", reason=figures)
    (run,) = loop.wait_for_runs("fallback", 1)
    done = loop.wait_terminal(run.id, timeout=120)
    print(f"\nfallback: event → run created {_created_after(run, sent):.2f} s, started "
          f"{_started_after(done, sent):.2f} s; champion back in "
          f"{done.end_time.timestamp() - sent:.1f} s")  # fmt: skip
    assert done.state_type.value == "COMPLETED", done.state.message
    assert (run.parameters["version"], run.parameters["reason"]) == ("2", figures)
    assert registry.alias_state(client, MODEL)["champion"] == "1"
    last = registry.alias_history(client, MODEL)[-1]
    assert (last.from_version, last.to_version) == ("2", "1") and figures in last.reason
    assert client.get_model_version(MODEL, "2").tags[lineage.FAILING_REASON] == figures
    # The same event again (stale now: v2 is no longer champion) moves nothing.
    time.sleep(FALLBACK_DEBOUNCE_SECONDS + 1)
    loop.emit(events.MODEL_FAILING, version="2", reason=figures)
    stale = loop.wait_for_runs("fallback", 2)[-1]
    assert loop.wait_terminal(stale.id, timeout=120).state_type.value == "COMPLETED"
    assert registry.alias_state(client, MODEL)["champion"] == "1"
    artifact = _api(loop.url, _read_artifact(stale.id, "champion-fallback"))
    assert artifact is not None and "stale" in artifact
    assert datetime.now(UTC) > done.end_time


def test_events_about_a_model_that_does_not_exist_start_nothing(loop: Loop) -> None:
    """Each trigger matches its own model's resource (``mlops.model.<name>``): a retrain or
    failing event about another name runs no deployment of this one."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    processes: list[automations.Process] = ["continuous-training", "fallback"]
    time.sleep(COOLDOWN_SECONDS)  # no window of an earlier test is open
    before = {p: len(loop.runs(p)) for p in processes}
    aliases = registry.alias_state(loop.client(), MODEL)
    with temporary_settings(updates={PREFECT_API_URL: loop.url}):
        for event in (events.DRIFT_DETECTED, events.DATA_ARRIVED, events.MODEL_FAILING):
            events.emit(event, "no-such-model", version="1", reason="about another model")
    time.sleep(3)  # several worker polls: any matching trigger would have created a run by now
    assert {p: len(loop.runs(p)) for p in processes} == before
    assert registry.alias_state(loop.client(), MODEL) == aliases
