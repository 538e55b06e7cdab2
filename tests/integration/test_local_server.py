"""The README's Prefect route on a real server: `prefect-mlops server start` (what `make server`
runs) on a free loopback port, `make deploy`, `prefect deploy --all` in a terminal with nothing to
answer, the CLI's flows running on that server, `server stop`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_mlops.processes import free_port

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("prefect-mlops"))


class Shell:
    """A new shell's environment (as the README's commands get it) with its own MLOPS_HOME."""

    def __init__(self, tmp: Path) -> None:
        (tmp / "user-home").mkdir()
        self.home = tmp / "mlops-home"
        self.env = {"HOME": str(tmp / "user-home"), "PATH": "/usr/bin:/bin"}
        self.env |= {"MLOPS_HOME": str(self.home), "COLUMNS": "200"}

    def run(self, command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shell, str]]:
    shell = Shell(tmp_path_factory.mktemp("local-server"))
    port = free_port()
    try:
        started = shell.run(f"{CLI} server start --port {port}")
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{port}/api"
        assert f"Prefect server started: {url}" in started.stdout
        yield shell, url
    finally:
        state = shell.home / "prefect" / "server.json"
        pid = json.loads(state.read_text())["pid"] if state.exists() else None
        shell.run(f"{CLI} server stop")
        if pid is not None:  # never leave it behind, whatever a test did
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_server_url_names_it_and_start_reuses_it(server: tuple[Shell, str]) -> None:
    shell, url = server
    done = shell.run(f"{CLI} server url")
    assert (done.returncode, done.stdout.strip()) == (0, url), done.stderr
    again = shell.run(f"{CLI} server start --port {free_port()}")
    assert again.returncode == 0 and f"already running: {url}" in again.stdout


def test_make_deploy_and_prefect_deploy_in_a_terminal_ask_nothing(
    server: tuple[Shell, str],
) -> None:
    shell, url = server
    deployed = shell.run("make -o .venv/.synced deploy")
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert deployed.stdout.count("successfully created") == len(declared["deployments"])
    # Again from a terminal (where Prefect would prompt), stdin closed: a question would fail.
    if shutil.which("script"):
        tty = shell.run('source env.sh && script -qec "prefect deploy --all" /dev/null')
        assert tty.returncode == 0, tty.stdout[-3000:]
        assert "Would you like" not in tty.stdout and "[y/n]" not in tty.stdout
        # Each deployment done ends with its `prefect deployment run '<flow>/<name>'` hint.
        assert tty.stdout.count("$ prefect deployment run '") == len(declared["deployments"])
    _assert_deployed_as_declared(url, declared)


def _assert_deployed_as_declared(url: str, declared: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> tuple[list, dict[str, list]]:
        async with get_client() as client:
            found = await client.read_deployments()
            owned = {
                d.name: await client.read_resource_related_automations(f"prefect.deployment.{d.id}")
                for d in found
            }
            return found, owned

    with temporary_settings(updates={PREFECT_API_URL: url}):
        found, automations = asyncio.run(read())
    deployments = {d.name: d for d in found}
    assert set(deployments) == {d["name"] for d in declared["deployments"]}
    for spec in declared["deployments"]:
        deployment = deployments[spec["name"]]
        assert deployment.parameters == spec["parameters"], spec["name"]
        assert deployment.work_pool_name == spec["work_pool"]["name"]
        # `prefect deploy` fills in {{ $PWD }}: the flows run in the checkout deployed from.
        (step,) = deployment.pull_steps or []
        directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
        assert Path(directory) == REPO
        schedules = [(*_schedule(s.schedule), s.active) for s in deployment.schedules]
        assert schedules == [(*_declared(s), False) for s in spec["schedules"]]
        _assert_triggers_and_limit(deployment, automations[spec["name"]], spec)


def _assert_triggers_and_limit(deployment: Any, automations: list, spec: dict[str, Any]) -> None:
    """Each declared trigger is an automation that runs this deployment with the trigger's
    parameters (templates kept for the server to render); the concurrency limit as declared."""
    declared = spec.get("triggers", [])
    assert sorted(a.name for a in automations) == sorted(t["name"] for t in declared)
    for trigger in declared:
        (automation,) = [a for a in automations if a.name == trigger["name"]]
        assert automation.enabled is True
        assert automation.trigger.expect == set(trigger["expect"])
        assert automation.trigger.match.model_dump() == trigger["match"]
        assert automation.trigger.within.total_seconds() == trigger["within"]
        assert (automation.trigger.posture, automation.trigger.threshold) == ("Reactive", 1)
        (action,) = automation.actions
        assert (action.type, action.deployment_id) == ("run-deployment", deployment.id)
        assert action.parameters == trigger["parameters"]
    limit = spec.get("concurrency_limit")
    if limit is None:
        assert deployment.global_concurrency_limit is None, spec["name"]
        return
    assert deployment.global_concurrency_limit.limit == limit["limit"], spec["name"]
    assert deployment.concurrency_options.collision_strategy == limit["collision_strategy"]


def _schedule(schedule: Any) -> tuple[Any, ...]:
    """A server-side schedule as (cron, timezone) or (interval seconds,)."""
    if hasattr(schedule, "interval"):
        return (schedule.interval.total_seconds(),)
    return (schedule.cron, schedule.timezone)


def _declared(spec: dict[str, Any]) -> tuple[Any, ...]:
    """A prefect.yaml schedule in the form of :func:`_schedule`."""
    return (float(spec["interval"]),) if "interval" in spec else (spec["cron"], spec["timezone"])


def test_the_cli_flows_run_on_it(server: tuple[Shell, str]) -> None:
    """No PREFECT_API_URL in the shell: a command's flow finds the running local server."""
    shell, url = server
    probe = (
        "import os\n"
        "from prefect_mlops.cli.environment import prepare_flow_process\n"
        "prepare_flow_process(loads_models=False)\n"  # before Prefect reads its settings
        "from prefect import flow\n"
        "@flow(name='local-server-probe', persist_result=False)\n"
        "def probe():\n"
        "    return 1\n"
        "state = probe(return_state=True)\n"
        "print(os.environ['PREFECT_API_URL'], state.state_details.flow_run_id)\n"
    )
    done = shell.run(f'{sys.executable} -c "{probe}"')
    assert done.returncode == 0, done.stderr[-3000:]
    used, run_id = done.stdout.split()[-2:]
    assert used == url

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).name

    with temporary_settings(updates={PREFECT_API_URL: url}):
        assert asyncio.run(read())


def test_stop_then_no_server(server: tuple[Shell, str]) -> None:
    shell, _ = server
    stopped = shell.run(f"{CLI} server stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    done = shell.run(f"{CLI} server url")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: no Prefect server: start one with `make server` (or set PREFECT_API_URL)"
    )
