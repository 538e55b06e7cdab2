"""The lifecycle's events, emitted by the real flows and read back from a real Prefect API:
training (blessed with the trigger that asked for it, nothing when unchanged; a trigger lacking
a field fails the run before anything is trained), monitoring (skew, drift, quality degraded,
failing — each only when its verdict says so, none for nothing to monitor) and deployment
(promoted, rolled back; a real BentoML server infra-validates each candidate).

A champion trained by the real training flow (MLflow on SQLite in tmp_path), its traffic written
to the serving log by the serving log's own writer (``monitoring_support.serve``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import churn_config, last_flow_run, registry_state, write_frame
from monitoring_support import FEATURES, Trained, day_slot, serve
from test_data_arrival import stored

from prefect_mlops import events
from prefect_mlops.config import DataSource, MonitoringConfig
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring.runner import MonitoringResult
from prefect_mlops.registry import lineage

pytestmark = pytest.mark.usefixtures("prefect_api")

MODEL = "churn-events"
FIRST_TRIGGER = {"event": events.DATA_ARRIVED, "version": None, "reason": "4,000 rows arrived"}


def _client() -> Any:
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    return mlflow_client(get_settings())


@pytest.fixture(scope="module")
def trained(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """v1 of ``churn-events``, trained by the real flow on 4,000 demo rows, asked for by a
    data-arrived trigger; ``MLOPS_HOME`` and the serving log under a temporary folder."""
    from prefect_mlops.flows.training import continuous_training
    from prefect_mlops.registry.tracking import load_model

    root = tmp_path_factory.mktemp("lifecycle-events")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops-home"))
        for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
            mp.delenv(key, raising=False)
        log_dir = root / "serving_log"
        mp.setenv("MLOPS_SERVING_LOG_DIR", str(log_dir))
        csv = write_frame(generate_churn(4000, seed=3), root / "data" / "churn.csv")
        outcome = continuous_training(churn_config(csv, model_name=MODEL), FIRST_TRIGGER)
        assert (outcome.version, outcome.status) == ("1", "blessed"), outcome
        model = load_model(f"models:/{MODEL}/1")
        yield Trained(model_name=MODEL, home=root, log_dir=log_dir, model=model, csv=csv)


def monitor(start: Any, **kwargs: Any) -> MonitoringResult:
    from prefect_mlops.flows.monitoring import continuous_monitoring

    return continuous_monitoring(
        model_name=MODEL, start=start, end=start + timedelta(hours=2), **kwargs
    )


def one(name: str, result: MonitoringResult) -> Any:
    """The one stored ``name`` event of ``result``'s monitoring run."""
    [event] = stored(name, MODEL, monitoring_run_id=result.mlflow_run_id)
    assert event.payload["version"] == result.version
    return event


# -- training ------------------------------------------------------------------------------------


def test_a_blessed_version_is_announced_with_the_trigger_that_asked_for_it(
    trained: Trained,
) -> None:
    [event] = stored(events.MODEL_BLESSED, MODEL, version="1")
    version = _client().get_model_version(MODEL, "1")
    payload = event.payload
    assert payload["run_id"] == version.run_id
    assert payload["snapshot_digest"] == version.tags[lineage.DATA_DIGEST]
    assert payload["champion_before"] is None
    assert payload["metrics"]["roc_auc"] == pytest.approx(
        float(version.tags[lineage.metric_tag("roc_auc")]), abs=1e-5
    )
    assert payload["trigger"] == {**FIRST_TRIGGER, "model_name": None}
    assert "blessed" in payload["reason"]
    assert {r.role for r in event.related} >= {"model-version", "flow-run", "task-run"}
    # why the run happened, on the run and on the version it registered
    run_tags = _client().get_run(version.run_id).data.tags
    for tags in (run_tags, version.tags):
        assert tags[lineage.TRIGGER_EVENT] == events.DATA_ARRIVED
        assert tags[lineage.TRIGGER_VERSION] == "none"
        assert tags[lineage.TRIGGER_REASON] == "4,000 rows arrived"


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"event": events.DRIFT_DETECTED, "version": "1"}, "reason"),
        ({"event": events.DRIFT_DETECTED, "version": "", "reason": "drift"}, "version"),
        ({"event": events.DRIFT_DETECTED, "version": "champion", "reason": "x"}, "version"),
        ({"version": "1", "reason": "drift"}, "event"),
        ({"event": events.MODEL_PROMOTED, "version": "1", "reason": "x"}, "event"),
        ({"event": events.DRIFT_DETECTED, "reason": "x", "model_name": "other"}, "model_name"),
        ({"event": events.DRIFT_DETECTED, "reason": "x", "versoin": "1"}, "versoin"),
    ],
    ids=[
        "no-reason",
        "empty-version",
        "version-not-digits",
        "no-event",
        "not-a-retrain-event",
        "other-model",
        "unknown-field",
    ],
)
def test_a_trigger_lacking_a_field_fails_the_run_naming_it_before_training(
    trained: Trained, trigger: dict[str, Any], field: str
) -> None:
    from prefect_mlops.flows.training import continuous_training

    client = _client()
    experiment = client.get_experiment_by_name(MODEL)
    runs_before = len(client.search_runs([experiment.experiment_id]))
    registry_before = registry_state(MODEL)
    with pytest.raises(ConfigError, match=rf"^trigger\.{field}: .*\(trigger \{{"):
        continuous_training(churn_config(trained.csv, model_name=MODEL), trigger)
    assert registry_state(MODEL) == registry_before
    assert len(client.search_runs([experiment.experiment_id])) == runs_before


