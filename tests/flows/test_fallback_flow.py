"""The champion-fallback flow under a real Prefect API and a real MLflow SQLite registry."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from prefect_mlops import events, registry
from prefect_mlops.errors import ModelNotFoundError
from prefect_mlops.flows.fallback import champion_fallback
from prefect_mlops.registry import lineage
from prefect_mlops.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_api")
FIGURES = "error rate 0.2 > max 0.01 over 300 requests; p99 900 ms > SLO 500 ms"


def _models(home: Path, name: str, champions: int) -> Any:
    """A model with ``champions`` versions, each promoted in turn (no model is logged: the
    fallback only reads and writes the registry)."""
    client = registry.mlflow_client(get_settings())
    for _ in range(champions):
        version = registry.create_version(
            client, model_name=name, model_uri=str(home / "no-model"), run_id=None, tags={},
            blessed=True, reason="test",
        )  # fmt: skip
        registry.promote_version(client, name, version, reason=f"v{version}")
    return client


async def _artifact(run_id: Any, key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    async with get_client() as client:
        (found,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        )
    return str(found.data)


async def _rolled_back_events(resource: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for _ in range(50):
            page = await client.read_events(limit=50)
            found = [
                e
                for e in page.events
                if e.event == events.MODEL_ROLLED_BACK and e.resource.id == resource
            ]
            if found:
                return found
            await asyncio.sleep(0.2)
    return []


def test_failing_champion_falls_back_and_says_so(mlops_home: Path) -> None:
    client = _models(mlops_home, "fb-flow", 2)
    state = champion_fallback("fb-flow", "2", FIGURES, return_state=True)
    outcome = state.result()
    assert (outcome.action, outcome.champion_before, outcome.champion_after) == (
        "rolled_back",
        "2",
        "1",
    )
    assert registry.alias_state(client, "fb-flow")["champion"] == "1"
    assert FIGURES in registry.alias_history(client, "fb-flow")[-1].reason
    assert client.get_model_version("fb-flow", "2").tags[lineage.FAILING_REASON] == FIGURES
    run_id = state.state_details.flow_run_id
    markdown = asyncio.run(_artifact(run_id, "champion-fallback"))
    assert "champion moved back" in markdown and FIGURES in markdown
    (sent,) = asyncio.run(_rolled_back_events(events.model_resource_id("fb-flow")))
    assert sent.payload["version"] == "2" and sent.payload["previous_champion"] == "1"
    assert FIGURES in sent.payload["reason"]
    assert str(run_id) in {r.id.removeprefix("prefect.flow-run.") for r in sent.related}


def test_no_previous_champion_is_alerted_not_touched(
    mlops_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _models(mlops_home, "fb-alone", 1)
    with caplog.at_level(logging.WARNING):
        state = champion_fallback("fb-alone", "1", FIGURES, return_state=True)
    outcome = state.result()
    assert (outcome.action, outcome.champion_after) == ("no_target", "1")
    assert registry.alias_state(client, "fb-alone")["champion"] == "1"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ALERT" in r.getMessage() and "fb-alone" in r.getMessage() for r in warnings)
    markdown = asyncio.run(_artifact(state.state_details.flow_run_id, "champion-fallback"))
    assert "ALERT: failing champion kept" in markdown and "no previous champion" in markdown


def test_a_stale_event_moves_nothing(mlops_home: Path) -> None:
    client = _models(mlops_home, "fb-stale", 2)
    outcome = champion_fallback("fb-stale", "1", FIGURES)
    assert outcome.action == "stale" and outcome.champion_after == "2"
    assert registry.alias_state(client, "fb-stale")["champion"] == "2"


def test_an_unknown_model_fails_the_run_naming_it(mlops_home: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="'fb-nobody' is not registered"):
        champion_fallback("fb-nobody", "1", FIGURES)
