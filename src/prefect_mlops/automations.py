"""The closed loop's deployments and automations, defined once: every deployment name, trigger,
concurrency limit and schedule that ``prefect.yaml`` and ``prefect-mlops init`` declare, and the
optional alert automation (:func:`ensure_alerts`).

The loop, per model ``<name>`` (events from :mod:`prefect_mlops.events`, resource
``mlops.model.<name>``):

* ``<name>-continuous-training`` — nightly cron (paused), and **one** trigger on
  ``mlops.drift.detected``, ``mlops.quality.degraded`` and ``mlops.data.arrived``: Reactive,
  ``threshold: 1``, ``within`` = :data:`RETRAIN_COOLDOWN_SECONDS`, so a burst of events (or a
  drift and a quality event from one monitoring run) starts one retrain and the next window opens
  only after the cooldown. A deployment concurrency limit of 1 with ``CANCEL_NEW`` cancels a run
  triggered while a retrain of the model is running. Its parameter ``trigger`` says which event
  asked for the run (name, version, reason), templated from the event.
* ``<name>-model-deployment`` — ``mlops.model.blessed`` → canary rollout of the blessed version
  (limit 1, ``ENQUEUE``: a second blessed version waits for the first rollout to end).
* ``<name>-fallback`` — ``mlops.model.failing`` → ``champion`` back to the previous healthy
  champion (:mod:`prefect_mlops.deployment.fallback`; limit 1, ``ENQUEUE``).
* ``<name>-monitoring`` and ``<name>-data-arrival`` — interval schedules (paused);
  ``<name>-batch-scoring`` — a daily cron (paused).

Prefect deletes and recreates a deployment's triggers on every ``prefect deploy``. Everything
here is plain data except :func:`ensure_alerts`, which talks to the Prefect API.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from prefect_mlops.errors import ConfigError, PrefectAPIError
from prefect_mlops.events import (
    DRIFT_DETECTED,
    MODEL_BLESSED,
    MODEL_FAILING,
    MODEL_ROLLED_BACK,
    QUALITY_DEGRADED,
    RESOURCE_PREFIX,
    RETRAIN_EVENTS,
    model_resource_id,
)

Process = Literal[
    "continuous-training",
    "model-deployment",
    "monitoring",
    "data-arrival",
    "batch-scoring",
    "fallback",
]
PROCESSES: tuple[Process, ...] = (
    "continuous-training",
    "model-deployment",
    "monitoring",
    "data-arrival",
    "batch-scoring",
    "fallback",
)

#: Flow entrypoints as an installed package sees them (what ``init`` writes).
MODULE_ENTRYPOINTS: dict[Process, str] = {
    "continuous-training": "prefect_mlops.flows.training:continuous_training_from_file",
    "model-deployment": "prefect_mlops.flows.deployment:model_deployment",
    "monitoring": "prefect_mlops.flows.monitoring:continuous_monitoring",
    "data-arrival": "prefect_mlops.flows.data_arrival:data_arrival_check",
    "batch-scoring": "prefect_mlops.flows.scoring:batch_scoring",
    "fallback": "prefect_mlops.flows.fallback:champion_fallback",
}
#: The same flows as files of this checkout (what the repository's ``prefect.yaml`` declares).
FILE_ENTRYPOINTS: dict[Process, str] = {
    process: "flows/" + entry.removeprefix("prefect_mlops.flows.").replace(":", ".py:", 1)
    for process, entry in MODULE_ENTRYPOINTS.items()
}

#: A retrain trigger fires at most once per this many seconds and model (its ``within``).
RETRAIN_COOLDOWN_SECONDS = 1800
#: Failing events closer together than this start one fallback (a stale one moves nothing).
FALLBACK_DEBOUNCE_SECONDS = 60
#: How often the monitoring and data-arrival checks run (seconds).
MONITORING_INTERVAL_SECONDS = 3600
DATA_ARRIVAL_INTERVAL_SECONDS = 3600
#: A run triggered while a retrain of the same model runs is cancelled, never queued.
RETRAIN_LIMIT: dict[str, Any] = {"limit": 1, "collision_strategy": "CANCEL_NEW"}
#: A second blessed version (or failing event) waits for the running rollout (fallback) to end.
ROLLOUT_LIMIT: dict[str, Any] = {"limit": 1, "collision_strategy": "ENQUEUE"}
FALLBACK_LIMIT: dict[str, Any] = {"limit": 1, "collision_strategy": "ENQUEUE"}

#: The ``trigger`` parameter of a triggered retrain: which event asked for it, for which
#: version and why (Jinja over the triggering event; a single expression keeps its JSON type).
TRIGGER_PARAMETER: dict[str, str] = {
    "event": "{{ event.event }}",
    "version": "{{ event.payload.version }}",
    "reason": "{{ event.payload.reason }}",
}


def deployment_name(model_name: str, process: Process) -> str:
    """The deployment of ``process`` for ``model_name``: ``<model>-<process>``."""
    if process not in PROCESSES:
        raise ConfigError(f"unknown process {process!r}; one of {list(PROCESSES)}")
    return f"{model_name}-{process}"


def trigger_name(model_name: str, process: Process) -> str:
    """The automation Prefect creates for the trigger of ``process``'s deployment."""
    return f"{deployment_name(model_name, process)}-trigger"