def test_the_failed_run_says_which_trigger_field_is_missing(trained: Trained) -> None:

    from prefect_mlops.flows.training import continuous_training

    with pytest.raises(ConfigError):
        continuous_training(
            churn_config(trained.csv, model_name=MODEL),
            {"event": events.QUALITY_DEGRADED, "reason": "accuracy fell", "version": "latest"},
        )

    run = last_flow_run("continuous-training")
    assert run.state is not None and run.state.is_failed()
    assert "trigger.version: must be a version number (digits) or null, got 'latest'" in str(
        run.state.message
    )


def test_an_unchanged_retrain_announces_nothing_and_records_its_trigger(
    trained: Trained,
) -> None:
    from prefect_mlops.flows.training import continuous_training

    trigger = events.RetrainTrigger(
        event=events.DRIFT_DETECTED, version="1", reason="dataset drift: 5 columns"
    )
    outcome = continuous_training(churn_config(trained.csv, model_name=MODEL), trigger)
    assert outcome.status == "unchanged"
    assert stored(events.MODEL_BLESSED, MODEL, wait=1.0, run_id=outcome.run_id) == []
    assert stored(events.MODEL_NOT_BLESSED, MODEL, wait=0.0, run_id=outcome.run_id) == []
    tags = _client().get_run(outcome.run_id).data.tags
    assert tags[lineage.TRIGGER_EVENT] == events.DRIFT_DETECTED
    assert tags[lineage.TRIGGER_VERSION] == "1"


# -- monitoring ----------------------------------------------------------------------------------


def test_drifted_traffic_emits_drift_detected_with_the_scores(trained: Trained) -> None:
    start = day_slot(0)
    serve(trained, generate_churn(2000, seed=31, covariate_shift=2.0), start=start)
    result = monitor(start)
    assert result.dataset_drift or result.prediction_drift, result.message
    assert events.DRIFT_DETECTED in result.events
    payload = one(events.DRIFT_DETECTED, result).payload
    drifted = {c["column"]: c for c in payload["drifted_columns"]}
    assert set(drifted) == set(result.drifted_columns)
    for item in drifted.values():
        assert item["score"] is not None and item["threshold"] is not None and item["method"]
    assert payload["dataset_drift"] == result.dataset_drift
    assert payload["prediction_drift"] == result.prediction_drift
    assert payload["drift_share"] == 0.5
    assert payload["drifted_share"] == pytest.approx(len(drifted) / len(FEATURES))
    assert payload["rows"] == 2000
    assert payload["window_start"] == start.isoformat()
    assert payload["window_end"] == (start + timedelta(hours=2)).isoformat()
    assert "drift" in payload["reason"]


def test_skewed_traffic_emits_skew_detected_naming_the_columns(trained: Trained) -> None:
    start = day_slot(1)
    traffic = generate_churn(1000, seed=32)
    logged = traffic[FEATURES].drop(columns=["region"])
    logged["coupon_code"] = "SPRING"
    serve(trained, traffic, start=start, logged=logged)
    result = monitor(start)
    assert events.SKEW_DETECTED in result.events
    payload = one(events.SKEW_DETECTED, result).payload
    assert payload["missing_columns"] == ["region"]
    assert payload["unexpected_columns"] == ["coupon_code"]
    assert payload["finding_count"] == len((result.skew or {}).get("findings", []))
    assert "missing column 'region'" in payload["reason"]


