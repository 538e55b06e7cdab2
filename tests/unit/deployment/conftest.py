"""Fixtures of the deployment unit tests: one real MLflow SQLite registry shared by them (migrated
once), a model name of each test's own, and versions registered from a folder (no model is
logged: the decisions, candidate and rollout code only read and write the registry)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefect_mlops import registry
from prefect_mlops.settings import get_settings


@dataclass
class Models:
    """The shared registry as one test sees it: a client and a model name of its own."""

    client: Any
    name: str
    folder: Path

    def version(self, *, run_id: str | None = None) -> str:
        """A new version of the model (no alias moves); returns its number."""
        return registry.create_version(
            self.client, model_name=self.name, model_uri=str(self.folder), run_id=run_id,
            tags={}, blessed=True, reason="unit test",
        )  # fmt: skip

    def aliases(self) -> dict[str, str]:
        return registry.alias_state(self.client, self.name)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)


@pytest.fixture(scope="package")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MLOPS_HOME of one real SQLite registry (migrated once for the package)."""
    home = tmp_path_factory.mktemp("deployment-registry") / "mlops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        registry.configure_mlflow(get_settings())  # `models:/` URIs load from this registry
        registry.mlflow_client(get_settings()).search_registered_models()
        yield home


@pytest.fixture
def models(
    registry_home: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Models:
    monkeypatch.setenv("MLOPS_HOME", str(registry_home))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SERVING_LOG_DIR"):
        monkeypatch.delenv(key, raising=False)
    name = "dep-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:80]
    folder = registry_home.parent / "no-model-here"
    return Models(registry.mlflow_client(get_settings()), name, folder)
