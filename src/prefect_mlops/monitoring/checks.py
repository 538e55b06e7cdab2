"""The monitoring checks over one serving window, as the flow calls them (Prefect-free).

Each check takes the window (serving-log rows of the watched version, read with
``serving.log.read_window``), the version's reference profile and the ``monitoring:`` config,
and returns its own result object; :func:`assemble` folds them into the run's
:class:`~prefect_mlops.monitoring.runner.MonitoringResult`, and the helpers at the end turn
that into the words, tables and links the flow shows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_mlops.monitoring.served import (
    Window,
    monitored_frame,
    profile_features,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.config import MonitoringConfig
    from prefect_mlops.monitoring.drift import DriftResult
    from prefect_mlops.monitoring.profile import ReferenceProfile
    from prefect_mlops.monitoring.reference import Reference
    from prefect_mlops.monitoring.runner import MonitoringResult, MonitoringTarget
    from prefect_mlops.monitoring.skew import SkewResult

SUITE_ARTIFACT = "validation/expectation_suite.json"
#: Variants whose rows are the version's answers to clients (shadow rows are not answers:
#: they count for drift, not for latency or errors).
ANSWERING_VARIANTS = ("champion", "challenger")


def load_suite(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    """The expectation suite the version's training run validated with (None if it kept none)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, SUITE_ARTIFACT, tmp)
        except Exception:
            return None
        return dict(json.loads(Path(path).read_text()))


def schema_skew(
    client: MlflowClient, target: MonitoringTarget, window: Window, profile: ReferenceProfile
) -> SkewResult:
    """Schema skew of the window's features against the version's suite (see ``skew``)."""
    from prefect_mlops.monitoring.skew import check_skew
    from prefect_mlops.serving.log import feature_frame

    suite = load_suite(client, target.run_id) if target.run_id else None
    features = feature_frame(window.scored)
    features = features.loc[:, features.notna().any() | (len(features) == 0)]
    return check_skew(
        features.reset_index(drop=True),
        suite,
        profile_features(profile),
        data_name=f"serving window of {target.model_name} v{target.version}",
    )


def window_statistics(
    window: Window, profile: ReferenceProfile, dask_address: str | None, directory: Path
) -> Any:
    """The window's mergeable statistics: here, or on Dask when an address is given (each
    worker reads and summarises a time slice of the window; ``local``: a local cluster)."""
    from prefect_mlops.monitoring.window import window_stats

    if not dask_address:
        return window_stats(monitored_frame(window), profile)
    from prefect_mlops.monitoring.distributed import distributed_stats

    start = window.start
    if len(window.frame):  # a window cut to its newest rows starts at its oldest row
        start = max(start, pd.Timestamp(window.frame["timestamp"].min()).to_pydatetime())
    return distributed_stats(
        directory,
        window.model_name,
        window.version,
        profile,
        start=start,
        end=window.end,
        address=dask_address,
    )


def check_overrides(profile: ReferenceProfile, config: MonitoringConfig) -> None:
    """Raises ConfigError naming a ``monitoring.columns`` override of a column the version has
    neither as a feature nor as a prediction column (the flow checks this before it reads the
    window, so a bad override fails on a quiet window too)."""
    from prefect_mlops.errors import ConfigError

    unknown = [c for c in config.columns if c not in profile.columns]
    if unknown:
        raise ConfigError(
            f"monitoring.columns: {unknown} are not columns of the version (features: "
            f"{list(profile.features)}; predictions: {list(profile.prediction_columns)})"
        )


def _overrides(
    profile: ReferenceProfile, config: MonitoringConfig, names: list[str]
) -> dict[str, Any]:
    """The ``monitoring.columns`` overrides of ``names``. Raises ConfigError as
    :func:`check_overrides` does."""
    from prefect_mlops.monitoring.drift import DriftOverride

    check_overrides(profile, config)
    return {
        column: DriftOverride(method=o.method, threshold=o.threshold)
        for column, o in config.columns.items()
        if column in names
    }


def feature_drift(profile: ReferenceProfile, stats: Any, config: MonitoringConfig) -> DriftResult:
    """Per-feature drift and dataset drift (see ``drift.detect_drift``)."""
    from prefect_mlops.monitoring.drift import detect_drift

    names = profile_features(profile)
    return detect_drift(
        profile,
        stats,
        columns=names,
        overrides=_overrides(profile, config, names),
        drift_share=config.drift_share,
    )


