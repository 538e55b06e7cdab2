"""Tracking against a real MLflow SQLite store: the logged model's signature takes the training
table as read (MLflow's own pyfunc client on the raw CSV), dataset inputs, experiment kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from registry_store import Registry

from prefect_mlops import registry
from prefect_mlops.config import DataSource
from prefect_mlops.data.snapshots import write_snapshot
from prefect_mlops.data.sources import read_table
from prefect_mlops.registry import lineage, tracking

TARGET = "churned"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV training table: integers without gaps (calls), integers with gaps (tenure, read as
    floats), floats, text with gaps, booleans, an id and the target."""
    rng = np.random.default_rng(3)
    n = 60
    tenure = rng.integers(1, 72, n).astype(float)
    tenure[[4, 17]] = np.nan
    contract = rng.choice(["monthly", "one-year", "two-year"], n).astype(object)
    contract[[9]] = np.nan
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "calls": rng.integers(0, 9, n),
            "tenure": tenure,
            "charges": rng.normal(70, 20, n).round(2),
            "contract": contract,
            "paperless": rng.integers(0, 2, n).astype(bool),
            TARGET: rng.integers(0, 2, n),
        }
    )
    path = tmp_path_factory.mktemp("table") / "churn.csv"
    frame.to_csv(path, index=False)
    return path


FEATURES = ["calls", "tenure", "charges", "contract", "paperless"]


def _artifact_root() -> str:
    """The registry's artifact root under the test's MLOPS_HOME (never ./mlruns)."""
    from prefect_mlops.settings import get_settings

    return get_settings().resolved_artifact_location


def _fit(df: pd.DataFrame) -> Any:
    from sklearn.linear_model import LogisticRegression

    from prefect_mlops.modeling.training import FeatureSpec, build_pipeline

    spec = FeatureSpec(
        numeric=["calls", "tenure", "charges", "paperless"], categorical=["contract"]
    )
    return build_pipeline(spec, LogisticRegression()).fit(df[FEATURES], df[TARGET])


def _log_and_register(reg: Registry, df: pd.DataFrame, model: Any) -> str:
    experiment_id = registry.ensure_experiment(reg.client, "tracking-test", _artifact_root())
    run_id = tracking.start_training_run(reg.client, experiment_id, "unit", {})
    uri = tracking.log_sklearn_model(run_id, model, df, FEATURES)
    reg.client.set_terminated(run_id, "FINISHED")
    registry.register_model_version(
        reg.client,
        model_name=reg.name,
        model_uri=uri,
        run_id=run_id,
        tags={},
        blessed=True,
        promote=True,
        reason="unit test",
        actor="tester",
    )
    return uri


def test_mlflow_pyfunc_takes_the_training_table_as_read(reg: Registry, table: Path) -> None:
    import mlflow

    df = read_table(DataSource(path=str(table)))
    assert df["calls"].dtype == "int64" and df["tenure"].dtype == "float64"
    model = _fit(df)
    _log_and_register(reg, df, model)

    champion = mlflow.pyfunc.load_model(f"models:/{reg.name}@champion")
    raw = pd.read_csv(table)  # the raw table: id and target too; calls as int64
    predicted = champion.predict(raw)

    assert list(predicted) == list(model.predict(df[FEATURES]))
    inputs = champion.metadata.get_input_schema().inputs
    assert {c.name: (c.type.name, c.required) for c in inputs} == {
        "calls": ("long", True),
        "tenure": ("double", False),
        "charges": ("double", True),
        "contract": ("string", False),
        "paperless": ("boolean", True),
    }


def test_the_signature_still_maps_to_serving_and_scoring(reg: Registry, table: Path) -> None:
    import mlflow

    from prefect_mlops.serving.schema import InputSchema

    df = read_table(DataSource(path=str(table)))
    uri = _log_and_register(reg, df, _fit(df))
    signature = mlflow.models.get_model_info(uri).signature

    schema = InputSchema.from_signature(signature)
    row = {"calls": 3, "tenure": None, "charges": 70.5, "contract": None, "paperless": True}
    frame = schema.parse_body(json.dumps([row, {**row, "tenure": 12}]), 10)
    assert frame["calls"].dtype == "int64"
    assert np.isnan(frame.loc[0, "tenure"]) and frame.loc[1, "tenure"] == 12
    model = tracking.load_model(f"models:/{reg.name}@champion")
    assert len(model.predict(frame)) == 2


