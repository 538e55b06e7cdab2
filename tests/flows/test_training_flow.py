"""The continuous-training flow end to end: real Prefect API, MLflow on SQLite, real GX."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import churn_config, registry_state, write_frame
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler

from prefect_mlops import registry
from prefect_mlops.data.demo import generate_churn
from prefect_mlops.data.snapshots import verify_snapshot
from prefect_mlops.errors import DataValidationError
from prefect_mlops.flows.training import continuous_training, continuous_training_from_file
from prefect_mlops.registry import lineage
from prefect_mlops.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_api")


def _client():
    return registry.mlflow_client(get_settings())


def test_champion_lifecycle_first_worse_better(mlops_home: Path, tmp_path: Path) -> None:
    data = write_frame(generate_churn(3000, seed=1), tmp_path / "churn.csv")
    weak = {
        "class_path": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 2},
    }
    # 1. First run: value thresholds only → champion v1.
    first = continuous_training(churn_config(data, estimator=weak))
    assert first.status == "blessed"
    assert first.version == "1"
    assert set(first.aliases) == {"champion", "challenger"}
    assert first.champion_before is None
    assert registry_state("churn-test")[0] == {"champion": "1", "challenger": "1"}

    # 2. A worse model is registered but not blessed; the champion stays v1, reason recorded.
    dummy = {"class_path": "sklearn.dummy.DummyClassifier", "params": {}}
    worse = continuous_training(churn_config(data, estimator=dummy))
    assert worse.status == "not_blessed"
    assert worse.champion_before == "1"
    assert worse.aliases == []
    assert registry_state("churn-test") == ({"champion": "1", "challenger": "1"}, ["1", "2"])
    v2 = _client().get_model_version("churn-test", "2")
    assert v2.tags[lineage.BLESSED] == "false"
    assert "roc_auc" in v2.tags[lineage.BLESSING_REASON]
    assert "champion" in v2.tags[lineage.BLESSING_REASON]

    # 3. A better model becomes champion v3, v1 remembered; rollback is one call.
    better = continuous_training(churn_config(data))
    assert better.status == "blessed", better.reason
    assert better.metrics["roc_auc"] > first.metrics["roc_auc"]
    assert registry_state("churn-test")[0] == {"champion": "3", "challenger": "3"}
    model = _client().get_registered_model("churn-test")
    assert model.tags[lineage.PREVIOUS_CHAMPION] == "1"
    moves = registry.alias_history(_client(), "churn-test")
    champion_moves = [(m.from_version, m.to_version) for m in moves if m.alias == "champion"]
    assert champion_moves == [(None, "1"), ("1", "3")]
    registry.rollback_champion(_client(), "churn-test", reason="test")
    assert registry_state("churn-test")[0]["champion"] == "1"


def test_lineage_resolves_to_the_snapshot(mlops_home: Path, tmp_path: Path) -> None:
    data = write_frame(generate_churn(2000, seed=2), tmp_path / "churn.parquet")
    outcome = continuous_training(churn_config(data))
    client = _client()
    version = client.get_model_version("churn-test", outcome.version)
    tags = version.tags
    # The snapshot file's content hash is the digest recorded on the version.
    assert verify_snapshot(tags[lineage.DATA_SNAPSHOT]) == tags[lineage.DATA_DIGEST]
    assert tags[lineage.DATA_DIGEST] == outcome.snapshot_digest
    for key in (
        lineage.CODE_VERSION,
        lineage.CONFIG_HASH,
        lineage.FLOW_RUN_ID,
        lineage.VALIDATION_SUCCESS,
        lineage.VALIDATION_RESULT,
        "mlops.metric.roc_auc",
    ):
        assert tags.get(key), key
    assert tags[lineage.CONFIG_HASH] == churn_config(data).config_hash()
    assert version.run_id == outcome.run_id

    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    assert tags[lineage.DATA_DIGEST].startswith(inputs[0].dataset.digest)
    assert inputs[0].dataset.source and tags[lineage.DATA_SNAPSHOT] in inputs[0].dataset.source
    assert "test_roc_auc" in run.data.metrics
    assert any(k.startswith("test_roc_auc__slice_contract") for k in run.data.metrics)
    assert run.data.params["split.seed"] == "42"
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "validation")}
    assert "validation/gx_result.json" in artifacts

    # The registered model loads by alias and predicts the test rows like the logged ones.
    import mlflow
    import pandas as pd

    model = mlflow.sklearn.load_model("models:/churn-test@champion")
    local = client.download_artifacts(outcome.run_id, "predictions/test.parquet", str(tmp_path))
    logged = pd.read_parquet(local)
    predictions = model.predict(logged.drop(columns=["prediction"]))
    assert (predictions == logged["prediction"].to_numpy()).all()


def test_validation_failure_stops_before_training(mlops_home: Path, tmp_path: Path) -> None:
    clean = write_frame(generate_churn(2000, seed=3), tmp_path / "clean.csv")
    continuous_training(churn_config(clean))
    before = registry_state("churn-test")
    bad = generate_churn(2000, seed=4, corruption="unseen_category")
    bad_path = write_frame(bad, tmp_path / "bad.csv")
    with pytest.raises(DataValidationError, match="payment_method") as info:
        continuous_training(churn_config(bad_path))
    assert any("payment_method" in f for f in info.value.failures)
    assert registry_state("churn-test") == before
    # The failed run keeps the GX result as an artifact and is marked failed.
    client = _client()
    experiment = client.get_experiment_by_name("churn-test")
    failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert len(failed) == 1
    paths = {a.path for a in client.list_artifacts(failed[0].info.run_id, "validation")}
    assert "validation/gx_result.json" in paths


def test_failed_promotion_rolls_the_registration_back(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_frame(generate_churn(2000, seed=5), tmp_path / "churn.csv")
    continuous_training(churn_config(data))
    before = registry_state("churn-test")

    def broken_alias_move(*args: object, **kwargs: object) -> None:
        raise OSError("registry went away during the alias move")

    # Fault injection: the alias step fails after the version was created.
    monkeypatch.setattr(registry, "assign_aliases", broken_alias_move)
    # Another config (a tag), so the run is not "unchanged" and reaches the registration.
    with pytest.raises(OSError, match="registry went away"):
        continuous_training(churn_config(data, tags={"attempt": "2"}))
    assert registry_state("churn-test") == before


def _run(config: Any) -> tuple[Any, str]:
    """Run the flow; returns (outcome, flow run id)."""
    state = continuous_training(config, return_state=True)
    return state.result(), str(state.state_details.flow_run_id)


def _logs(flow_run_id: str) -> str:
    """Every log line of the flow run and its tasks, as the Prefect API stored them."""
    APILogHandler().flush()
    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        for _ in range(40):  # logs reach the API from a background worker
            messages = [log.message for log in client.read_logs(log_filter=flt)]
            if any(m.startswith(("Registered", "churn-test v")) for m in messages):
                break
            time.sleep(0.25)
    return "\n".join(messages)


def _artifacts(flow_run_id: str) -> dict[str, Any]:
    """The flow run's artifacts by key (tables parsed from their JSON)."""
    flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=flt)
    return {a.key: json.loads(a.data) if a.type == "table" else a.data for a in artifacts}