def prediction_drift(
    profile: ReferenceProfile, stats: Any, config: MonitoringConfig
) -> DriftResult:
    """Drift of the served predictions and probabilities against the test set's."""
    from prefect_mlops.monitoring.drift import prediction_drift as detect

    names = list(profile.prediction_columns)
    return detect(
        profile, stats, overrides=_overrides(profile, config, names), drift_share=config.drift_share
    )


def live_quality(
    target: MonitoringTarget, window: Window, config: MonitoringConfig, profile: ReferenceProfile
) -> Any:
    """The realised quality on the configured labels (None when no labels are configured).

    Raises ConfigError / DataIngestError naming the labels source when it cannot be read.
    """
    if config.labels is None:
        return None
    from prefect_mlops.data.sources import read_table
    from prefect_mlops.deployment.live_quality import default_metric
    from prefect_mlops.monitoring.quality import realised_quality

    task = target.task or "classification"
    labels = read_table(config.labels, allow_empty=True)
    label_column = config.label_column or target.target_column or "label"
    return realised_quality(
        window.scored,
        labels,
        task=task,
        metric=config.quality_metric or default_metric(task),
        where=config.labels.describe(),
        version=target.version,
        label_column=label_column,
        reference=profile.quality,
    )


def estimated_quality(profile: ReferenceProfile, window: Window) -> Any:
    """The CBPE estimate from the window's probabilities (not available for a regressor, a
    profile without calibration, or a window without probabilities: says why)."""
    from prefect_mlops.monitoring.quality import EstimatedQuality, estimate_quality

    task = profile.task or "regression"
    if not profile.quality or task != "classification":
        why = (
            "regressors have no class probabilities to estimate quality from"
            if task != "classification"
            else "the version's reference has no calibration"
        )
        return EstimatedQuality(
            task=task, n_rows=window.rows, available=False, reason=why, version=window.version
        )
    return estimate_quality(profile.quality, window.scored, version=window.version)


def efficiency_figures(window: Window, config: MonitoringConfig) -> list[Any]:
    """Latency, throughput and errors of the version's answers (shadow rows left out)."""
    from prefect_mlops.monitoring.efficiency import efficiency

    frame = window.frame
    answers = frame[frame["variant"].astype(str).isin(ANSWERING_VARIANTS)]
    return list(efficiency(answers, slo_p99_ms=config.latency_p99_ms))


def evidently_report(
    target: MonitoringTarget, reference: Reference, window: Window, config: MonitoringConfig
) -> tuple[str | None, str | None]:
    """Evidently's HTML report of the window (None, why) when there is nothing to show."""
    from prefect_mlops.monitoring.report import build_report

    if reference.sample.empty:
        return None, "no reference sample is kept with this version: no Evidently report"
    if window.rows == 0:
        return None, "the window holds no scored rows: no Evidently report"
    from prefect_mlops.serving.log import feature_frame

    profile = reference.profile
    current = feature_frame(window.scored).reset_index(drop=True)
    # An all-null column makes Evidently fail the whole report (np.isinf on None); its drift
    # entry already says why it was not tested, so the report shows the other columns.
    current = current.loc[:, current.notna().any()]
    numeric = [c for c in profile.numeric if c in current and c in reference.sample]
    categorical = [c for c in profile.categorical if c in current and c in reference.sample]
    html, sample = build_report(
        reference.sample,
        current,
        numeric=numeric,
        categorical=categorical,
        drift_share=config.drift_share,
        per_column_method={c: o.method for c, o in config.columns.items() if o.method} or None,
        per_column_threshold={c: o.threshold for c, o in config.columns.items() if o.threshold}
        or None,
        sample_size=config.report_sample_rows,
        title=f"{target.model_name} v{target.version}: "
        f"{window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC",
    )
    return html, sample.describe()


# -- the result ----------------------------------------------------------------------------------


def _as_dict(item: Any) -> dict[str, Any] | None:
    return None if item is None else dict(item.to_dict())


