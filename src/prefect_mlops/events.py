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

Payload builders (plain functions of the results, no Prefect): :func:`monitoring_events` (skew,
drift, quality, failing from one monitoring result), :func:`training_event`,
:func:`deployment_event` and :func:`data_arrived_event`; each returns the ``(event, version,
reason, payload)`` to :func:`emit`, payload lists capped at :data:`MAX_LISTED` items (an event
over 1.5 MB is refused). :class:`RetrainTrigger` is the event that asked for a training run, as
a deployment trigger templates it into the run's ``trigger`` parameter;
:func:`parse_trigger` checks it before anything is trained.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefect_mlops.errors import ConfigError, PrefectAPIError

if TYPE_CHECKING:
    from prefect_mlops.config import MonitoringConfig
    from prefect_mlops.monitoring.runner import MonitoringResult

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


# -- payloads ------------------------------------------------------------------------------------

#: Most items a payload list keeps (drifted columns, skew findings, reasons): events stay small.
MAX_LISTED = 20
#: Longest text kept in a payload string (a finding, a reason).
MAX_TEXT = 500


@dataclass(frozen=True)
class PendingEvent:
    """An event to send with :func:`emit`: its name, version, reason and payload."""

    event: str
    version: str | None
    reason: str
    payload: dict[str, Any]


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _capped(items: list[Any]) -> list[Any]:
    return items[:MAX_LISTED]


def skew_payload(result: MonitoringResult) -> dict[str, Any]:
    """The figures of a skewed window: missing and unexpected columns, the number of findings
    and the first findings' text."""
    skew = result.skew or {}
    findings = list(skew.get("findings", []))
    described = [
        f"{'table' if f.get('column') is None else repr(f.get('column'))}: "
        f"{f.get('check')} — {f.get('details')}"
        for f in findings[:MAX_LISTED]
    ]
    return {
        "missing_columns": _capped(list(skew.get("missing_columns", []))),
        "unexpected_columns": _capped(list(skew.get("unexpected_columns", []))),
        "finding_count": len(findings),
        "findings": [_text(d) for d in described],
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "rows": result.rows,
        "monitoring_run_id": result.mlflow_run_id,
    }


def _drifted(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "column": c.get("column"),
            "method": c.get("method"),
            "score": c.get("score"),
            "threshold": c.get("threshold"),
        }
        for c in (section or {}).get("columns", [])
        if c.get("drifted")
    ]


def drift_payload(result: MonitoringResult) -> dict[str, Any]:
    """The figures of a drifted window: drifted feature (and prediction) columns with their
    scores and thresholds, the drifted share against ``drift_share``, both verdicts, the window
    and the MLflow monitoring run."""
    features = result.feature_drift or {}
    drifted = _drifted(features)
    return {
        "drifted_columns": _capped(drifted),
        "drifted_column_count": len(drifted),
        "drifted_share": features.get("drifted_share"),
        "drift_share": features.get("drift_share"),
        "dataset_drift": result.dataset_drift,
        "prediction_drift": result.prediction_drift,
        "prediction_drifted_columns": _capped(_drifted(result.prediction)),
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "rows": result.rows,
        "monitoring_run_id": result.mlflow_run_id,
    }


def _drift_reason(result: MonitoringResult) -> str:
    payload_columns = [c.get("column") for c in _drifted(result.feature_drift)]
    parts = []
    if result.dataset_drift:
        share = (result.feature_drift or {}).get("drifted_share")
        parts.append(
            f"dataset drift: {len(payload_columns)} columns drifted"
            + (f" ({float(share):.0%})" if share is not None else "")
            + f": {', '.join(map(str, payload_columns[:MAX_LISTED]))}"
        )
    if result.prediction_drift:
        names = [c.get("column") for c in _drifted(result.prediction)]
        parts.append(f"prediction drift in {', '.join(map(str, names))}")
    return _text("; ".join(parts))


def quality_payload(result: MonitoringResult, config: MonitoringConfig) -> dict[str, Any]:
    """The quality verdict's figures: metric, value, reference (test set), drop, max_drop and
    ``source`` (``realised`` on late labels, ``estimated`` before them), re-read from the
    result's quality sections with the thresholds of ``config``; plus the reading's message."""
    verdict = _quality_verdict(result, config)
    if verdict is None:
        return {"source": result.quality_source}
    return {
        "metric": verdict.metric,
        "value": verdict.value,
        "reference": verdict.reference,
        "drop": verdict.drop,
        "max_drop": verdict.max_drop,
        "source": verdict.source,
        "message": _text(verdict.message),
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "rows": result.rows,
        "monitoring_run_id": result.mlflow_run_id,
    }


