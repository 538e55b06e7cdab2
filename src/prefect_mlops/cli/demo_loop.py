"""The closed-loop demo (``make demo``, ``prefect-mlops demo``): drift → retrain → bless → canary →
serve on a local Prefect server, with no human step, timed.

:func:`run_demo_loop` does, in its own state folder ``$MLOPS_HOME/loop-demo`` (wiped at each
start, so every run begins from a fresh registry):

1. starts ``prefect server`` on a loopback port (``prefect_api.start_local_server``);
2. trains the first champion in this process (``promote: true``: a canary needs a champion to
   compare with, so the first one is promoted at once, before the loop is deployed);
3. deploys the loop's deployments (continuous training, model-deployment, monitoring, built by
   :func:`prefect_mlops.automations.closed_loop_deployments`; retraining promotes nothing, so a
   retrained version waits as ``challenger`` for the canary) with ``prefect deploy --all``, and
   starts a process worker polling every second;
4. starts the BentoML service on the champion, sends clean traffic, then drifted traffic
   (``generate_churn(covariate_shift=...)``) without a pause until the end; the drifted rows'
   labels "arrive" in the training table;
5. runs the monitoring deployment over the drifted window, and waits while monitoring emits
   ``mlops.drift.detected`` → the trigger retrains → ``mlops.model.blessed`` → the
   model-deployment flow canaries the new version under that traffic and promotes it → the
   service answers with it.

Each step is reported with its seconds through a callback (this module never prints); what it
started is stopped at the end, or kept until the caller's ``wait`` returns (``--keep-running``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from prefect_mlops.errors import MLOpsError

if TYPE_CHECKING:
    from prefect_mlops.automations import Process

DEMO_MODEL = "churn-demo"
#: The retrain trigger's window in the demo (the shipped one is 1800 s).
DEMO_RETRAIN_COOLDOWN_SECONDS = 60
POOL = "loop-demo"
#: The deployments the loop needs (the others of ``closed_loop_deployments`` are not deployed).
LOOP_PROCESSES: tuple[Process, ...] = ("continuous-training", "model-deployment", "monitoring")
#: Rows of the first training table, of the clean and of the drifted traffic.
TRAIN_ROWS, CLEAN_ROWS, DRIFTED_ROWS = 3000, 400, 1200
#: How far the drifted traffic's features move (``generate_churn(covariate_shift=...)``).
COVARIATE_SHIFT = 1.5
ROWS_PER_REQUEST = 10
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})


class DemoLoopError(MLOpsError):
    """A step of the closed-loop demo failed or did not happen in time (the message says which
    step, and what its process logged)."""


@dataclass
class LoopTimes:
    """Wall-clock times (epoch seconds) of the loop's milestones; None when not reached."""

    drift_onset: float | None = None
    drift_event: float | None = None
    retrain_created: float | None = None
    retrain_started: float | None = None
    blessed_event: float | None = None
    rollout_started: float | None = None
    rollout_ended: float | None = None
    new_champion_answering: float | None = None

    def between(self, first: str, last: str) -> float | None:
        """Seconds from milestone ``first`` to ``last`` (None when either is missing)."""
        a, b = getattr(self, first), getattr(self, last)
        return None if a is None or b is None else b - a


@dataclass
class LoopResult:
    """What the demo did: the versions, the rollout's result, the runs it counted, the times."""

    model_name: str
    champion_before: str
    new_version: str | None = None
    blessed: bool = False
    rollout_result: str | None = None
    champion_after: str | None = None
    answering_version: str | None = None
    retrain_runs: int = 0
    drift_events: int = 0
    total_seconds: float = 0.0
    setup_seconds: float = 0.0
    times: LoopTimes = field(default_factory=LoopTimes)
    urls: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The result as JSON, with the two headline latencies."""
        data = asdict(self)
        data["event_to_retrain_start_seconds"] = self.times.between(
            "drift_event", "retrain_started"
        )
        data["event_to_retrain_created_seconds"] = self.times.between(
            "drift_event", "retrain_created"
        )
        data["onset_to_new_champion_seconds"] = self.times.between(
            "drift_onset", "new_champion_answering"
        )
        return json.dumps(data, indent=2)


#: ``report(step, seconds since start, detail)``.
Reporter = Callable[[str, float, str], None]


def loop_home(mlops_home: Path) -> Path:
    """The demo's own state folder: ``<mlops_home>/loop-demo``."""
    return mlops_home / "loop-demo"