def nothing_to_monitor(
    target: MonitoringTarget, window: Window, config: MonitoringConfig, computed: bool
) -> MonitoringResult:
    """The result of a window with fewer than ``min_rows`` scored rows: no verdict at all."""
    from prefect_mlops.monitoring.runner import MonitoringResult

    return MonitoringResult(
        model_name=target.model_name,
        version=target.version,
        status="nothing_to_monitor",
        message=f"nothing to monitor: {target.model_name} v{target.version} scored "
        f"{window.rows} rows in the window (fewer than min_rows={config.min_rows}); no drift, "
        "no quality verdict",
        window_start=window.start,
        window_end=window.end,
        rows=window.rows,
        skipped_files=window.skipped,
        reference_computed=computed,
    )


def assemble(
    target: MonitoringTarget,
    window: Window,
    config: MonitoringConfig,
    computed: bool,
    *,
    skew: SkewResult,
    drift: DriftResult,
    prediction: DriftResult,
    live: Any,
    estimate: Any,
    efficiency: list[Any],
) -> MonitoringResult:
    """Every check's result folded into the run's typed result, with its verdicts and the
    one-line message that says what was found."""
    from prefect_mlops.monitoring.quality import quality_verdict
    from prefect_mlops.monitoring.runner import MonitoringResult

    verdict = quality_verdict(
        estimated=estimate,
        realised=live,
        metric=config.quality_metric,
        max_drop=config.max_quality_drop,
    )
    efficiency_dicts = [dict(e.to_dict()) for e in efficiency]
    failing = _failing_reasons(efficiency_dicts, config)
    drifted = [c.column for c in drift.columns if c.drifted]
    result = MonitoringResult(
        model_name=target.model_name,
        version=target.version,
        status="monitored",
        message="",
        window_start=window.start,
        window_end=window.end,
        rows=window.rows,
        skipped_files=window.skipped,
        reference_computed=computed,
        skewed=skew.skewed,
        dataset_drift=bool(drift.dataset_drift),
        drifted_columns=drifted,
        prediction_drift=any(c.drifted for c in prediction.columns),
        quality_degraded=verdict.degraded,
        quality_source=verdict.source,
        failing=bool(failing),
        failing_reasons=failing,
        skew=skew.to_dict(),
        feature_drift=drift.to_dict(),
        prediction=prediction.to_dict(),
        live_quality=_as_dict(live),
        estimated_quality=_as_dict(estimate),
        efficiency=efficiency_dicts,
    )
    result.message = _message(result, verdict.message if verdict else None)
    return result


def _failing_reasons(efficiency: list[dict[str, Any]], config: MonitoringConfig) -> list[str]:
    reasons: list[str] = []
    for item in efficiency:
        rate = item.get("error_rate")
        if rate is not None and rate > config.max_error_rate:
            reasons.append(
                f"error rate {rate:.2%} of requests above max_error_rate "
                f"{config.max_error_rate:.2%}"
            )
        p99 = item.get("p99_ms")
        if config.latency_p99_ms is not None and p99 is not None and p99 > config.latency_p99_ms:
            reasons.append(f"p99 latency {p99:.1f} ms above the SLO {config.latency_p99_ms:g} ms")
    return reasons


def _message(result: MonitoringResult, quality: str | None) -> str:
    found: list[str] = []
    if result.skewed:
        found.append("schema skew")
    if result.dataset_drift:
        found.append(f"dataset drift ({len(result.drifted_columns)} columns)")
    elif result.drifted_columns:
        found.append(f"drift in {', '.join(result.drifted_columns)}")
    if result.prediction_drift:
        found.append("prediction drift")
    if result.quality_degraded:
        found.append(f"{result.quality_source} quality degraded")
    if result.failing:
        found.append("failing: " + "; ".join(result.failing_reasons))
    head = f"{result.model_name} v{result.version}, {result.rows:,} rows: "
    body = ", ".join(found) if found else "no skew, no drift, quality and efficiency in bounds"
    return head + body + (f" ({quality})" if quality else "")


def alarming(result: MonitoringResult) -> bool:
    """Whether the run found anything a person should act on."""
    return bool(
        result.skewed
        or result.dataset_drift
        or result.drifted_columns
        or result.prediction_drift
        or result.quality_degraded
        or result.failing
        or result.skipped_files
    )


