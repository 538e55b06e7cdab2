"""The continuous-monitoring flow on bad input and faults: a real Prefect API, one champion
trained by the real training flow (MLflow on SQLite in tmp_path), traffic written by the
serving log's writer, real GX, real Evidently.

Each case a test: a column served that the model never saw (and one left out), labels that
match no prediction, a column whose test cannot run, a version with neither profile nor
snapshot, a version trained before profiles existed, the window defaults, bad and good
``monitoring.columns`` overrides, and the Dask path against the default one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import registry_state, write_frame
from monitoring_support import FEATURES, Trained, day_slot, serve, trained_champion

from prefect_mlops.config import DataSource, DriftOverride, MonitoringConfig
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import ConfigError, MonitoringError
from prefect_mlops.monitoring.runner import MonitoringResult
from prefect_mlops.registry import lineage

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "churn-faults"


@pytest.fixture(scope="module")
def trained(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """v1 of ``churn-faults`` (the champion), trained by the real flow on 4,000 demo rows."""
    with trained_champion(tmp_path_factory.mktemp("monitoring-faults"), MODEL) as champion:
        yield champion


def monitor(start: datetime | None, end: datetime | None, **kwargs: Any) -> MonitoringResult:
    from prefect_mlops.flows.monitoring import continuous_monitoring

    return continuous_monitoring(
        model_name=kwargs.pop("model_name", MODEL), start=start, end=end, **kwargs
    )


def _client() -> Any:
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    return mlflow_client(get_settings())


def _columns(section: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["column"]: c for c in (section or {}).get("columns", [])}


@pytest.fixture(scope="module")
def clean_window(trained: Trained) -> tuple[datetime, datetime]:
    """3,000 undrifted rows served on a day of their own: (start, end) of their window."""
    start = day_slot(0)
    serve(trained, generate_churn(3000, seed=41), start=start)
    return start, start + timedelta(hours=2)


@pytest.fixture(scope="module")
def clean_result(clean_window: tuple[datetime, datetime]) -> MonitoringResult:
    """The default (one-process) run over the clean window."""
    result = monitor(*clean_window)
    assert result.status == "monitored" and result.rows == 3000
    return result


# -- 1. skew: a column the model never saw, one left out ------------------------------------


def test_an_unseen_and_a_missing_column_are_skew_and_drift_runs_on_the_rest(
    trained: Trained,
) -> None:
    start = day_slot(1)
    traffic = generate_churn(1000, seed=42)
    logged = traffic[FEATURES].drop(columns=["region"])
    logged["coupon_code"] = "SPRING"  # a field the client sent that the model never saw
    serve(trained, traffic, start=start, logged=logged)

    result = monitor(start, start + timedelta(hours=1))

    assert result.status == "monitored" and result.rows == 1000
    assert result.skewed
    assert result.skew is not None
    assert result.skew["missing_columns"] == ["region"]
    assert result.skew["unexpected_columns"] == ["coupon_code"]
    assert "schema skew" in result.message
    drift = _columns(result.feature_drift)
    assert "coupon_code" not in drift
    assert "missing from the window" in drift["region"]["error"]
    rest = {c: d for c, d in drift.items() if c != "region"}
    assert set(rest) == set(FEATURES) - {"region"}
    for column, item in rest.items():
        assert item["error"] is None, (column, item["error"])
        assert item["score"] is not None and item["method"], column
    assert result.feature_drift is not None
    assert result.feature_drift["tested_columns"] == len(FEATURES) - 1


# -- 2. labels that match no prediction -------------------------------------------------------


def test_labels_matching_no_prediction_leave_quality_unknown_naming_the_source(
    clean_window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    labels = pd.DataFrame(
        {"request_id": [f"never-served-{i}" for i in range(40)], "row_index": 0, "churned": 1}
    )
    path = write_frame(labels, tmp_path / "late_labels.csv")

    result = monitor(*clean_window, monitoring=MonitoringConfig(labels=DataSource(path=str(path))))

    assert result.status == "monitored"
    live = result.live_quality
    assert live is not None
    assert live["status"] == "unknown"
    assert live["n_labelled"] == 0 and live["value"] is None
    assert str(path) in live["message"]
    assert "none of the 40 labels" in live["message"]
    # the verdict falls back on the estimate: no crash, no realised verdict
    assert result.quality_source != "realised"


# -- 3. one column whose test cannot run --------------------------------------------------------


def test_an_all_null_column_is_reported_for_that_column_and_the_others_go_on(
    trained: Trained,
) -> None:
    start = day_slot(2)
    traffic = generate_churn(1000, seed=43)
    logged = traffic[FEATURES].copy()
    logged["age"] = None  # the client stopped sending it: every value null
    serve(trained, traffic, start=start, logged=logged)

    result = monitor(start, start + timedelta(hours=1))

    assert result.status == "monitored" and result.rows == 1000
    drift = _columns(result.feature_drift)
    assert drift["age"]["error"] is not None and "null" in drift["age"]["error"]
    assert drift["age"]["drifted"] is False and drift["age"]["score"] is None
    for column in set(FEATURES) - {"age"}:
        assert drift[column]["error"] is None, (column, drift[column]["error"])
        assert drift[column]["score"] is not None, column
    assert result.feature_drift is not None
    assert result.feature_drift["tested_columns"] == len(FEATURES) - 1
    assert "age" not in result.drifted_columns
    assert result.prediction is not None and _columns(result.prediction)["prediction"]["score"]


# -- 4. a version with neither profile nor snapshot ------------------------------------------


def _register_bare_version(name: str) -> None:
    """v1 of ``name`` registered with MLflow's own client (no prefect-mlops tags, no config,
    no snapshot, no profile), aliased champion."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from prefect_mlops.registry import configure_mlflow, ensure_experiment
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    configure_mlflow(settings)
    frame = generate_churn(200, seed=44)
    X = frame[["tenure_months", "monthly_charges"]]
    model = LogisticRegression(max_iter=200).fit(X, frame["churned"])
    client = _client()
    # artifacts under MLOPS_HOME (MLflow's own default would be ./mlruns in the checkout)
    experiment = ensure_experiment(client, f"{name}-by-hand", settings.resolved_artifact_location)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    client.create_registered_model(name)
    client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")


