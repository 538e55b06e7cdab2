"""A monitoring run's pieces that are neither a check nor Prefect: which version is watched,
its reference (kept, or computed once from its snapshot), the window's bounds, the typed result
and what is recorded in MLflow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from prefect_mlops.errors import ConfigError, MonitoringError
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.config import MonitoringConfig, TrainingConfig
    from prefect_mlops.monitoring.reference import Reference
    from prefect_mlops.settings import Settings

CONFIG_ARTIFACT = "config/training_config.json"


def monitoring_experiment(model_name: str) -> str:
    """The MLflow experiment of a model's monitoring runs: ``<model>-monitoring``."""
    return f"{model_name}-monitoring"


@dataclass(frozen=True)
class MonitoringTarget:
    """The version a run watches: its number, training run, tags and training config."""

    model_name: str
    version: str
    run_id: str
    tags: dict[str, str]
    config: TrainingConfig | None

    @property
    def task(self) -> str | None:
        """``classification`` or ``regression`` (lineage tag ``mlops.task``)."""
        return self.tags.get(lineage.TASK)

    @property
    def target_column(self) -> str | None:
        """The training target's name (lineage tag ``mlops.target``)."""
        return self.tags.get(lineage.TARGET)


def _training_config(client: MlflowClient, run_id: str) -> TrainingConfig | None:
    import tempfile
    from pathlib import Path

    from prefect_mlops.config import TrainingConfig

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
            raw = json.loads(Path(path).read_text())
        except Exception:
            return None
    try:
        return TrainingConfig.from_mapping(raw, source=f"run {run_id} {CONFIG_ARTIFACT}")
    except ConfigError:
        return None


def resolve_target(client: MlflowClient, model_name: str, version: str | None) -> MonitoringTarget:
    """The version to watch: ``version``, or the champion's.

    Raises ModelNotFoundError (no such model or version) or AliasNotFoundError (no champion).
    """
    from prefect_mlops.errors import AliasNotFoundError
    from prefect_mlops.registry import CHAMPION, get_alias_version, get_registered_model
    from prefect_mlops.registry.store import require_version

    get_registered_model(client, model_name)
    if version is None:
        found = get_alias_version(client, model_name, CHAMPION)
        if found is None:
            raise AliasNotFoundError(
                f"model {model_name!r} has no champion to monitor; pass a version "
                "(--version) or promote one"
            )
    else:
        require_version(client, model_name, str(version))
        found = client.get_model_version(model_name, str(version))
    run_id = str(found.run_id or found.tags.get(lineage.MLFLOW_RUN_ID) or "")
    return MonitoringTarget(
        model_name=model_name,
        version=str(found.version),
        run_id=run_id,
        tags=dict(found.tags),
        config=_training_config(client, run_id) if run_id else None,
    )


def monitoring_config(target: MonitoringTarget, given: MonitoringConfig | None) -> MonitoringConfig:
    """``given``, else the ``monitoring:`` section the version was trained with, else defaults."""
    from prefect_mlops.config import MonitoringConfig

    if given is not None:
        return given
    return target.config.monitoring if target.config is not None else MonitoringConfig()


def load_reference(client: MlflowClient, target: MonitoringTarget) -> tuple[Reference, bool]:
    """The version's reference and whether it was computed now (True) from its snapshot.

    A version registered before monitoring existed has no ``mlops.monitoring.profile`` tag:
    its reference is computed once from its training snapshot (the ``mlops.data.snapshot``
    tag), its training config and the model, then kept on its run and tagged on the version.

    Raises MonitoringError naming the version and what is missing (no profile and no
    snapshot, or no training config to split the snapshot with).
    """
    from prefect_mlops.monitoring.reference import download_reference

    artifact = target.tags.get(lineage.REFERENCE_PROFILE)
    if artifact and target.run_id:
        return download_reference(client, target.run_id, artifact), False
    return backfill_reference(client, target), True