def test_concept_drift_with_labels_emits_realised_quality_degraded(
    trained: Trained, tmp_path: Path
) -> None:
    start = day_slot(2)
    traffic = generate_churn(1500, seed=33, concept_drift=1.0)
    ids = serve(trained, traffic, start=start, rows_per_request=1)
    labels = pd.DataFrame({"request_id": ids, "churned": traffic["churned"].to_numpy()})
    config = MonitoringConfig(
        labels=DataSource(path=str(write_frame(labels, tmp_path / "labels.csv")))
    )
    result = monitor(start, monitoring=config)
    assert result.quality_degraded and result.quality_source == "realised", result.message
    assert events.QUALITY_DEGRADED in result.events
    payload = one(events.QUALITY_DEGRADED, result).payload
    assert payload["source"] == "realised"
    assert payload["metric"] == "accuracy" and payload["max_drop"] == 0.05
    assert payload["value"] == pytest.approx(result.live_quality["value"])  # type: ignore[index]
    assert payload["drop"] == pytest.approx(payload["reference"] - payload["value"])
    assert payload["drop"] > payload["max_drop"]
    assert "realised accuracy" in payload["reason"]


def test_slow_clean_traffic_emits_only_model_failing(trained: Trained) -> None:
    start = day_slot(3)
    # the rows the monitoring flow's own tests find undrifted, served slowly
    serve(trained, generate_churn(3000, seed=21), start=start, latency_ms=900.0)
    result = monitor(start, monitoring=MonitoringConfig(latency_p99_ms=250))
    assert result.events == [events.MODEL_FAILING], result.message
    payload = one(events.MODEL_FAILING, result).payload
    assert payload["p99_ms"] == pytest.approx(900.0)
    assert payload["error_rate"] == 0.0
    assert payload["slo"] == {"max_error_rate": 0.01, "latency_p99_ms": 250.0}
    assert payload["reasons"] == result.failing_reasons
    assert "p99 latency 900.0 ms above the SLO 250 ms" in payload["reason"]


def test_a_window_with_nothing_to_monitor_emits_nothing(trained: Trained) -> None:
    start = day_slot(20)
    result = monitor(start)
    assert result.status == "nothing_to_monitor" and result.events == []


def test_payload_lists_are_capped(trained: Trained) -> None:
    """A window with every served column unexpected keeps its skew event small."""
    start = day_slot(4)
    traffic = generate_churn(200, seed=35)
    logged = traffic[FEATURES].copy()
    for i in range(3 * events.MAX_LISTED):
        logged[f"extra_{i}"] = np.float64(i)
    serve(trained, traffic, start=start, logged=logged)
    result = monitor(start)
    payload = one(events.SKEW_DETECTED, result).payload
    assert len(payload["unexpected_columns"]) == events.MAX_LISTED
    assert len((result.skew or {})["unexpected_columns"]) == 3 * events.MAX_LISTED
    assert len(payload["reason"]) <= events.MAX_TEXT


# -- deployment ----------------------------------------------------------------------------------


def test_deployment_announces_promotion_and_rollback(trained: Trained) -> None:
    """v2 (blessed, not promoted) goes blue-green to champion: promoted, v1 before it; then a
    canary of v1 that sees no traffic before its time is up: rolled back, v2 kept."""
    from prefect_mlops.deployment.rollout import DeploymentConfig
    from prefect_mlops.flows.deployment import model_deployment
    from prefect_mlops.flows.training import continuous_training

    second = continuous_training(churn_config(trained.csv, model_name=MODEL, promote=False))
    assert second.version == "2" and second.status == "blessed", second
    [blessed] = stored(events.MODEL_BLESSED, MODEL, version="2")
    assert blessed.payload["champion_before"] == "1" and blessed.payload["trigger"] is None

    promoted = model_deployment(
        DeploymentConfig(model_name=MODEL, version="2", strategy="blue-green")
    )
    assert promoted.result == "promoted", promoted.reason
    [event] = stored(events.MODEL_PROMOTED, MODEL, version="2")
    assert event.payload["previous_champion"] == "1"
    assert event.payload["strategy"] == "blue-green"
    assert event.payload["reason"] == promoted.reason

    canary = DeploymentConfig(
        model_name=MODEL, version="1", strategy="canary", min_requests=15, max_minutes=0.05,
        poll_seconds=0.5,
    )  # fmt: skip
    rolled = model_deployment(canary)
    assert rolled.result == "rolled_back", rolled.reason
    assert registry_state(MODEL)[0]["champion"] == "2"
    [event] = stored(events.MODEL_ROLLED_BACK, MODEL, version="1")
    payload = event.payload
    assert payload["previous_champion"] == "2" and payload["strategy"] == "canary"
    assert payload["canary_requests"] == 0
    assert payload["canary_error_rate"] == 0.0 and "canary_p99_ms" in payload
    assert payload["reason"] == rolled.reason
