"""Tasks that send the lifecycle's Prefect events: each builds its events with the payload
builders of ``prefect_mlops.events`` and sends them with ``events.emit`` (the only sender),
plus a log line per event. A task that cannot send fails (PrefectAPIError), never retried
silently into a lost event: retries are for the registry reads around it.

Also the data-arrival count (``prefect_mlops.data.arrival``): what ``mlops.data.arrived`` is
made from."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_mlops import events
from prefect_mlops.config import MonitoringConfig, TrainingConfig
from prefect_mlops.data.arrival import ArrivalCount, ChampionData, count_new_rows
from prefect_mlops.deployment.canary import CanaryVerdict
from prefect_mlops.deployment.decisions import Decision
from prefect_mlops.deployment.shadow import ShadowVerdict
from prefect_mlops.monitoring.runner import MonitoringResult
from prefect_mlops.registry import CHAMPION, AliasMove, get_alias_version, mlflow_client
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


def _send(model_name: str, pending: events.PendingEvent) -> str:
    events.emit_pending(model_name, pending)
    get_run_logger().info(
        "Emitted %s for %s%s: %s",
        pending.event,
        model_name,
        f" v{pending.version}" if pending.version else "",
        pending.reason,
    )
    return pending.event


@task(name="emit-monitoring-events", cache_policy=NO_CACHE)
def emit_monitoring_events(result: MonitoringResult, config: MonitoringConfig) -> list[str]:
    """Emit skew, drift, quality-degraded and failing events for ``result``, each only when
    its verdict says so (none for nothing to monitor); returns the names emitted.

    Raises PrefectAPIError when the Prefect API cannot take an event."""
    pending = events.monitoring_events(result, config)
    if not pending:
        get_run_logger().info("No lifecycle event: nothing in the verdicts calls for one")
    return [_send(result.model_name, p) for p in pending]


@task(name="emit-training-event", cache_policy=NO_CACHE)
def emit_training_event(outcome: Any, trigger: events.RetrainTrigger | None) -> str | None:
    """Emit ``mlops.model.blessed`` / ``mlops.model.not_blessed`` for a training outcome
    (nothing for ``unchanged``); returns the name emitted. Raises PrefectAPIError."""
    pending = events.training_event(
        status=outcome.status,
        version=outcome.version,
        metrics=outcome.metrics,
        champion_before=outcome.champion_before,
        reason=outcome.reason,
        run_id=outcome.run_id,
        snapshot_digest=outcome.snapshot_digest,
        trigger=trigger,
    )
    return None if pending is None else _send(outcome.model_name, pending)


def rollout_figures(verdict: CanaryVerdict | ShadowVerdict | None) -> dict[str, Any]:
    """The canary's (requests, error rate, p99, live quality) or shadow's (rows compared,
    agreement) figures of a verdict, for a deployment event's payload."""
    if isinstance(verdict, CanaryVerdict):
        figures: dict[str, Any] = {
            "canary_requests": verdict.requests,
            "canary_error_rate": verdict.error_rate,
            "canary_p99_ms": verdict.p99_ms,
        }
        if verdict.quality is not None:
            q = verdict.quality
            figures["canary_quality"] = {
                "metric": q.metric,
                "rows": q.challenger_rows,
                "value": q.challenger,
                "baseline": q.baseline,
                "baseline_source": q.baseline_source,
                "drop_bound": q.drop_bound,
            }
        return figures
    if isinstance(verdict, ShadowVerdict):
        return {"shadow_compared": verdict.compared, "shadow_agreement": verdict.agreement}
    return {}


@task(name="emit-deployment-event", cache_policy=NO_CACHE)
def emit_deployment_event(
    model_name: str,
    version: str,
    strategy: str,
    decision: Decision,
    verdict: CanaryVerdict | ShadowVerdict | None,
    move: AliasMove | None,
) -> str | None:
    """Emit ``mlops.model.promoted`` or ``mlops.model.rolled_back`` for a carried-out
    decision (nothing for shadowed); the previous champion is the one ``move`` replaced after a
    promotion, the champion kept (read now) after a rollback. Returns the name emitted; raises
    PrefectAPIError."""
    if move is not None:
        previous = move.from_version
    else:
        kept = get_alias_version(mlflow_client(get_settings()), model_name, CHAMPION)
        previous = None if kept is None else str(kept.version)
    pending = events.deployment_event(
        result=decision.result,
        version=version,
        previous_champion=previous,
        strategy=strategy,
        reason=decision.reason,
        figures=rollout_figures(verdict),
    )
    return None if pending is None else _send(model_name, pending)


@task(
    name="read-champion-data",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def read_champion_data(model_name: str) -> ChampionData | None:
    """The champion's version, snapshot and rows (its lineage tags); None without a champion."""
    from prefect_mlops.modeling.training_run import read_champion

    champion = read_champion(mlflow_client(get_settings()), model_name)
    if champion is None:
        get_run_logger().info("%s has no champion: every row of its source is new", model_name)
        return None
    return ChampionData.from_tags(champion.version, champion.tags)


@task(name="count-new-rows", cache_policy=NO_CACHE)
def count_arrived_rows(config: TrainingConfig, champion: ChampionData | None) -> ArrivalCount:
    """Rows of the training source the champion was not trained on (``data.arrival``)."""
    count = count_new_rows(config.data, champion)
    if count.basis == "timestamp":
        basis = f"newer than {count.newest_trained}"
    elif count.basis == "row_count":
        basis = f"{count.source_rows} rows now vs {count.champion_rows} trained on"
    else:
        basis = "no champion yet"
    get_run_logger().info(
        "%s: %s new rows in %s (%s)", config.model_name, f"{count.new_rows:,}", count.source, basis
    )
    return count


@task(name="emit-data-arrived", cache_policy=NO_CACHE)
def emit_data_arrived(model_name: str, count: ArrivalCount, threshold: int) -> str | None:
    """Emit ``mlops.data.arrived`` when ``count`` reached ``threshold``; returns the name
    emitted (None below it). Raises PrefectAPIError."""
    pending = events.data_arrived_event(
        new_rows=count.new_rows,
        threshold=threshold,
        source=count.source,
        champion_version=count.champion_version,
        basis=count.basis,
    )
    if pending is None:
        get_run_logger().info(
            "%s new rows, fewer than %s: no event", f"{count.new_rows:,}", f"{threshold:,}"
        )
        return None
    return _send(model_name, pending)