def _quality_verdict(result: MonitoringResult, config: MonitoringConfig) -> Any:
    from prefect_mlops.monitoring.quality import EstimatedQuality, RealisedQuality, quality_verdict

    realised = RealisedQuality(**result.live_quality) if result.live_quality else None
    estimated = EstimatedQuality(**result.estimated_quality) if result.estimated_quality else None
    if realised is None and estimated is None:
        return None
    return quality_verdict(
        estimated=estimated,
        realised=realised,
        metric=config.quality_metric,
        max_drop=config.max_quality_drop,
    )


def failing_payload(result: MonitoringResult, config: MonitoringConfig) -> dict[str, Any]:
    """The efficiency figures of a failing version: its error rate and p99 against the SLO
    (``max_error_rate``, ``latency_p99_ms``) and the reasons."""
    mine = [e for e in result.efficiency if str(e.get("model_version")) == result.version]
    figures = (mine or result.efficiency or [{}])[0]
    return {
        "error_rate": figures.get("error_rate"),
        "p99_ms": figures.get("p99_ms"),
        "requests": figures.get("requests"),
        "server_errors": figures.get("server_errors"),
        "slo": {"max_error_rate": config.max_error_rate, "latency_p99_ms": config.latency_p99_ms},
        "reasons": [_text(r) for r in _capped(result.failing_reasons)],
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "monitoring_run_id": result.mlflow_run_id,
    }


def monitoring_events(result: MonitoringResult, config: MonitoringConfig) -> list[PendingEvent]:
    """The events one monitoring result calls for, each only when its verdict says so: skew,
    drift (dataset drift or prediction drift), quality degraded, failing; none for a window
    with nothing to monitor."""
    if result.status == "nothing_to_monitor":
        return []
    found: list[PendingEvent] = []
    version = result.version
    if result.skewed:
        payload = skew_payload(result)
        reason = "; ".join(
            [*(f"missing column {c!r}" for c in payload["missing_columns"]),
             *(f"unexpected column {c!r}" for c in payload["unexpected_columns"]),
             *payload["findings"][:3]]
        )  # fmt: skip
        found.append(PendingEvent(SKEW_DETECTED, version, _text(f"schema skew: {reason}"), payload))
    if result.dataset_drift or result.prediction_drift:
        found.append(
            PendingEvent(DRIFT_DETECTED, version, _drift_reason(result), drift_payload(result))
        )
    if result.quality_degraded:
        payload = quality_payload(result, config)
        reason = payload.get("message") or f"{result.quality_source} quality degraded"
        found.append(PendingEvent(QUALITY_DEGRADED, version, reason, payload))
    if result.failing:
        reason = _text("failing: " + "; ".join(result.failing_reasons))
        found.append(PendingEvent(MODEL_FAILING, version, reason, failing_payload(result, config)))
    return found


def training_event(
    *,
    status: str,
    version: str,
    metrics: Mapping[str, float],
    champion_before: str | None,
    reason: str,
    run_id: str,
    snapshot_digest: str,
    trigger: RetrainTrigger | None,
) -> PendingEvent | None:
    """``mlops.model.blessed`` / ``mlops.model.not_blessed`` for a registered version (with the
    trigger that caused the run, if any); None for ``unchanged`` (nothing was registered)."""
    if status not in ("blessed", "not_blessed"):
        return None
    payload = {
        "metrics": dict(metrics),
        "champion_before": champion_before,
        "run_id": run_id,
        "snapshot_digest": snapshot_digest,
        "trigger": None if trigger is None else trigger.model_dump(mode="json"),
    }
    name = MODEL_BLESSED if status == "blessed" else MODEL_NOT_BLESSED
    return PendingEvent(name, version, _text(reason), payload)


def deployment_event(
    *,
    result: str,
    version: str,
    previous_champion: str | None,
    strategy: str,
    reason: str,
    figures: Mapping[str, Any] | None = None,
) -> PendingEvent | None:
    """``mlops.model.promoted`` (the candidate became champion) or ``mlops.model.rolled_back``
    (its rollout was rolled back; ``previous_champion`` is the champion kept) with the
    rollout's ``figures`` (canary requests, error rate, p99, quality; shadow agreement); None
    for a ``shadowed`` version (only observed)."""
    names = {"promoted": MODEL_PROMOTED, "rolled_back": MODEL_ROLLED_BACK}
    if result not in names:
        return None
    payload = {
        "previous_champion": previous_champion,
        "strategy": strategy,
        **{k: v for k, v in (figures or {}).items()},
    }
    return PendingEvent(names[result], version, _text(reason), payload)