def backfill_reference(client: MlflowClient, target: MonitoringTarget) -> Reference:
    """Compute, keep and tag the reference of a version trained before profiles existed."""
    from pathlib import Path

    from prefect_mlops.data.snapshots import read_snapshot
    from prefect_mlops.data.splitting import split_frame
    from prefect_mlops.modeling.training_run import profile_data
    from prefect_mlops.monitoring.reference import keep_reference
    from prefect_mlops.registry import set_version_tags
    from prefect_mlops.registry.tracking import load_model

    where = f"model {target.model_name!r} version {target.version}"
    snapshot = target.tags.get(lineage.DATA_SNAPSHOT)
    if not snapshot or not Path(snapshot).exists():
        what = f"its snapshot {snapshot} is gone" if snapshot else "no mlops.data.snapshot tag"
        raise MonitoringError(
            f"{where} has no reference profile (tag {lineage.REFERENCE_PROFILE}) and none can "
            f"be computed: {what}; retrain the model to monitor it"
        )
    config = target.config
    if config is None or not target.run_id:
        raise MonitoringError(
            f"{where} has no reference profile and its training run keeps no "
            f"{CONFIG_ARTIFACT} to split its snapshot with; retrain the model to monitor it"
        )
    df = read_snapshot(snapshot)
    data = profile_data(df, config)
    indices = split_frame(
        df,
        config.split,
        target=config.target,
        task=data.task,
        timestamp_column=config.data.timestamp_column,
    )
    model = load_model(f"models:/{target.model_name}/{target.version}")
    reference, artifact = keep_reference(
        client,
        target.run_id,
        df,
        indices,
        data.features,
        task=data.task,
        target=config.target,
        model=model,
        which=config.monitoring.reference,
    )
    set_version_tags(
        client, target.model_name, target.version, {lineage.REFERENCE_PROFILE: artifact}
    )
    return reference