def test_a_version_without_profile_or_snapshot_fails_naming_what_is_missing(
    trained: Trained,
) -> None:
    name = "churn-by-hand"
    _register_bare_version(name)
    before = registry_state(name)
    tags_before = dict(_client().get_model_version(name, "1").tags)

    with pytest.raises(MonitoringError) as caught:
        monitor(day_slot(3), day_slot(3) + timedelta(hours=1), model_name=name)

    message = str(caught.value)
    assert f"model {name!r} version 1" in message
    assert lineage.REFERENCE_PROFILE in message and lineage.DATA_SNAPSHOT in message
    assert registry_state(name) == before == ({"champion": "1"}, ["1"])
    assert dict(_client().get_model_version(name, "1").tags) == tags_before


def test_a_trained_version_whose_snapshot_is_gone_fails_naming_the_snapshot(
    trained: Trained, tmp_path: Path
) -> None:
    client = _client()
    version = client.get_model_version(MODEL, "1")
    snapshot = Path(version.tags[lineage.DATA_SNAPSHOT])
    profile = version.tags[lineage.REFERENCE_PROFILE]
    before = registry_state(MODEL)
    aside = tmp_path / snapshot.name
    shutil.move(snapshot, aside)
    client.delete_model_version_tag(MODEL, "1", lineage.REFERENCE_PROFILE)
    try:
        with pytest.raises(MonitoringError) as caught:
            monitor(day_slot(4), day_slot(4) + timedelta(hours=1))
        assert lineage.REFERENCE_PROFILE not in client.get_model_version(MODEL, "1").tags
    finally:
        shutil.move(aside, snapshot)
        client.set_model_version_tag(MODEL, "1", lineage.REFERENCE_PROFILE, profile)
    message = str(caught.value)
    assert f"model {MODEL!r} version 1" in message
    assert str(snapshot) in message and "gone" in message
    assert registry_state(MODEL) == before


# -- 5. a version trained before profiles existed ----------------------------------------------


