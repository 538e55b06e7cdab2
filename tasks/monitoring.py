"""Tasks of the continuous-monitoring process: resolve the version, load its reference, read the
window, then one task per check (schema skew, feature drift, prediction drift, live quality,
estimated quality, efficiency), Evidently's report and the MLflow record. Each is one call into
``prefect_mlops.monitoring`` plus a log line saying what it found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from prefect_mlops.config import MonitoringConfig
from prefect_mlops.monitoring import checks, served
from prefect_mlops.monitoring.reference import Reference
from prefect_mlops.monitoring.runner import MonitoringResult, MonitoringTarget
from prefect_mlops.registry import mlflow_client
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


def _client() -> Any:
    return mlflow_client(get_settings())


@task(
    name="resolve-monitored-version",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def resolve_version(model_name: str, version: str | None) -> MonitoringTarget:
    """The version to watch (the champion unless one is given), with its tags and config."""
    from prefect_mlops.monitoring.runner import resolve_target

    target = resolve_target(_client(), model_name, version)
    get_run_logger().info(
        "Monitoring %s v%s (%s)",
        model_name,
        target.version,
        "as given" if version else "the champion",
    )
    return target


@task(name="load-reference-profile", cache_policy=NO_CACHE)
def load_reference(target: MonitoringTarget) -> tuple[Reference, bool]:
    """The version's reference profile; computed once from its snapshot when it has none."""
    from prefect_mlops.monitoring.runner import load_reference as load

    reference, computed = load(_client(), target)
    get_run_logger().info(
        "Reference of v%s: %s (%s columns)",
        target.version,
        "computed now from its training snapshot and kept" if computed else "kept at training",
        len(served.profile_features(reference.profile)),
    )
    return reference, computed


@task(name="read-serving-window", cache_policy=NO_CACHE)
def read_window(
    target: MonitoringTarget,
    config: MonitoringConfig,
    reference: Reference,
    start: datetime | None,
    end: datetime | None,
    last_n: int | None,
) -> served.Window:
    """The version's serving-log rows in the window (bounded by ``max_window_rows``)."""
    from prefect_mlops.monitoring.runner import last_window_end, window_bounds

    last = None if start is not None else last_window_end(_client(), target.model_name)
    begin, stop = window_bounds(config, start=start, end=end, last_end=last)
    window = served.read_serving_window(
        get_settings().resolved_serving_log_dir,
        target,
        reference.profile,
        start=begin,
        end=stop,
        last_n=min(last_n or config.max_window_rows, config.max_window_rows),
    )
    logger = get_run_logger()
    logger.info(
        "Window %s → %s: %s scored rows of v%s",
        begin.isoformat(timespec="seconds"),
        stop.isoformat(timespec="seconds"),
        f"{window.rows:,}",
        target.version,
    )
    for skipped in window.skipped:
        logger.warning("Serving-log file skipped: %s", skipped)
    return window


@task(name="check-schema-skew", cache_policy=NO_CACHE)
def check_schema_skew(target: MonitoringTarget, window: served.Window, reference: Reference) -> Any:
    """Types, nulls, ranges and domains of the window against the version's GX suite."""
    result = checks.schema_skew(_client(), target, window, reference.profile)
    logger = get_run_logger()
    if result.skewed:
        logger.warning(
            "Schema skew: %s",
            "; ".join(
                [f.describe() for f in result.findings]
                + [f"missing column {c!r}" for c in result.missing_columns]
                + [f"unexpected column {c!r}" for c in result.unexpected_columns]
            ),
        )
    else:
        logger.info("No schema skew (%s expectations)", result.evaluated)
    if result.error:
        logger.warning("Schema skew: %s", result.error)
    return result


@task(name="summarise-window", cache_policy=NO_CACHE)
def summarise_window(window: served.Window, reference: Reference, dask_address: str | None) -> Any:
    """The window's mergeable statistics (per partition on Dask when an address is given)."""
    directory = get_settings().resolved_serving_log_dir
    stats = checks.window_statistics(window, reference.profile, dask_address, directory)
    get_run_logger().info(
        "Summarised %s rows%s",
        f"{window.rows:,}",
        f" on Dask ({dask_address})" if dask_address else "",
    )
    return stats


@task(name="check-feature-drift", cache_policy=NO_CACHE)
def check_feature_drift(reference: Reference, stats: Any, config: MonitoringConfig) -> Any:
    """Per-column drift of the features (Evidently's DataDriftPreset tests) and dataset drift."""
    result = checks.feature_drift(reference.profile, stats, config)
    drifted = [c.column for c in result.columns if c.drifted]
    get_run_logger().info(
        "Feature drift: %s of %s columns drifted (%s)%s",
        len(drifted),
        len(result.columns),
        ", ".join(drifted) or "none",
        "; DATASET DRIFT" if result.dataset_drift else "",
    )
    return result


@task(name="check-prediction-drift", cache_policy=NO_CACHE)
def check_prediction_drift(reference: Reference, stats: Any, config: MonitoringConfig) -> Any:
    """Served predictions and probabilities against the test set's."""
    result = checks.prediction_drift(reference.profile, stats, config)
    drifted = [c.column for c in result.columns if c.drifted]
    get_run_logger().info("Prediction drift: %s", ", ".join(drifted) or "none")
    return result


@task(
    name="check-live-quality",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def check_live_quality(
    target: MonitoringTarget, window: served.Window, config: MonitoringConfig, reference: Reference
) -> Any:
    """The version's metric on labelled served rows (None without a labels source)."""
    result = checks.live_quality(target, window, config, reference.profile)
    if result is None:
        get_run_logger().info("Live quality: no labels configured")
    else:
        get_run_logger().info("Live quality: %s", checks.describe(result))
    return result


@task(name="estimate-quality", cache_policy=NO_CACHE)
def estimate_quality(reference: Reference, window: served.Window) -> Any:
    """The quality the calibrated probabilities let us expect before labels (classifiers)."""
    result = checks.estimated_quality(reference.profile, window)
    get_run_logger().info("Estimated quality: %s", checks.describe(result))
    return result


@task(name="check-efficiency", cache_policy=NO_CACHE)
def check_efficiency(window: served.Window, config: MonitoringConfig) -> list[Any]:
    """Latency percentiles, throughput, error rate and 4xx/5xx counts per version."""
    result = checks.efficiency_figures(window, config)
    for item in result:
        get_run_logger().info("Efficiency: %s", checks.describe(item))
    return result


@task(name="build-monitoring-report", cache_policy=NO_CACHE)
def build_report(
    target: MonitoringTarget,
    reference: Reference,
    window: served.Window,
    config: MonitoringConfig,
    labelled: pd.DataFrame | None = None,
) -> tuple[str | None, str | None]:
    """Evidently's own HTML report (on bounded samples); (html, what it sampled)."""
    html, sample = checks.evidently_report(target, reference, window, config)
    if sample:
        get_run_logger().info(sample)
    return html, sample


@task(
    name="record-monitoring-run",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def record_monitoring_run(
    result: MonitoringResult, html: str | None, run_tags: dict[str, str]
) -> tuple[str, str]:
    """The result as a run of ``<model>-monitoring`` in MLflow; the version points at it.
    Returns the run id and its MLflow UI page."""
    from prefect_mlops.monitoring.runner import record_run

    run_id, url = record_run(_client(), get_settings(), result, html_report=html, run_tags=run_tags)
    get_run_logger().info("Recorded monitoring run %s: %s", run_id, url)
    return run_id, url
