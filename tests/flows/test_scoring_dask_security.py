"""The local Dask cluster of batch scoring listens on loopback only: its scheduler and its
dashboard (which shows every task and its data) are not served on other interfaces."""

from __future__ import annotations

import ipaddress

import pytest

from prefect_mlops.flows.scoring import dask_task_runner
from prefect_mlops.scoring.config import ScoringConfig

BASE = {"model_name": "m", "data": {"path": "x.csv"}, "output_dir": "out", "runner": "dask"}


def _loopback(host: str) -> bool:
    return ipaddress.ip_address(host.strip("[]")).is_loopback


def test_the_cluster_is_built_on_loopback() -> None:
    kwargs = dask_task_runner(ScoringConfig.model_validate(BASE)).cluster_kwargs
    assert kwargs["host"] == "127.0.0.1"
    host, _, port = kwargs["dashboard_address"].rpartition(":")
    assert _loopback(host) and port == "0"


@pytest.mark.timeout(120)
def test_the_running_dashboard_and_scheduler_listen_on_loopback_only() -> None:
    from distributed import LocalCluster

    kwargs = dask_task_runner(ScoringConfig.model_validate(BASE)).cluster_kwargs
    # The scheduler alone (no worker process to wait for) serves the dashboard.
    with LocalCluster(**{**kwargs, "n_workers": 0}) as cluster:
        scheduler = cluster.scheduler
        sockets = list(scheduler.http_server._sockets.values())
        assert sockets, "the dashboard is not served"
        bound = {sock.getsockname()[0] for sock in sockets}
        assert all(_loopback(h) for h in bound), bound
        assert _loopback(scheduler.address.removeprefix("tcp://").rpartition(":")[0])
