"""The continuous-monitoring flow end to end: a real Prefect API, a champion trained by the real
training flow (MLflow on SQLite in tmp_path), traffic scored by the champion and written to the
serving log by its own writer, real GX, real Evidently.

Scenarios: undrifted traffic (no drift), covariate shift (drift on the shifted columns only),
concept drift with labels (quality degraded while feature drift stays quiet), an empty window,
a version trained before profiles existed (its profile computed once from its snapshot), and
an unreadable serving-log file (named and skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import churn_config, write_frame
from monitoring_support import FEATURES, Trained, day_slot, serve, trained_champion

from prefect_mlops.data.demo import generate_churn
from prefect_mlops.registry import lineage

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "churn-monitor"


@pytest.fixture(scope="module")
def trained(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """v1 of ``churn-monitor`` (the champion), trained by the real flow on 4,000 demo rows."""
    with trained_champion(tmp_path_factory.mktemp("monitoring"), MODEL) as champion:
        yield champion


def monitor(start: datetime, end: datetime, model_name: str = MODEL, **kwargs: Any) -> Any:
    from prefect_mlops.flows.monitoring import continuous_monitoring

    return continuous_monitoring(model_name=model_name, start=start, end=end, **kwargs)


_slot = day_slot


def test_training_keeps_the_reference_profile_with_the_version(trained: Trained) -> None:
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    client = mlflow_client(get_settings())
    version = client.get_model_version(MODEL, "1")
    assert version.tags[lineage.REFERENCE_PROFILE] == lineage.REFERENCE_PROFILE_ARTIFACT
    files = {f.path for f in client.list_artifacts(str(version.run_id), "monitoring")}
    assert files == {lineage.REFERENCE_PROFILE_ARTIFACT, "monitoring/reference_sample.parquet"}


def test_undrifted_traffic_finds_no_drift(trained: Trained) -> None:
    start = _slot(0)
    serve(trained, generate_churn(3000, seed=21), start=start)
    result = monitor(start, start + timedelta(hours=2))
    assert result.status == "monitored"
    assert result.rows == 3000
    assert result.drifted_columns == [] and not result.dataset_drift
    assert not result.skewed, result.skew
    assert not result.prediction_drift
    assert result.quality_degraded is False and result.quality_source == "estimated"
    assert not result.failing
    [eff] = result.efficiency
    assert eff["requests"] == 150 and eff["server_errors"] == 0
    # what was recorded: an MLflow run in <model>-monitoring, the version pointing at it
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    client = mlflow_client(get_settings())
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags[lineage.MONITORING_MODEL_VERSION] == "1"
    assert run.data.tags[lineage.MONITORING_WINDOW_ROWS] == "3000"
    assert "drift.tenure_months.score" in run.data.metrics
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id, "monitoring")}
    assert "monitoring/evidently_report.html" in artifacts
    version = client.get_model_version(MODEL, "1")
    assert version.tags[lineage.MONITORING_LATEST_RUN] == result.mlflow_run_id


def test_covariate_shift_drifts_the_shifted_columns_only(trained: Trained) -> None:
    start = _slot(1)
    traffic = generate_churn(3000, seed=22)
    traffic["monthly_charges"] = traffic["monthly_charges"] * 1.6 + 15
    traffic["contract"] = np.where(
        np.arange(len(traffic)) % 3 == 0, "month-to-month", traffic["contract"]
    )
    serve(trained, traffic, start=start)
    result = monitor(start, start + timedelta(hours=2))
    assert "monthly_charges" in result.drifted_columns
    assert "contract" in result.drifted_columns
    untouched = {"age", "region", "payment_method", "support_calls"}
    assert untouched.isdisjoint(result.drifted_columns), result.drifted_columns


def test_concept_drift_with_labels_degrades_quality_while_features_stay_quiet(
    trained: Trained, tmp_path: Path
) -> None:
    from prefect_mlops.config import DataSource, MonitoringConfig

    start = _slot(2)
    traffic = generate_churn(3000, seed=23, concept_drift=1.0)
    ids = serve(trained, traffic, start=start, rows_per_request=1)
    labels = pd.DataFrame({"request_id": ids, "churned": traffic["churned"].to_numpy()})
    labels_path = write_frame(labels, tmp_path / "labels.csv")
    config = MonitoringConfig(labels=DataSource(path=str(labels_path)))
    result = monitor(start, start + timedelta(hours=2), monitoring=config)
    assert result.quality_degraded is True, (result.message, result.live_quality)
    assert result.quality_source == "realised"
    assert result.live_quality is not None and result.live_quality["n_labelled"] == 3000
    assert not result.dataset_drift


def test_an_empty_window_is_nothing_to_monitor(trained: Trained) -> None:
    start = _slot(30)
    result = monitor(start, start + timedelta(hours=1))
    assert result.status == "nothing_to_monitor"
    assert result.rows == 0
    assert result.drifted_columns == [] and not result.dataset_drift
    assert "nothing to monitor" in result.message


def test_an_unreadable_serving_log_file_is_named_and_skipped(trained: Trained) -> None:
    start = _slot(3)
    serve(trained, generate_churn(500, seed=24), start=start)
    day = trained.log_dir / f"model={MODEL}" / f"date={start:%Y-%m-%d}"
    broken = day / "part-broken.parquet"
    broken.write_bytes(b"not parquet at all")
    try:
        result = monitor(start, start + timedelta(hours=1))
    finally:
        broken.unlink()
    assert result.rows == 500
    assert any("part-broken.parquet" in s for s in result.skipped_files)


def _training_rows(trained: Trained) -> pd.DataFrame:
    """The rows the champion's reference profile was built from (its snapshot's training part)."""
    from prefect_mlops.data.snapshots import read_snapshot
    from prefect_mlops.data.splitting import split_frame
    from prefect_mlops.modeling.training_run import profile_data
    from prefect_mlops.monitoring.reference import reference_rows
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    version = mlflow_client(get_settings()).get_model_version(MODEL, "1")
    config = churn_config(trained.csv, model_name=MODEL)
    df = read_snapshot(version.tags[lineage.DATA_SNAPSHOT])
    data = profile_data(df, config)
    split = split_frame(
        df, config.split, target=config.target, task=data.task, timestamp_column="event_ts"
    )
    return reference_rows(df, split)


def test_drift_verdicts_equal_evidently_on_the_same_frames(trained: Trained) -> None:
    """Evidently's DataDriftPreset on (the training rows, the served rows) drifts exactly the
    columns the flow said drifted, with the same methods."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = _slot(4)
    traffic = generate_churn(3000, seed=25, covariate_shift=0.6)
    serve(trained, traffic, start=start)
    result = monitor(start, start + timedelta(hours=2))
    numeric, categorical = FEATURES[:5], FEATURES[5:]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(traffic[FEATURES].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(
            _training_rows(trained)[FEATURES].reset_index(drop=True), data_definition=definition
        ),
    )
    theirs: dict[str, tuple[str, float, float]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            theirs[config["column"]] = (config["method"], metric["value"], config["threshold"])
    ours = {c["column"]: c for c in (result.feature_drift or {})["columns"]}
    assert set(theirs) == set(ours) == set(FEATURES)
    drifted_theirs = {c for c, (_, score, threshold) in theirs.items() if score >= threshold}
    assert set(result.drifted_columns) == drifted_theirs
    assert drifted_theirs, "the shift should drift some columns"
    for column, (_, score, _) in theirs.items():
        assert ours[column]["score"] == pytest.approx(score, rel=0.01, abs=0.002), column


def test_the_estimate_tracks_realised_accuracy_under_covariate_shift(
    trained: Trained, tmp_path: Path
) -> None:
    """CBPE on a well-specified model (a logistic regression, trained by the flow): the estimate
    before labels is the accuracy the labels then show. (Gradient-boosted trees cannot
    extrapolate to shifted rows, so no calibration can estimate them there: docs/monitoring.md.)"""
    from prefect_mlops.config import DataSource, MonitoringConfig
    from prefect_mlops.flows.training import continuous_training
    from prefect_mlops.registry.tracking import load_model

    name = "churn-monitor-linear"
    linear = {"class_path": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}
    outcome = continuous_training(churn_config(trained.csv, model_name=name, estimator=linear))
    assert outcome.status == "blessed"
    model = Trained(
        name, trained.home, trained.log_dir, load_model(f"models:/{name}/1"), trained.csv
    )
    start = _slot(5)
    traffic = generate_churn(3000, seed=26, covariate_shift=1.0)
    ids = serve(model, traffic, start=start, rows_per_request=1)
    labels = pd.DataFrame({"request_id": ids, "churned": traffic["churned"].to_numpy()})
    config = MonitoringConfig(labels=DataSource(path=str(write_frame(labels, tmp_path / "l.csv"))))
    result = monitor(start, start + timedelta(hours=2), model_name=name, monitoring=config)
    assert result.estimated_quality is not None and result.live_quality is not None
    estimated = result.estimated_quality["metrics"]["accuracy"]
    realised = result.live_quality["value"]
    reference = result.estimated_quality["reference"]["accuracy"]
    assert abs(realised - reference) > 0.02, "the shift should move accuracy"
    assert estimated == pytest.approx(realised, abs=0.03), (estimated, realised, reference)