def test_inference_sample_keeps_the_first_rows_and_the_first_late_gap_of_each_column() -> None:
    df = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 4.0, np.nan],
            "b": ["x", None, "y", "z", "w"],
            "c": [1, 2, 3, 4, 5],
        }
    )
    sample = tracking.inference_sample(df, 2)
    assert list(sample.index) == [0, 1, 2]  # b's gap is in the head; a's first gap is row 2
    assert tracking.inference_sample(df, 2, ["c", "a"]).columns.tolist() == ["c", "a"]
    assert list(tracking.inference_sample(df, 10).index) == [0, 1, 2, 3, 4]
    assert list(tracking.inference_sample(df[["c"]], 2).index) == [0, 1]


def test_requiredness_looks_past_the_sample(table: Path) -> None:
    df = read_table(DataSource(path=str(table)))
    late_gap = df.copy()
    late_gap.loc[len(df) - 1, "charges"] = np.nan
    signature = tracking.model_signature(_fit(df), late_gap, FEATURES)
    required = {c.name: c.required for c in signature.inputs.inputs}
    assert required["charges"] is False and required["calls"] is True
    # Beyond SIGNATURE_SAMPLE_ROWS too: requiredness is decided on every row.
    long = pd.concat([df] * 20, ignore_index=True)
    assert len(long) > tracking.SIGNATURE_SAMPLE_ROWS
    long.loc[len(long) - 1, "calls"] = 4  # still integers, no gap
    long.loc[len(long) - 1, "paperless"] = True
    sig = tracking.model_signature(_fit(df), long, FEATURES)
    assert {c.name: c.required for c in sig.inputs.inputs}["calls"] is True


def test_snapshot_input_profiles_every_row_and_samples_the_schema(
    reg: Registry, table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    df = read_table(DataSource(path=str(table)))
    snapshot = write_snapshot(df, tmp_path / "snapshots", source=str(table))
    experiment_id = registry.ensure_experiment(reg.client, "tracking-test", _artifact_root())
    run_id = tracking.start_training_run(reg.client, experiment_id, "inputs", {})
    monkeypatch.setattr(tracking, "SCHEMA_SAMPLE_ROWS", 5)

    tracking.log_snapshot_input(reg.client, run_id, df, snapshot, target=TARGET, context="training")

    (logged,) = reg.client.get_run(run_id).inputs.dataset_inputs
    tags = {t.key: t.value for t in logged.tags}
    assert tags == {
        "mlflow.data.context": "training",
        lineage.DATASET_DIGEST: snapshot.digest,
        lineage.DATASET_SOURCE: str(table),
    }
    dataset = logged.dataset
    assert dataset.name == f"snapshot-{snapshot.digest[:12]}"
    assert dataset.digest == snapshot.digest[: tracking.MLFLOW_DIGEST_CHARS]
    assert json.loads(dataset.profile) == {"num_rows": len(df), "num_elements": int(df.size)}
    columns = json.loads(dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in columns] == list(df.columns)
    assert {c["name"]: c["type"] for c in columns}["calls"] == "long"
    assert snapshot.path in dataset.source
    # The same record mlflow.log_input would log for mlflow.data.from_pandas(df, ...), the
    # schema inferred on the first rows only (pins what dataset_entity relies on).
    with tracking.quiet_mlflow_hints():
        expected = mlflow.data.from_pandas(
            df, source=snapshot.path, targets=TARGET, name=dataset.name, digest=dataset.digest
        ).to_dict()
    assert {k: getattr(dataset, k) for k in expected if k != "schema"} == {
        k: v for k, v in expected.items() if k != "schema"
    }
    assert json.loads(expected["schema"]) == json.loads(dataset.schema)


def test_experiments_are_marked_model_training(reg: Registry) -> None:
    kind = lineage.EXPERIMENT_KIND
    new_id = registry.ensure_experiment(reg.client, f"{reg.name}-new", _artifact_root())
    assert reg.client.get_experiment(new_id).tags[kind] == "custom_model_development"
    # An experiment made elsewhere without the tag gets it; the id stays the same.
    old_id = reg.client.create_experiment(f"{reg.name}-old", artifact_location=_artifact_root())
    assert kind not in reg.client.get_experiment(old_id).tags
    assert registry.ensure_experiment(reg.client, f"{reg.name}-old", _artifact_root()) == old_id
    assert reg.client.get_experiment(old_id).tags[kind] == "custom_model_development"
    # A kind chosen on purpose (in the UI) is kept.
    genai_id = reg.client.create_experiment(
        f"{reg.name}-genai", artifact_location=_artifact_root(), tags={kind: "genai_development"}
    )
    registry.ensure_experiment(reg.client, f"{reg.name}-genai", _artifact_root())
    assert reg.client.get_experiment(genai_id).tags[kind] == "genai_development"
