"""Prefect events of the MLOps lifecycle: every name, resource and payload rule, and the one
function that emits them.

Each event concerns the resource ``mlops.model.<name>`` (labels ``prefect.resource.name`` and
``mlops.model_name``) and, when a version is involved, names it as a related resource with role
``model-version`` (``mlops.model.<name>.version.<version>``, label ``mlops.version``); inside a
flow or task run, the run, its flow and deployment are related too. Payloads carry the figures
that caused the event and, always, ``model_name``, ``version`` and ``reason``: deployment
triggers template their parameters from them (``{{ event.payload.version }}``).

:func:`emit` sends the event itself, synchronously, and raises when it cannot: Prefect's
``emit_event`` only queues (and returns None without a client), so a run that must emit and
cannot would otherwise lose the event silently. Events are kept 7 days on a Prefect server;
the monitoring history lives in MLflow, not here.
"""

from __future__ import annotations

from typing import Any

from prefect_mlops.errors import PrefectAPIError

DRIFT_DETECTED = "mlops.drift.detected"
SKEW_DETECTED = "mlops.skew.detected"
QUALITY_DEGRADED = "mlops.quality.degraded"
DATA_ARRIVED = "mlops.data.arrived"
MODEL_BLESSED = "mlops.model.blessed"
MODEL_NOT_BLESSED = "mlops.model.not_blessed"
MODEL_PROMOTED = "mlops.model.promoted"
MODEL_ROLLED_BACK = "mlops.model.rolled_back"
MODEL_FAILING = "mlops.model.failing"

#: Every event this package emits, in lifecycle order.
EVENTS: tuple[str, ...] = (
    DATA_ARRIVED,
    MODEL_BLESSED,
    MODEL_NOT_BLESSED,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
    SKEW_DETECTED,
    DRIFT_DETECTED,
    QUALITY_DEGRADED,
    MODEL_FAILING,
)
#: The events that ask for a retrain (continuous training's triggers).
RETRAIN_EVENTS: tuple[str, ...] = (DRIFT_DETECTED, QUALITY_DEGRADED, DATA_ARRIVED)

RESOURCE_PREFIX = "mlops.model."
VERSION_ROLE = "model-version"
#: Payload fields every event carries (what triggers template from).
REQUIRED_PAYLOAD = ("model_name", "version", "reason")


def model_resource_id(model_name: str) -> str:
    """The resource id of a registered model: ``mlops.model.<name>``."""
    return f"{RESOURCE_PREFIX}{model_name}"


def model_resource(model_name: str) -> dict[str, str]:
    """The primary resource of every event about ``model_name``."""
    return {
        "prefect.resource.id": model_resource_id(model_name),
        "prefect.resource.name": model_name,
        "mlops.model_name": model_name,
    }


def version_resource(model_name: str, version: str) -> dict[str, str]:
    """The related resource naming a model version (role ``model-version``)."""
    return {
        "prefect.resource.id": f"{model_resource_id(model_name)}.version.{version}",
        "prefect.resource.role": VERSION_ROLE,
        "prefect.resource.name": f"{model_name} v{version}",
        "mlops.version": str(version),
    }


def build_event(
    event: str,
    model_name: str,
    *,
    version: str | int | None,
    reason: str,
    payload: dict[str, Any] | None = None,
    related: list[dict[str, str]] | None = None,
) -> Any:
    """The :class:`prefect.events.Event` (not sent). Raises ValueError for a name that is not
    one of :data:`EVENTS` (a typo would make an event no trigger ever matches)."""
    from prefect.events import Event, RelatedResource, Resource

    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; the package emits {list(EVENTS)}")
    body = {
        **(payload or {}),
        "model_name": model_name,
        "version": None if version is None else str(version),
        "reason": reason,
    }
    resources = [version_resource(model_name, str(version))] if version is not None else []
    return Event(
        event=event,
        resource=Resource(model_resource(model_name)),
        related=[RelatedResource(r) for r in [*resources, *(related or [])]],
        payload=body,
    )


async def _send(event: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.clients import get_events_client
    from prefect.events.related import related_resources_from_run_context

    async with get_client() as client:
        exclude = {r.id for r in event.involved_resources}
        event.related = [
            *event.related,
            *await related_resources_from_run_context(client=client, exclude=exclude),
        ]
    async with get_events_client(reconnection_attempts=2) as events:
        await events.emit(event)


def emit(
    event: str,
    model_name: str,
    *,
    version: str | None,
    reason: str,
    payload: dict[str, Any] | None = None,
) -> Any:
    """Send ``event`` about ``model_name`` (and ``version``) to the Prefect API now; returns
    the sent :class:`prefect.events.Event`.

    Raises PrefectAPIError naming the event and the API when it cannot be sent (server
    unreachable, no API configured): the caller's run fails and says so.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.utilities.asyncutils import run_coro_as_sync

    from prefect_mlops.secrets import mask_url

    built = build_event(event, model_name, version=version, reason=reason, payload=payload)
    try:
        run_coro_as_sync(_send(built))
    except Exception as exc:
        api = mask_url(str(PREFECT_API_URL.value() or "no PREFECT_API_URL"))
        raise PrefectAPIError(
            f"cannot emit {event} for {model_name!r} to the Prefect API ({api}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return built