def data_arrived_event(
    *,
    new_rows: int,
    threshold: int,
    source: str,
    champion_version: str | None,
    basis: str,
) -> PendingEvent | None:
    """``mlops.data.arrived`` when ``new_rows`` reached ``threshold`` (None below it); the
    source as :meth:`DataSource.describe` names it (passwords masked), the version the
    champion."""
    if new_rows < threshold:
        return None
    since = f"since v{champion_version}'s snapshot" if champion_version else "(no champion yet)"
    payload = {
        "new_rows": new_rows,
        "threshold": threshold,
        "source": _text(source),
        "champion_version": champion_version,
        "basis": basis,
    }
    reason = f"{new_rows:,} new rows {since} (threshold {threshold:,}, by {basis})"
    return PendingEvent(DATA_ARRIVED, champion_version, reason, payload)


def emit_pending(model_name: str, pending: PendingEvent) -> Any:
    """:func:`emit` ``pending`` about ``model_name``; returns the sent event, raises like it."""
    return emit(
        pending.event,
        model_name,
        version=pending.version,
        reason=pending.reason,
        payload=pending.payload,
    )


# -- the event that asked for a training run ------------------------------------------------------

_DIGITS = re.compile(r"^[0-9]+$")


class RetrainTrigger(BaseModel):
    """The event that asked for a training run, as a deployment trigger templates it into the
    run's ``trigger`` parameter (``{"event": "{{ event.event }}", "version":
    "{{ event.payload.version }}", "reason": "{{ event.payload.reason }}"}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str = Field(description=f"The event's name: one of {list(RETRAIN_EVENTS)}.")
    version: str | None = Field(
        default=None,
        description="The model version the event was about (digits); null: none (data arrived "
        "before any champion).",
    )
    reason: str = Field(min_length=1, description="Why the event was emitted, in words.")
    model_name: str | None = Field(
        default=None, description="The model the event was about; must be the config's model."
    )


def _field_error(
    field: str, raw: Mapping[str, Any], problem: str, *, templated: bool = True
) -> ConfigError:
    source = {"event": "event.event"}.get(field, f"event.payload.{field}")
    fix = (
        f"the event that triggered this run lacks the field the deployment trigger templates "
        f"({{{{ {source} }}}}): emit it with prefect_mlops.events.emit, which always sets "
        "model_name, version and reason"
        if templated
        else f"a trigger holds only {list(RetrainTrigger.model_fields)}"
    )
    return ConfigError(f"trigger.{field}: {problem} (trigger {dict(raw)!r}); {fix}")


def parse_trigger(
    raw: RetrainTrigger | Mapping[str, Any] | None, model_name: str
) -> RetrainTrigger | None:
    """``raw`` checked: ``event`` one of :data:`RETRAIN_EVENTS`, ``version`` digits or null,
    ``reason`` not empty, ``model_name`` (when given) ``model_name``; None when no trigger.

    Raises ConfigError naming ``trigger.<field>``, the value seen and what lacks it.
    """
    if raw is None:
        return None
    data = raw.model_dump() if isinstance(raw, RetrainTrigger) else dict(raw)
    unknown = sorted(set(data) - set(RetrainTrigger.model_fields))
    if unknown:
        raise _field_error(unknown[0], data, "is not a trigger field", templated=False)
    for field in ("event", "reason"):
        if data.get(field) in (None, ""):
            problem = "is missing" if field not in data else f"is empty ({data[field]!r})"
            raise _field_error(field, data, problem)
    version = data.get("version")
    if version is not None and not (isinstance(version, str | int) and _DIGITS.match(str(version))):
        raise _field_error(
            "version", data, f"must be a version number (digits) or null, got {version!r}"
        )
    if data["event"] not in RETRAIN_EVENTS:
        raise _field_error("event", data, f"{data['event']!r} is not one of {list(RETRAIN_EVENTS)}")
    given = data.get("model_name")
    if given not in (None, model_name):
        raise _field_error(
            "model_name", data, f"the event is about {given!r}, this run trains {model_name!r}"
        )
    try:
        return RetrainTrigger.model_validate(
            {**data, "version": None if version is None else str(version)}
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "trigger"
        raise _field_error(field, data, str(error["msg"]).lower()) from exc