def loop_training_config(data_path: Path, model_name: str = DEMO_MODEL) -> dict[str, Any]:
    """The demo's training config (as YAML data): the quick demo's, with fast settings (no
    search, 60 boosting iterations) and ``promote: false`` (a blessed retrain waits as
    ``challenger`` for the canary), blessing on absolute thresholds only (roc_auc ≥ 0.7,
    log_loss ≤ 0.6: the canary compares it with the champion under live traffic). Monitoring
    needs 50 scored rows."""
    from prefect_mlops.cli.demo_setup import demo_config

    raw = demo_config(data_path, model_name).model_dump(mode="json", exclude_none=True)
    raw["estimator"] = {
        "class_path": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 60},
    }
    raw["promote"] = False
    # An absolute gate: the canary then judges the retrained model against the champion live.
    raw["thresholds"] = [
        {"metric": "roc_auc", "min_value": 0.7},
        {"metric": "log_loss", "max_value": 0.6},
    ]
    raw["monitoring"] = {"min_rows": 50}
    return raw


def rollout_config(model_name: str, service_url: str) -> dict[str, Any]:
    """The demo's canary: half the live requests, 20 of them for the challenger, the serving
    log read every second, the live service's own URL watched, a short infra-validation."""
    return {
        "model_name": model_name,
        "strategy": "canary",
        "canary_share": 0.5,
        "min_requests": 20,
        "max_minutes": 3,
        "poll_seconds": 1,
        "validation_rows": 200,
        "service_urls": [service_url],
        "takeover_seconds": 30,
    }


def loop_deployments(
    model_name: str, *, project: Path, service_url: str, cooldown_seconds: int
) -> dict[str, Any]:
    """The demo's ``prefect.yaml``: :data:`LOOP_PROCESSES` of
    :func:`~prefect_mlops.automations.closed_loop_deployments` on the pool :data:`POOL`, the
    retrain window ``cooldown_seconds``, and the model-deployment's canary set to
    :func:`rollout_config` (its parameters and its trigger's)."""
    from prefect_mlops import automations

    rollout = rollout_config(model_name, service_url)
    wanted = {automations.deployment_name(model_name, p) for p in LOOP_PROCESSES}
    deployments = []
    for entry in automations.closed_loop_deployments(
        model_name,
        config_path="train.yaml",
        scoring={"model_name": model_name},
        work_pool=POOL,
        retrain_cooldown_seconds=cooldown_seconds,
    ):
        if entry["name"] not in wanted:
            continue
        if entry["name"] == automations.deployment_name(model_name, "model-deployment"):
            entry["parameters"] = {"config": rollout}
            entry["triggers"] = [automations.rollout_trigger(model_name, rollout)]
        deployments.append(entry)
    return {
        "name": f"{model_name}-loop-demo",
        "prefect-version": ">=3.8",
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}],
        "deployments": deployments,
    }


class _Clock:
    def __init__(self, report: Reporter) -> None:
        self.start = time.time()
        self._report = report

    def step(self, name: str, detail: str = "") -> float:
        now = time.time()
        self._report(name, now - self.start, detail)
        return now


