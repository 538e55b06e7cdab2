"""The continuous-monitoring flow: version → reference → window → skew, drift, prediction drift,
live quality, estimated quality, efficiency → Evidently's report → MLflow run → artifacts."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.monitoring import checks
from prefect_mlops.monitoring.runner import MonitoringResult, monitoring_config
from prefect_mlops.registry import configure_mlflow, lineage
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.events import emit_monitoring_events
from prefect_mlops.tasks.monitoring import (
    build_report,
    check_efficiency,
    check_feature_drift,
    check_live_quality,
    check_prediction_drift,
    check_schema_skew,
    estimate_quality,
    load_reference,
    read_window,
    record_monitoring_run,
    resolve_version,
    summarise_window,
)


@flow(
    name="continuous-monitoring",
    description="Judge a model version's served traffic (the serving log) against what it was "
    "trained on: schema skew (its GX suite), feature and prediction drift (Evidently's "
    "DataDriftPreset tests), live quality on late labels, estimated quality before them, "
    "latency and errors. Records an MLflow run in <model>-monitoring with Evidently's report, "
    "then emits mlops.skew.detected / drift.detected / quality.degraded / model.failing.",
)
def continuous_monitoring(
    model_name: str,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    last_n: int | None = None,
    monitoring: MonitoringConfig | None = None,
) -> MonitoringResult:
    """Monitor one version's window; returns every verdict and figure (status
    ``nothing_to_monitor`` when the window holds too few scored rows) and the lifecycle events
    it emitted after the MLflow record (skew, drift, quality degraded, failing: each only when
    its verdict says so). Raises PrefectAPIError when the Prefect API cannot take an event.

    Args:
        model_name: Registered model to monitor.
        version: Version to monitor; default: the champion.
        start: Window start (UTC); default: the end of the model's last monitoring window,
            bounded by monitoring.max_window_days.
        end: Window end (UTC); default: now.
        last_n: Only the newest N rows of the window.
        monitoring: Thresholds; default: the monitoring section the version was trained with.
    """
    configure_mlflow(get_settings())
    target = resolve_version(model_name, version)
    config = monitoring_config(target, monitoring)
    reference, computed = load_reference(target)
    checks.check_overrides(reference.profile, config)
    window = read_window(target, config, reference, start, end, last_n)
    if window.rows < config.min_rows:
        result = checks.nothing_to_monitor(target, window, config, computed)
    else:
        skew = check_schema_skew(target, window, reference)
        stats = summarise_window(window, reference, config.dask_address)
        drift = check_feature_drift(reference, stats, config)
        prediction = check_prediction_drift(reference, stats, config)
        live = check_live_quality(target, window, config, reference)
        estimate = estimate_quality(reference, window)
        efficiency = check_efficiency(window, config)
        result = checks.assemble(
            target,
            window,
            config,
            computed,
            skew=skew,
            drift=drift,
            prediction=prediction,
            live=live,
            estimate=estimate,
            efficiency=efficiency,
        )
    html, sample = build_report(target, reference, window, config)
    result.report_sample = sample
    run_tags = {
        lineage.FLOW_RUN_ID: str(flow_run.id or ""),
        lineage.FLOW_RUN_URL: flow_run.ui_url or "",
    }
    result.mlflow_run_id, result.mlflow_run_url = record_monitoring_run(result, html, run_tags)
    result.events = emit_monitoring_events(result, config)
    _publish(result)
    return result


def _publish(result: MonitoringResult) -> None:
    """Say what the run found: a log line, the drift table, the summary and the MLflow link."""
    logger = get_run_logger()
    (logger.warning if checks.alarming(result) else logger.info)("%s", result.message)
    create_table_artifact(
        table=checks.drift_rows(result),
        key=f"{checks.artifact_key(result.model_name)}-drift",
        description=f"Drift of {result.model_name} v{result.version}: column, method, score, "
        "threshold, drifted",
    )
    create_markdown_artifact(
        markdown=checks.summary_markdown(result),
        key=f"{checks.artifact_key(result.model_name)}-monitoring",
        description=f"Monitoring of {result.model_name} v{result.version}",
    )
    if result.mlflow_run_url:
        create_link_artifact(
            link=result.mlflow_run_url,
            link_text="MLflow monitoring run (Evidently's report under Artifacts)",
            key=f"{checks.artifact_key(result.model_name)}-monitoring-run",
        )