def test_logs_and_artifacts_say_what_happened(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://mlflow.example:5123")
    data = write_frame(generate_churn(2000, seed=21), tmp_path / "churn.csv")
    outcome, flow_run_id = _run(churn_config(data))
    logs = _logs(flow_run_id)
    # Ingest: rows, columns, the snapshot digest.
    assert "Ingested 2,000 rows x 12 columns" in logs
    assert outcome.snapshot_digest in logs
    assert "churn-test has no champion yet" in logs
    # Validation: expectations evaluated and failed.
    suite_size = len(_artifacts(flow_run_id)["data-validation-expectations"])
    assert f"Validated 2,000 rows: {suite_size} expectations evaluated, 0 failed" in logs
    # Split sizes, training, metrics, blessing, version and aliases.
    assert "Split 2,000 rows (random, seed 42): train 1,400, validation 200, test 400" in logs
    assert "Trained HistGradientBoostingClassifier (classification) on 1,400 rows" in logs
    assert f"roc_auc={outcome.metrics['roc_auc']:.4f}" in logs
    assert "Candidate test metrics on 400 rows" in logs
    assert f"Blessing decision: {outcome.reason}" in logs
    assert "Registered churn-test v1 (blessed); aliases given: challenger, champion" in logs

    artifacts = _artifacts(flow_run_id)
    # Every expectation is listed, each with its result; all pass here.
    expectations = artifacts["data-validation-expectations"]
    assert suite_size > 20
    assert {row["result"] for row in expectations} == {"pass"}
    columns = {row["column"] for row in expectations}
    assert {"(table)", "payment_method", "tenure_months", "churned"} <= columns
    assert "customer_id" not in columns
    in_set = next(
        r for r in expectations if r["expectation"] == "expect_column_values_to_be_in_set"
    )
    assert "known values" in in_set["rule"]
    # Metrics: rounded to 4 decimals, overall and per slice of `contract`.
    metrics = artifacts["model-metrics"]
    overall = {r["metric"]: r for r in metrics if r["slice"] == "(overall)"}
    assert overall["roc_auc"]["candidate"] == round(outcome.metrics["roc_auc"], 4)
    assert overall["roc_auc"]["rows"] == 400
    assert overall["roc_auc"]["champion"] is None
    slices = {r["slice"] for r in metrics} - {"(overall)"}
    assert slices and all(s.startswith("contract=") for s in slices)
    assert all(round(r["candidate"], 4) == r["candidate"] for r in metrics)
    # Links into MLflow use the configured UI URL.
    summary = artifacts["training-summary"]
    run_link = (
        f"http://mlflow.example:5123/#/experiments/{outcome.experiment_id}/runs/{outcome.run_id}"
    )
    assert f"]({run_link})" in summary
    assert "](http://mlflow.example:5123/#/models/churn-test/versions/1)" in summary
    assert f"| roc_auc | {outcome.metrics['roc_auc']:.4f} |" in summary
    assert f"]({run_link})" in artifacts["mlflow-run"]


def test_unchanged_data_and_config_register_nothing(mlops_home: Path, tmp_path: Path) -> None:
    data = write_frame(generate_churn(2000, seed=22), tmp_path / "churn.csv")
    first = continuous_training(churn_config(data))
    client = _client()
    before = registry_state("churn-test")
    history = registry.alias_history(client, "churn-test")

    # The same data file and the same config: a duplicate trigger.
    second, flow_run_id = _run(churn_config(data))
    assert second.status == "unchanged"
    assert second.version == first.version == "1"
    assert second.champion_before == "1"
    assert second.aliases == []
    assert second.snapshot_digest == first.snapshot_digest
    assert "unchanged" in second.reason and "v1" in second.reason
    assert second.metrics == pytest.approx(first.metrics, rel=1e-5)
    assert registry_state("churn-test") == before
    assert registry.alias_history(client, "churn-test") == history
    run = client.get_run(second.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[lineage.UNCHANGED_FROM] == "1"
    assert "test_roc_auc" not in run.data.metrics  # nothing was trained or evaluated
    logs = _logs(flow_run_id)
    assert "Unchanged: champion v1 was trained on the same data" in logs
    assert "churn-test v1 stays champion" in logs
    assert "Trained" not in logs

    # Changed data: a candidate is trained and registered again.
    changed = write_frame(generate_churn(2000, seed=23), tmp_path / "changed.csv")
    third = continuous_training(churn_config(changed))
    assert third.status in ("blessed", "not_blessed")
    assert third.version == "2"
    assert registry_state("churn-test")[1] == ["1", "2"]
    # Changed config on the same data: trained as well.
    fourth = continuous_training(churn_config(changed, tags={"why": "new code"}))
    assert fourth.version == "3"


def test_the_file_based_flow_shows_the_summary_on_the_run_launched(
    mlops_home: Path, tmp_path: Path
) -> None:
    """`continuous-training-from-file` (the file-based deployment) runs the training as a
    subflow: its summary and MLflow link are on the parent run too, the one a user opens."""
    import yaml

    data = write_frame(generate_churn(2000, seed=23), tmp_path / "churn.csv")
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump(churn_config(data).model_dump(mode="json")))
    state = continuous_training_from_file(str(config_path), return_state=True)
    outcome = state.result()
    parent = _artifacts(str(state.state_details.flow_run_id))
    assert f"models:/churn-test/{outcome.version}" in parent["training-summary"]
    assert outcome.run_id in parent["mlflow-run"]