class _Traffic(threading.Thread):
    """Sends ``frame`` to the service in requests of :data:`ROWS_PER_REQUEST` rows, over and
    over, until stopped; remembers which version answered when."""

    def __init__(self, url: str, frame: Any, pause: float = 0.05) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.url, self.pause = url, pause
        self.records = json.loads(frame.to_json(orient="records", date_format="iso"))
        self.stop_event = threading.Event()
        self.requests = 0
        self.errors = 0
        self.versions: dict[str, int] = {}

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            position = 0
            while not self.stop_event.is_set():
                chunk = self.records[position : position + ROWS_PER_REQUEST]
                position = (position + ROWS_PER_REQUEST) % max(len(self.records), 1)
                try:
                    response = http.post("/predict", json={"records": chunk})
                    if response.status_code == 200:
                        version = str(response.json().get("model_version"))
                        self.versions[version] = self.versions.get(version, 0) + 1
                    else:
                        self.errors += 1
                except httpx.HTTPError:
                    self.errors += 1
                self.requests += 1
                time.sleep(self.pause)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


def _subprocess_env(home: Path, api_url: str, mlflow_ui_url: str) -> dict[str, str]:
    from prefect_mlops.processes import telemetry_off_env

    env = {k: v for k, v in telemetry_off_env().items() if not k.startswith(("PREFECT_", "MLOPS_"))}
    return env | {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home / "prefect-client"),
        "MLOPS_HOME": str(home),
        "MLOPS_MLFLOW_UI_URL": mlflow_ui_url,
        "OMP_NUM_THREADS": "1",
    }


def _port(preferred: int) -> int:
    import socket

    from prefect_mlops.processes import free_port, http_ok

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred if not http_ok(f"http://127.0.0.1:{preferred}/") else free_port()


