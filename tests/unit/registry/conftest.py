"""Fixtures of the registry tests: one real MLflow SQLite store shared by them, one model name
per test (see ``registry_store``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from registry_store import Registry

from prefect_mlops import registry
from prefect_mlops.settings import get_settings


@pytest.fixture(scope="package")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """One real MLflow SQLite store for the registry tests (migrated once), with a tiny scikit-learn
    model logged once in a real MLflow run: (MLOPS_HOME, run_id, model_uri). Each test
    registers versions of that model under a model name of its own."""
    from sklearn.linear_model import LogisticRegression

    from prefect_mlops.registry.tracking import log_sklearn_model, start_training_run

    home = tmp_path_factory.mktemp("registry") / "mlops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        settings = get_settings()
        registry.configure_mlflow(settings)
        client = registry.mlflow_client(settings)
        X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        model = LogisticRegression().fit(X, [0, 0, 1, 1])
        experiment_id = registry.ensure_experiment(
            client, "reg-test", settings.resolved_artifact_location
        )
        run_id = start_training_run(client, experiment_id, "unit", {})
        uri = log_sklearn_model(run_id, model, X)
        client.set_terminated(run_id, "FINISHED")
        yield home, run_id, uri


@pytest.fixture
def reg(
    store: tuple[Path, str, str], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    home, run_id, uri = store
    monkeypatch.setenv("MLOPS_HOME", str(home))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
        monkeypatch.delenv(key, raising=False)
    settings = get_settings()
    registry.configure_mlflow(settings)
    name = "reg-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    return Registry(registry.mlflow_client(settings), name, run_id, uri)