def _model_match(model_name: str) -> dict[str, str]:
    return {"prefect.resource.id": model_resource_id(model_name)}


def retrain_trigger(
    model_name: str, *, cooldown_seconds: int = RETRAIN_COOLDOWN_SECONDS
) -> dict[str, Any]:
    """The continuous-training trigger: any of :data:`~prefect_mlops.events.RETRAIN_EVENTS`
    for ``model_name`` starts one run, then none for ``cooldown_seconds``."""
    return {
        "name": trigger_name(model_name, "continuous-training"),
        "description": f"Retrain {model_name} on drift, quality loss or new data "
        f"(at most once per {cooldown_seconds} s)",
        "enabled": True,
        "match": _model_match(model_name),
        "expect": list(RETRAIN_EVENTS),
        "posture": "Reactive",
        "threshold": 1,
        "within": cooldown_seconds,
        "parameters": {"trigger": dict(TRIGGER_PARAMETER)},
    }


def rollout_trigger(
    model_name: str, config: Mapping[str, Any], *, strategy: str = "canary"
) -> dict[str, Any]:
    """The model-deployment trigger: ``mlops.model.blessed`` rolls the blessed version out
    with ``strategy``. ``config`` is the deployment's own ``config`` parameter: a run's
    parameters replace the deployment's key by key, so the whole config is repeated."""
    return {
        "name": trigger_name(model_name, "model-deployment"),
        "description": f"Roll out each blessed version of {model_name} ({strategy})",
        "enabled": True,
        "match": _model_match(model_name),
        "expect": [MODEL_BLESSED],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
        "parameters": {
            "config": {
                **config,
                "strategy": strategy,
                "version": "{{ event.payload.version }}",
            }
        },
    }


def fallback_trigger(
    model_name: str, *, debounce_seconds: int = FALLBACK_DEBOUNCE_SECONDS
) -> dict[str, Any]:
    """The fallback trigger: ``mlops.model.failing`` moves ``champion`` back."""
    return {
        "name": trigger_name(model_name, "fallback"),
        "description": f"Move {model_name}'s champion back when it fails in production",
        "enabled": True,
        "match": _model_match(model_name),
        "expect": [MODEL_FAILING],
        "posture": "Reactive",
        "threshold": 1,
        "within": debounce_seconds,
        "parameters": {
            "version": "{{ event.payload.version }}",
            "reason": "{{ event.payload.reason }}",
        },
    }


def _paused_cron(cron: str) -> list[dict[str, Any]]:
    return [{"cron": cron, "timezone": "UTC", "active": False}]


def _paused_interval(seconds: int) -> list[dict[str, Any]]:
    return [{"interval": seconds, "active": False}]


def closed_loop_deployments(
    model_name: str,
    *,
    config_path: str,
    scoring: Mapping[str, Any],
    entrypoints: Mapping[Process, str] = MODULE_ENTRYPOINTS,
    work_pool: str = "default",
    retrain_cooldown_seconds: int = RETRAIN_COOLDOWN_SECONDS,
) -> list[dict[str, Any]]:
    """Every deployment of ``model_name``'s closed loop, as ``prefect.yaml`` entries (see the
    module docstring). ``config_path`` is its training config (relative to where the flows
    run), ``scoring`` the batch-scoring flow's ``config``. Every schedule is paused."""
    rollout_config = {"model_name": model_name, "strategy": "canary"}

    def entry(process: Process, description: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": deployment_name(model_name, process),
            "description": description,
            "entrypoint": entrypoints[process],
            **fields,
            "work_pool": {"name": work_pool},
            "tags": ["mlops", process],
        }

    return [
        entry(
            "continuous-training",
            f"Continuous training of {model_name} from {config_path}: nightly (paused) and on "
            "drift, quality loss or new data (one run at a time; a burst starts one)",
            parameters={"config_path": config_path},
            schedules=_paused_cron("0 3 * * *"),
            triggers=[retrain_trigger(model_name, cooldown_seconds=retrain_cooldown_seconds)],
            concurrency_limit=dict(RETRAIN_LIMIT),
        ),
        entry(
            "model-deployment",
            f"Infra-validate each blessed version of {model_name} in a real BentoML server, "
            "then roll it out (canary) with automatic rollback",
            parameters={"config": rollout_config},
            schedules=_paused_cron("0 4 * * *"),
            triggers=[rollout_trigger(model_name, rollout_config)],
            concurrency_limit=dict(ROLLOUT_LIMIT),
        ),
        entry(
            "monitoring",
            f"Hourly monitoring of {model_name}'s champion: schema skew, drift, live and "
            "estimated quality, latency and errors of its serving log",
            parameters={"model_name": model_name},
            schedules=_paused_interval(MONITORING_INTERVAL_SECONDS),
        ),
        entry(
            "data-arrival",
            f"Count the rows of {model_name}'s data that arrived since its champion's "
            "snapshot; past the threshold, mlops.data.arrived asks for a retrain",
            parameters={"config_path": config_path},
            schedules=_paused_interval(DATA_ARRIVAL_INTERVAL_SECONDS),
        ),
        entry(
            "batch-scoring",
            f"Score a file with {model_name}'s champion in chunks into Parquet",
            parameters={"config": dict(scoring)},
            schedules=_paused_cron("0 5 * * *"),
        ),
        entry(
            "fallback",
            f"Move {model_name}'s champion back to the previous healthy champion when it "
            "fails in production (mlops.model.failing); alert when there is none",
            parameters={"model_name": model_name, "version": None, "reason": "run by hand"},
            schedules=[],
            triggers=[fallback_trigger(model_name)],
            concurrency_limit=dict(FALLBACK_LIMIT),
        ),
    ]