def _run(command: list[str], *, cwd: Path, env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise DemoLoopError(
            f"{what} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )


class _Api:
    """The few Prefect API reads the demo waits on (a sync client per call)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings(updates={PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def deployment_ids(self) -> dict[str, Any]:
        """Every deployment's id by deployment name."""
        with self.client() as client:
            return {d.name: d.id for d in client.read_deployments()}

    def runs(self, deployment_id: Any) -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.client.schemas.sorting import FlowRunSort

        with self.client() as client:
            return list(
                client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                )
            )

    def run(self, run_id: Any) -> Any:
        with self.client() as client:
            return client.read_flow_run(run_id)

    def events(self, name: str, model_name: str) -> list[Any]:
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        from prefect_mlops.events import model_resource_id

        flt = EventFilter(
            event=EventNameFilter(name=[name]),
            resource=EventResourceFilter(id=[model_resource_id(model_name)]),
        )
        with self.client() as client:
            return sorted(client.read_events(filter=flt, limit=50).events, key=lambda e: e.occurred)


def _wait(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise DemoLoopError(f"{what}: not within {timeout:.0f} s\n{logs()}")


def run_demo_loop(
    mlops_home: Path,
    report: Reporter,
    *,
    model_name: str = DEMO_MODEL,
    prefect_port: int = 4200,
    cooldown_seconds: int = DEMO_RETRAIN_COOLDOWN_SECONDS,
    timeout: float = 600.0,
    wait: Callable[[LoopResult], None] | None = None,
) -> LoopResult:
    """Run the closed loop (the module docstring) in ``loop_home(mlops_home)``; returns what
    happened. ``report`` is called at each step. ``wait``, when given, is called with the
    result before anything is stopped (``--keep-running``: it returns on Ctrl-C); the MLflow UI
    is started for it. ``prefect_port`` is used when free, else any free loopback port.

    Raises DemoLoopError naming the step that failed or timed out (``timeout`` seconds per
    wait), and the package's errors of the steps it runs in this process (training).
    """
    clock = _Clock(report)
    home = loop_home(mlops_home).resolve()
    from prefect_mlops.cli.prefect_api import start_local_server, stop_local_server
    from prefect_mlops.settings import Settings

    settings = Settings(home=home)
    stop_local_server(settings)  # a server kept running by an earlier demo
    shutil.rmtree(home, ignore_errors=True)
    project = home / "project"
    project.mkdir(parents=True)
    port = _port(prefect_port)
    api_url = f"http://127.0.0.1:{port}/api"
    mlflow_port = _port(5000)
    mlflow_ui = f"http://127.0.0.1:{mlflow_port}"
    service_port = _port(3000)
    service_url = f"http://127.0.0.1:{service_port}"
    env = _subprocess_env(home, api_url, mlflow_ui)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "MLOPS_"))})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the steps say what happens
    result = LoopResult(model_name=model_name, champion_before="")
    result.urls = {
        "Prefect UI": f"http://127.0.0.1:{port}",
        "MLflow UI": mlflow_ui,
        "service": f"{service_url}/metadata",
    }
    bin_dir = Path(sys.executable).parent
    started: list[Any] = []  # ServerProcess objects to stop, newest last
    from prefect_mlops.processes import start_server, stop_process

    def _stop_all(servers: list[Any]) -> None:
        for server in reversed(servers):
            stop_process(server.process)

    with contextlib.ExitStack() as stack:
        stack.callback(lambda: _stop_server(settings))
        stack.callback(lambda: _stop_all(started))
        # -- set-up: the server starts while this process imports the training stack --------
        server = threading.Thread(target=lambda: start_local_server(settings, port), daemon=True)
        server.start()
        from prefect_mlops.cli.environment import import_model_format_first

        import_model_format_first()
        from prefect_mlops.config import TrainingConfig
        from prefect_mlops.data.demo import DEMO_TARGET, generate_churn
        from prefect_mlops.flows.training import continuous_training

        data_path = project / "churn.csv"
        first = generate_churn(TRAIN_ROWS, seed=0)
        first.to_csv(data_path, index=False)
        raw = loop_training_config(data_path, model_name)
        (project / "train.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        server.join(timeout=240)
        _wait(
            "the Prefect server",
            lambda: _healthy(api_url),
            60,
            lambda: _log(home / "prefect" / "server.log"),
        )
        clock.step("Prefect server", f"up at {result.urls['Prefect UI']}")
        outcome = continuous_training(TrainingConfig.model_validate({**raw, "promote": True}))
        if outcome.status != "blessed":
            raise DemoLoopError(f"the first champion was not blessed: {outcome.reason}")
        result.champion_before = outcome.version
        clock.step("champion trained", f"v{outcome.version} ({outcome.reason})")
        # -- deploy the loop while the service starts ------------------------------------------
        (project / "prefect.yaml").write_text(
            yaml.safe_dump(
                loop_deployments(model_name, project=project, service_url=service_url,
                                 cooldown_seconds=cooldown_seconds),
                sort_keys=False,
            )
        )  # fmt: skip
        from prefect_mlops.serving.process import service_command, wait_ready

        service_env = env | settings.location_env() | {
            "MLOPS_SERVE_MODEL_NAME": model_name,
            "MLOPS_SERVE_RELOAD_SECONDS": "1",
            "MLOPS_SERVING_LOG_FLUSH_SECONDS": "1",
            "PYTHONSAFEPATH": "1",
        }  # fmt: skip
        service_dir = home / "service"
        service_dir.mkdir(mode=0o700)
        service = start_server(
            service_command("127.0.0.1", service_port), env=service_env, cwd=service_dir,
            log_path=home / "logs" / "service.log",
        )  # fmt: skip
        started.append(service)
        prefect = str(bin_dir / "prefect")
        _run([prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
             cwd=project, env=env, what="prefect work-pool create")  # fmt: skip
        worker = start_server(
            [prefect, "worker", "start", "--pool", POOL, "--type", "process"],
            env=env | {"PREFECT_WORKER_QUERY_SECONDS": "1"}, cwd=project,
            log_path=home / "logs" / "worker.log",
        )  # fmt: skip
        started.append(worker)
        _run([prefect, "deploy", "--all", "--no-prompt"], cwd=project, env=env,
             what="prefect deploy --all")  # fmt: skip
        clock.step("loop deployed", f"{', '.join(LOOP_PROCESSES)}; worker on pool {POOL!r}")
        from prefect_mlops.serving.process import RunningService

        running = RunningService(url=service_url, server=service)
        wait_ready(running, "/readyz", 240)
        clock.step("service up", f"{service_url} serves v{result.champion_before}")
        result.setup_seconds = time.time() - clock.start
        # -- traffic: clean, then drifted without a pause --------------------------------------
        from prefect_mlops.serving.process import send_rows

        clean = generate_churn(CLEAN_ROWS, seed=1).drop(columns=[DEMO_TARGET])
        probe = send_rows(service_url, clean, rows_per_request=ROWS_PER_REQUEST)
        clock.step("clean traffic", f"{len(clean)} rows, {probe.errors} failed requests")
        drifted = generate_churn(DRIFTED_ROWS, seed=2, covariate_shift=COVARIATE_SHIFT)
        onset = datetime.now(UTC)
        result.times.drift_onset = clock.step(
            "drift onset", f"traffic with covariate_shift={COVARIATE_SHIFT}, sent until the end"
        )
        traffic = _Traffic(service_url, drifted.drop(columns=[DEMO_TARGET]))
        traffic.start()
        stack.callback(traffic.stop)
        # The drifted rows' labels arrive in the training table: the retrain has new data.
        import pandas as pd

        pd.concat([first, drifted], ignore_index=True).to_csv(data_path, index=False)
        _wait(
            "60 drifted requests", lambda: traffic.requests >= 60, 120, lambda: running.log_tail()
        )
        time.sleep(1.5)  # the serving log flushes every second
        api = _Api(api_url)
        from prefect_mlops import automations, events

        ids = api.deployment_ids()
        training_id = ids[automations.deployment_name(model_name, "continuous-training")]
        rollout_id = ids[automations.deployment_name(model_name, "model-deployment")]
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            monitoring: Any = run_deployment(
                ids[automations.deployment_name(model_name, "monitoring")],
                parameters={"model_name": model_name, "start": onset.isoformat()},
                timeout=0,
                as_subflow=False,
            )
        clock.step("monitoring started", f"flow run {monitoring.name} over the drifted window")
        logs = lambda: "worker log:\n" + worker.log_tail(30)  # noqa: E731
        (drift,) = _wait(
            "mlops.drift.detected",
            lambda: api.events(events.DRIFT_DETECTED, model_name)[:1],
            timeout, logs,
        )  # fmt: skip
        result.times.drift_event = drift.occurred.timestamp()
        clock.step("drift detected", str(drift.payload.get("reason", "")))
        (retrain,) = _wait("the retrain run", lambda: api.runs(training_id)[:1], timeout, logs)
        result.times.retrain_created = retrain.created.timestamp()
        retrain = _wait(
            "the retrain run starting",
            lambda: (r := api.run(retrain.id)).start_time and r, timeout, logs,
        )  # fmt: skip
        result.times.retrain_started = retrain.start_time.timestamp()
        waited = result.times.between("drift_event", "retrain_started") or 0.0
        clock.step("retrain started", f"flow run {retrain.name}, {waited:.1f} s after the event")
        retrain = _wait("the retrain", lambda: _terminal(api.run(retrain.id)), timeout, logs)
        if retrain.state_type.value != "COMPLETED":
            raise DemoLoopError(
                f"the retrain ended {retrain.state_type.value}: {retrain.state.message}\n{logs()}"
            )
        champion_before = result.champion_before

        def announced() -> list[Any]:
            found = api.events(events.MODEL_BLESSED, model_name)
            found += api.events(events.MODEL_NOT_BLESSED, model_name)
            return [e for e in found if str(e.payload.get("version")) != champion_before]

        (decided,) = _wait("the retrain's blessing event", lambda: announced()[:1], 60, logs)
        blessed = [decided] if decided.event == events.MODEL_BLESSED else []
        if not blessed:
            raise DemoLoopError(
                f"the retrained model was not blessed: {decided.payload.get('reason')}"
            )
        result.new_version, result.blessed = str(blessed[-1].payload["version"]), True
        result.times.blessed_event = blessed[-1].occurred.timestamp()
        clock.step("blessed", f"v{result.new_version}: {blessed[-1].payload.get('reason', '')}")
        (rollout,) = _wait(
            "the model-deployment run", lambda: api.runs(rollout_id)[:1], timeout, logs
        )
        rollout = _wait(
            "the canary starting",
            lambda: (r := api.run(rollout.id)).start_time and r,
            timeout,
            logs,
        )
        result.times.rollout_started = rollout.start_time.timestamp()
        clock.step("canary started", f"flow run {rollout.name}: infra-validation, then the canary")
        rollout = _wait("the canary", lambda: _terminal(api.run(rollout.id)), timeout, logs)
        result.times.rollout_ended = (
            rollout.end_time.timestamp() if rollout.end_time else time.time()
        )
        if rollout.state_type.value != "COMPLETED":
            raise DemoLoopError(f"the model-deployment run ended {rollout.state_type.value}: "
                                f"{rollout.state.message}\n{logs()}")  # fmt: skip
        from prefect_mlops import registry
        from prefect_mlops.registry import lineage

        client = registry.mlflow_client(settings)
        result.rollout_result = client.get_model_version(model_name, result.new_version).tags.get(
            lineage.ROLLOUT_RESULT
        )
        result.champion_after = registry.alias_state(client, model_name).get("champion")
        clock.step("canary decided", f"v{result.new_version} {result.rollout_result}; "
                   f"champion v{result.champion_after}")  # fmt: skip
        meta = _wait(
            "the service answering with the champion",
            lambda: _serves(service_url, result.champion_after), 120, running.log_tail,
        )  # fmt: skip
        result.answering_version = str(meta["model_version"])
        result.times.new_champion_answering = clock.step(
            "service answers", f"v{result.answering_version} at {service_url}/predict"
        )
        result.retrain_runs = len(api.runs(training_id))
        result.drift_events = len(api.events(events.DRIFT_DETECTED, model_name))
        result.total_seconds = time.time() - clock.start
        traffic.stop()
        report("traffic", result.total_seconds, f"{traffic.requests} requests, {traffic.errors} "
               f"failed, answered by {traffic.versions}")  # fmt: skip
        (home / "result.json").write_text(result.to_json())
        if wait is not None:
            ui = start_server(
                [str(bin_dir / "mlflow"), "ui",
                 "--backend-store-uri", settings.resolved_tracking_uri,
                 "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
                env=env, cwd=home, log_path=home / "logs" / "mlflow-ui.log",
            )  # fmt: skip
            started.append(ui)
            wait(result)
    return result


def _stop_server(settings: Any) -> None:
    """Send what this process still queues (events, logs) while the server answers, then stop
    the server; its process is this process's child, so it is reaped here (a zombie would keep
    ``stop_local_server`` waiting for its full timeout)."""
    from prefect_mlops.cli.prefect_api import stop_local_server

    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        EventsWorker.drain_all(timeout=10)
        APILogWorker.drain_all(timeout=10)
    stopping = threading.Thread(target=stop_local_server, args=(settings,), daemon=True)
    stopping.start()
    while stopping.is_alive():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)
        stopping.join(0.2)


def _healthy(api_url: str) -> bool:
    from prefect_mlops.processes import http_ok

    return http_ok(api_url + "/health")


def _log(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:])
    except OSError:
        return ""


def _terminal(run: Any) -> Any:
    return run if run.state_type.value in TERMINAL else None


def _serves(url: str, version: str | None) -> dict[str, Any] | None:
    import httpx

    try:
        meta = httpx.get(url + "/metadata", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    ok = str(meta.get("model_version")) == str(version) and meta.get("rollout") is None
    return meta if ok else None
