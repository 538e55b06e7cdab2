"""Shared fixtures: telemetry off, a real Prefect API, MLflow on SQLite in tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from other_tables import cases, trained_cases  # noqa: F401 (fixtures: multiclass, regression)

from prefect_mlops.processes import TELEMETRY_OFF

for _key, _value in {**TELEMETRY_OFF, "OMP_NUM_THREADS": "1"}.items():
    os.environ[_key] = _value


#: What MLflow or the CLI would write into the working directory if a test forgot to point them
#: at tmp_path (MLflow's default store is ./mlflow.db, the CLI's default home is ./.mlops).
_STRAY = ("mlflow.db", "mlruns", "mlartifacts", ".mlops")


@pytest.fixture(scope="session", autouse=True)
def _checkout_stays_clean() -> Iterator[None]:
    """Fail the session when a test wrote one of ``_STRAY`` into the checkout."""
    root = Path(__file__).resolve().parents[1]
    before = {name for name in _STRAY if (root / name).exists()}
    yield
    created = [name for name in _STRAY if (root / name).exists() and name not in before]
    assert not created, f"tests wrote {created} into {root}: point them at tmp_path"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real, temporary Prefect API for flow tests (``prefect_test_harness``)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``MLOPS_HOME`` (MLflow SQLite store, artifacts, snapshots) under tmp_path."""
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
        monkeypatch.delenv(key, raising=False)
    yield home
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.end_run()


_LAYERS = {"unit": "unit", "flows": "flow", "integration": "integration"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in: tests/unit (fast, no Prefect API, no server),
    tests/flows (a real Prefect API) and tests/integration (real servers and subprocesses)."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        marker = _LAYERS.get(parts[0]) if len(parts) > 1 else None
        if marker:
            item.add_marker(marker)