# -- alerts ----------------------------------------------------------------------------------

#: The environment variable holding the alert webhook's URL (unset: no alerts).
ALERT_URL_ENV = "MLOPS_ALERT_WEBHOOK_URL"
#: The Webhook block (its URL stored as a secret) and the automation :func:`ensure_alerts` keeps.
ALERT_BLOCK = "mlops-alerts"
ALERT_AUTOMATION = "mlops-alerts"
#: What is alerted: drift, quality loss, a failing champion and every rollback.
ALERT_EVENTS: tuple[str, ...] = (DRIFT_DETECTED, QUALITY_DEGRADED, MODEL_FAILING, MODEL_ROLLED_BACK)
#: The JSON body posted to the webhook (Jinja over the event).
ALERT_PAYLOAD = (
    '{"event": {{ event.event | tojson }}, '
    '"model_name": {{ event.payload.model_name | tojson }}, '
    '"version": {{ event.payload.version | tojson }}, '
    '"reason": {{ event.payload.reason | tojson }}, '
    '"occurred": "{{ event.occurred }}", "event_id": "{{ event.id }}"}'
)


def ensure_alerts(url_env: str = ALERT_URL_ENV) -> str | None:
    """Create or replace the alert automation: every event of :data:`ALERT_EVENTS` about any
    ``mlops.model.*`` posts :data:`ALERT_PAYLOAD` to the URL in the environment variable
    ``url_env``, through the Webhook block :data:`ALERT_BLOCK` (the URL stored as a secret, never
    in a flow's parameters). Returns the automation's id, or None when ``url_env`` is unset or
    empty (alerts are off by default; an automation left from before is then deleted).

    Raises ConfigError for a URL that is not http(s) and PrefectAPIError when the Prefect API
    refuses or cannot be reached.
    """
    url = os.environ.get(url_env, "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{url_env}: the alert webhook URL must start with http:// or https://")
    try:
        from prefect.utilities.asyncutils import run_coro_as_sync

        return run_coro_as_sync(_apply_alerts(url))
    except ConfigError:
        raise
    except Exception as exc:
        from prefect.settings import PREFECT_API_URL

        from prefect_mlops.secrets import mask_url

        api = mask_url(str(PREFECT_API_URL.value() or "no PREFECT_API_URL"))
        raise PrefectAPIError(
            f"cannot set up the alert automation {ALERT_AUTOMATION!r} on the Prefect API "
            f"({api}): {type(exc).__name__}: {exc}"
        ) from exc


async def _apply_alerts(url: str) -> str | None:
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.types import SecretDict
    from pydantic import SecretStr

    try:
        existing = await Automation.aread(name=ALERT_AUTOMATION)
    except ValueError:  # none yet
        existing = None
    if existing is not None:
        await existing.adelete()
    if not url:
        return None
    headers = SecretDict({"Content-Type": "application/json"})
    webhook = Webhook(method="POST", url=SecretStr(url), headers=headers)
    block_id = await webhook.asave(ALERT_BLOCK, overwrite=True)
    automation = await Automation(
        name=ALERT_AUTOMATION,
        description="prefect-mlops alerts: drift, quality loss, a failing champion, rollbacks",
        trigger=EventTrigger(
            match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
            expect=set(ALERT_EVENTS),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=ALERT_PAYLOAD)],
    ).acreate()
    return str(automation.id)