def last_window_end(client: MlflowClient, model_name: str) -> datetime | None:
    """The end of the model's last monitoring window (None when never monitored)."""
    experiment = client.get_experiment_by_name(monitoring_experiment(model_name))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    end = runs[0].data.tags.get(lineage.MONITORING_WINDOW_END)
    return datetime.fromisoformat(end) if end else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window_bounds(
    config: MonitoringConfig,
    *,
    start: datetime | None,
    end: datetime | None,
    last_end: datetime | None,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """(start, end) of the window, UTC: the given ones, else since the last monitoring run's
    end, bounded by ``max_window_days`` before ``end`` (default: now).

    Raises ConfigError when ``start`` is not before ``end``.
    """
    stop = _utc(end or now or datetime.now(UTC))
    oldest = stop - timedelta(days=config.max_window_days)
    begin = _utc(start) if start is not None else max(oldest, _utc(last_end or oldest))
    if begin >= stop:
        raise ConfigError(f"window: start {begin.isoformat()} is not before end {stop.isoformat()}")
    return begin, stop


# -- the result ----------------------------------------------------------------------------------


class MonitoringResult(BaseModel):
    """Every verdict and figure of one monitoring run (what the events of the closed loop are
    made from)."""

    model_name: str
    version: str
    status: Literal["monitored", "nothing_to_monitor"]
    message: str = Field(description="What the run found, in one line.")
    window_start: datetime
    window_end: datetime
    rows: int = Field(description="Scored rows of the version in the window.")
    skipped_files: list[str] = Field(default_factory=list)
    reference_computed: bool = Field(
        default=False, description="The reference was computed now from the version's snapshot."
    )
    skewed: bool = False
    dataset_drift: bool = False
    drifted_columns: list[str] = Field(default_factory=list)
    prediction_drift: bool = False
    quality_degraded: bool | None = Field(
        default=None, description="None: neither labels nor an estimate could say."
    )
    quality_source: Literal["realised", "estimated"] | None = None
    failing: bool = False
    failing_reasons: list[str] = Field(default_factory=list)
    skew: dict[str, Any] | None = None
    feature_drift: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    live_quality: dict[str, Any] | None = None
    estimated_quality: dict[str, Any] | None = None
    efficiency: list[dict[str, Any]] = Field(default_factory=list)
    report_sample: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    events: list[str] = Field(
        default_factory=list, description="The lifecycle events the run emitted (their names)."
    )


_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_key(*parts: str) -> str:
    """An MLflow metric key from ``parts`` (characters MLflow refuses become ``_``)."""
    return ".".join(_METRIC_KEY.sub("_", str(p)) for p in parts)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return float(value) if isinstance(value, bool) else None
    if isinstance(value, int | float):
        return float(value) if value == value and abs(value) != float("inf") else None
    return None


def result_metrics(result: MonitoringResult) -> dict[str, float]:
    """Every score of ``result`` as an MLflow metric: ``drift.<column>.score``,
    ``prediction_drift.<column>.score``, ``skew.findings``, quality and efficiency figures."""
    metrics: dict[str, float] = {"window.rows": float(result.rows)}
    for name, section in (("drift", result.feature_drift), ("prediction_drift", result.prediction)):
        if not section:
            continue
        for column in section.get("columns", []):
            score = _number(column.get("score"))
            if score is not None:
                metrics[metric_key(name, column["column"], "score")] = score
            metrics[metric_key(name, column["column"], "drifted")] = float(
                bool(column.get("drifted"))
            )
        share = _number(section.get("drifted_share"))
        if share is not None:
            metrics[metric_key(name, "drifted_share")] = share
    if result.skew is not None:
        metrics["skew.findings"] = float(len(result.skew.get("findings", [])))
        metrics["skew.missing_columns"] = float(len(result.skew.get("missing_columns", [])))
        metrics["skew.unexpected_columns"] = float(len(result.skew.get("unexpected_columns", [])))
    for prefix, section in (
        ("quality.realised", result.live_quality),
        ("quality.estimated", result.estimated_quality),
    ):
        for key, value in (section or {}).items():
            number = _number(value)
            if number is not None:
                metrics[metric_key(prefix, key)] = number
    for item in result.efficiency:
        version = str(item.get("model_version", result.version))
        for key, value in item.items():
            number = _number(value)
            if number is not None and key != "model_version":
                metrics[metric_key("efficiency", f"v{version}", key)] = number
    return metrics


def record_run(
    client: MlflowClient,
    settings: Settings,
    result: MonitoringResult,
    *,
    html_report: str | None,
    run_tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Record ``result`` as a finished run of the ``<model>-monitoring`` experiment (tags:
    version and window; metrics: every score; artifacts: the result JSON and Evidently's
    report), point the version's ``mlops.monitoring.latest_run`` tag at it; returns the run id
    and its page in the MLflow UI.
    """
    from prefect_mlops.modeling.training_run import mlflow_run_link
    from prefect_mlops.registry import ensure_experiment, set_version_tags
    from prefect_mlops.registry.tracking import log_json_artifact, log_text_artifact

    experiment_id = ensure_experiment(
        client, monitoring_experiment(result.model_name), settings.resolved_artifact_location
    )
    tags = {
        lineage.MODEL_NAME: result.model_name,
        lineage.MONITORING_MODEL_VERSION: result.version,
        lineage.MONITORING_WINDOW_START: result.window_start.isoformat(),
        lineage.MONITORING_WINDOW_END: result.window_end.isoformat(),
        lineage.MONITORING_WINDOW_ROWS: str(result.rows),
        **(run_tags or {}),
    }
    run = client.create_run(
        experiment_id,
        run_name=f"{result.model_name}-v{result.version}-{result.window_end:%Y%m%dT%H%M%S}",
        tags=tags,
    )
    run_id = run.info.run_id
    try:
        from mlflow.entities import Metric

        stamp = int(result.window_end.timestamp() * 1000)
        metrics = [Metric(k, v, stamp, 0) for k, v in sorted(result_metrics(result).items())]
        for i in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[i : i + 900])
        log_json_artifact(client, run_id, result.model_dump(mode="json"), "monitoring/result.json")
        if html_report is not None:
            log_text_artifact(client, run_id, html_report, "monitoring/evidently_report.html")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    set_version_tags(
        client,
        result.model_name,
        result.version,
        {
            lineage.MONITORING_LATEST_RUN: run_id,
            lineage.MONITORING_LATEST_AT: result.window_end.isoformat(),
        },
    )
    return run_id, mlflow_run_link(settings.mlflow_ui_url, experiment_id, run_id)
