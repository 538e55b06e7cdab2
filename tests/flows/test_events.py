"""Events reach a real Prefect API from inside a flow run, or the run fails and says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prefect import flow

from prefect_mlops import events
from prefect_mlops.errors import PrefectAPIError


async def _read(name: str, resource: str) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for _ in range(50):
            page = await client.read_events(limit=50)
            found = [e for e in page.events if e.event == name and e.resource.id == resource]
            if found:
                return found
            await asyncio.sleep(0.2)
    return []


@pytest.mark.usefixtures("prefect_api")
def test_an_event_emitted_in_a_flow_run_is_stored_with_the_run_related() -> None:
    @flow(name="emits-drift")
    def emits() -> Any:
        return events.emit(
            events.DRIFT_DETECTED,
            "events-model",
            version="4",
            reason="2 of 9 columns drifted",
            payload={"drifted_columns": ["age", "region"]},
        )

    sent = emits()
    assert sent is not None
    [stored] = asyncio.run(_read("mlops.drift.detected", "mlops.model.events-model"))
    assert stored.id == sent.id
    assert stored.payload["drifted_columns"] == ["age", "region"]
    assert stored.payload["version"] == "4"
    roles = {r.role for r in stored.related}
    assert {"model-version", "flow-run", "flow"} <= roles


def test_an_unreachable_api_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_mlops.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    with (
        temporary_settings({PREFECT_API_URL: url}),
        pytest.raises(PrefectAPIError, match=r"cannot emit mlops\.model\.failing for 'm'"),
    ):
        events.emit(events.MODEL_FAILING, "m", version="1", reason="5xx rate 30 %")