def _profile_json(run_id: str) -> dict[str, Any]:
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = _client().download_artifacts(run_id, lineage.REFERENCE_PROFILE_ARTIFACT, tmp)
        return dict(json.loads(Path(path).read_text()))


def test_a_version_without_a_profile_gets_it_computed_once_from_its_snapshot(
    trained: Trained,
) -> None:
    client = _client()
    run_id = str(client.get_model_version(MODEL, "1").run_id)
    at_training = _profile_json(run_id)
    client.delete_model_version_tag(MODEL, "1", lineage.REFERENCE_PROFILE)
    start = day_slot(5)

    first = monitor(start, start + timedelta(hours=1))

    assert first.reference_computed is True
    tags = client.get_model_version(MODEL, "1").tags
    assert tags[lineage.REFERENCE_PROFILE] == lineage.REFERENCE_PROFILE_ARTIFACT
    assert _profile_json(run_id) == at_training  # the same profile training kept
    second = monitor(start, start + timedelta(hours=1))
    assert second.reference_computed is False


# -- 6. the window defaults -----------------------------------------------------------------


def test_a_run_without_start_starts_where_the_last_one_ended(trained: Trained) -> None:
    start = day_slot(6)
    previous = monitor(start, start + timedelta(hours=1))

    following = monitor(None, start + timedelta(hours=3))

    assert following.window_start == previous.window_end
    assert following.window_end == start + timedelta(hours=3)
    # never further back than max_window_days, however long ago the last window ended
    far = start + timedelta(days=30)
    bounded = monitor(None, far, monitoring=MonitoringConfig(max_window_days=2))
    assert bounded.window_start == far - timedelta(days=2)


# -- 7. monitoring.columns overrides --------------------------------------------------------


def test_an_override_of_an_unknown_column_is_a_config_error_naming_it(
    clean_window: tuple[datetime, datetime],
) -> None:
    config = MonitoringConfig(columns={"monthly_fee": DriftOverride(method="ks")})
    with pytest.raises(ConfigError) as caught:
        monitor(*clean_window, monitoring=config)
    assert "monitoring.columns" in str(caught.value) and "monthly_fee" in str(caught.value)


def test_an_override_of_an_unknown_column_fails_even_on_an_empty_window(
    trained: Trained,
) -> None:
    config = MonitoringConfig(columns={"monthly_fee": DriftOverride(method="ks")})
    start = day_slot(7)
    with pytest.raises(ConfigError, match=r"monitoring\.columns.*monthly_fee"):
        monitor(start, start + timedelta(hours=1), monitoring=config)


def test_an_override_changes_that_columns_method(
    clean_window: tuple[datetime, datetime], clean_result: MonitoringResult
) -> None:
    config = MonitoringConfig(columns={"monthly_charges": DriftOverride(method="ks")})

    result = monitor(*clean_window, monitoring=config)

    drift = _columns(result.feature_drift)
    default = _columns(clean_result.feature_drift)
    assert default["monthly_charges"]["method"] != "ks"
    assert drift["monthly_charges"]["method"] == "ks"
    assert drift["monthly_charges"]["threshold"] == 0.05
    others = set(FEATURES) - {"monthly_charges"}
    assert {c: drift[c]["method"] for c in others} == {c: default[c]["method"] for c in others}


# -- 8. Dask ----------------------------------------------------------------------------------


def test_dask_gives_the_same_verdicts_and_scores_as_one_process(
    clean_window: tuple[datetime, datetime], clean_result: MonitoringResult
) -> None:
    result = monitor(*clean_window, monitoring=MonitoringConfig(dask_address="local"))

    assert result.rows == clean_result.rows
    for section in ("feature_drift", "prediction"):
        got, want = _columns(getattr(result, section)), _columns(getattr(clean_result, section))
        assert set(got) == set(want), section
        for column, item in want.items():
            other = got[column]
            assert other["method"] == item["method"], column
            assert other["drifted"] == item["drifted"], column
            assert other["rows"] == item["rows"], column
            assert other["score"] == pytest.approx(item["score"], abs=1e-9), column
    assert result.dataset_drift == clean_result.dataset_drift
    assert result.drifted_columns == clean_result.drifted_columns