def drift_rows(result: MonitoringResult) -> list[dict[str, Any]]:
    """The drift table: column, method, score, threshold, drifted (features, then predictions)."""
    rows: list[dict[str, Any]] = []
    for section in (result.feature_drift, result.prediction):
        for column in (section or {}).get("columns", []):
            score = column.get("score")
            rows.append(
                {
                    "column": column.get("column"),
                    "method": column.get("method"),
                    "score": None if score is None else round(float(score), 4),
                    "threshold": column.get("threshold"),
                    "drifted": bool(column.get("drifted")),
                    "note": column.get("error") or "",
                }
            )
    return rows


def summary_markdown(result: MonitoringResult) -> str:
    """The run's summary for the Prefect UI: verdicts first, then quality and efficiency."""
    lines = [
        f"# Monitoring of {result.model_name} v{result.version}",
        "",
        f"**{result.message}**",
        "",
        f"Window: {result.window_start:%Y-%m-%d %H:%M:%S} → {result.window_end:%Y-%m-%d %H:%M:%S}"
        f" UTC, {result.rows:,} scored rows.",
        "",
        "| check | verdict |",
        "|---|---|",
        f"| schema skew | {'**skewed**' if result.skewed else 'none'} |",
        f"| feature drift | {_drift_words(result)} |",
        f"| prediction drift | {'**drifted**' if result.prediction_drift else 'none'} |",
        f"| quality | {_quality_words(result)} |",
        f"| efficiency | {_efficiency_words(result)} |",
    ]
    if result.skew and result.skewed:
        lines += ["", "## Schema skew", ""]
        lines += [f"- missing column `{c}`" for c in result.skew.get("missing_columns", [])]
        lines += [f"- unexpected column `{c}`" for c in result.skew.get("unexpected_columns", [])]
        lines += [
            f"- column `{f.get('column')}`: {f.get('check')} — {f.get('details')}"
            for f in result.skew.get("findings", [])
        ]
    if result.efficiency:
        lines += [
            "",
            "## Efficiency",
            "",
            "| version | requests | p50 ms | p95 ms | p99 ms | req/s | error rate | 4xx | 5xx |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in result.efficiency:
            lines.append(
                "| {v} | {r} | {p50} | {p95} | {p99} | {t} | {er} | {c4} | {c5} |".format(
                    v=e.get("model_version"),
                    r=e.get("requests"),
                    p50=_fmt(e.get("p50_ms")),
                    p95=_fmt(e.get("p95_ms")),
                    p99=_fmt(e.get("p99_ms")),
                    t=_fmt(e.get("requests_per_second")),
                    er=_fmt(e.get("error_rate"), pct=True),
                    c4=e.get("client_errors"),
                    c5=e.get("server_errors"),
                )
            )
    if result.skipped_files:
        lines += ["", "## Serving-log files skipped", ""]
        lines += [f"- {s}" for s in result.skipped_files]
    if result.report_sample:
        lines += ["", result.report_sample + "."]
    return "\n".join(lines)


def _efficiency_words(result: MonitoringResult) -> str:
    return "**failing**: " + "; ".join(result.failing_reasons) if result.failing else "in bounds"


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{float(value):.2%}" if pct else f"{float(value):.1f}"


def _drift_words(result: MonitoringResult) -> str:
    if result.feature_drift is None:
        return "not computed"
    share = result.feature_drift.get("drifted_share")
    words = (
        f"{len(result.drifted_columns)} of {len(result.feature_drift.get('columns', []))} columns"
    )
    if share is not None:
        words += f" ({float(share):.0%})"
    return ("**dataset drift**, " if result.dataset_drift else "") + words


def _quality_words(result: MonitoringResult) -> str:
    if result.quality_degraded is None:
        return "unknown (no labels matched and no estimate)"
    state = "**degraded**" if result.quality_degraded else "holds"
    return f"{state} ({result.quality_source})"


_KEY = re.compile(r"[^a-z0-9-]+")


def artifact_key(model_name: str) -> str:
    """A Prefect artifact key from a model name (lowercase letters, digits and dashes)."""
    return _KEY.sub("-", model_name.lower()).strip("-") or "model"


def describe(item: Any) -> str:
    """A one-line description of a check's result object (its ``message`` or its dict)."""
    if item is None:
        return "none"
    message = getattr(item, "message", None) or getattr(item, "reason", None)
    if message:
        return str(message)
    data = item.to_dict() if hasattr(item, "to_dict") else item
    shown = {k: v for k, v in dict(data).items() if not isinstance(v, dict | list)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())
