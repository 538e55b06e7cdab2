"""Continuous training on scikit-learn's bundled real datasets (no download): binary
classification from CSV, regression from Parquet, multiclass with string labels and real gaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import registry_state, write_frame

from prefect_mlops import registry
from prefect_mlops.config import TrainingConfig
from prefect_mlops.flows.training import continuous_training
from prefect_mlops.settings import get_settings

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow SQLite store for the module (each test trains its own model name)."""
    return tmp_path_factory.mktemp("datasets") / "mlops-home"


@pytest.fixture
def home(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MLOPS_HOME", str(shared_home))
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SNAPSHOT_DIR"):
        monkeypatch.delenv(key, raising=False)
    yield shared_home
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.end_run()


def _config(model_name: str, data: Path, target: str, class_path: str, **extra: Any):
    raw: dict[str, Any] = {
        "model_name": model_name,
        "data": {"path": str(data)},
        "target": target,
        "estimator": {"class_path": class_path, "params": {"max_iter": 50}},
    }
    raw.update(extra)
    return TrainingConfig.model_validate(raw)


def _run_metrics(run_id: str) -> dict[str, float]:
    return registry.mlflow_client(get_settings()).get_run(run_id).data.metrics


def test_breast_cancer_csv_binary_classification(home: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame  # 569 rows, 30 features, target 0/1
    data = write_frame(frame, tmp_path / "breast_cancer.csv")
    config = _config(
        "breast-cancer", data, "target", "sklearn.ensemble.HistGradientBoostingClassifier"
    )

    outcome = continuous_training(config)

    assert outcome.status == "blessed", outcome.reason
    assert outcome.version == "1"
    assert set(outcome.aliases) == {"champion", "challenger"}
    assert outcome.metrics["roc_auc"] > 0.9
    assert outcome.metrics["accuracy"] > 0.85
    assert registry_state("breast-cancer") == ({"champion": "1", "challenger": "1"}, ["1"])
    client = registry.mlflow_client(get_settings())
    version = client.get_model_version("breast-cancer", "1")
    assert version.tags["mlops.task"] == "classification"
    assert version.tags["mlops.data.rows"] == "569"
    run = client.get_run(outcome.run_id)
    # Column names with spaces ("mean radius") are all model features.
    assert "mean radius" in run.data.params["features.numeric"]
    assert len(run.data.params["features.numeric"].split(",")) == 30


def test_diabetes_parquet_is_detected_as_regression(home: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame  # 442 rows, 10 features, float target
    data = write_frame(frame, tmp_path / "diabetes.parquet")
    config = _config("diabetes", data, "target", "sklearn.ensemble.HistGradientBoostingRegressor")
    assert config.task == "auto"

    outcome = continuous_training(config)

    assert outcome.status == "blessed", outcome.reason  # default regression rule: rmse
    assert set(outcome.metrics) == {"rmse", "mae", "r2"}
    # A real fit: clearly better than predicting the mean (r2 = 0), errors in a sane range.
    assert outcome.metrics["r2"] > 0.2
    assert 0 < outcome.metrics["mae"] < outcome.metrics["rmse"] < frame["target"].std()
    metrics = _run_metrics(outcome.run_id)
    for name in ("test_rmse", "test_mae", "test_r2"):
        assert metrics[name] == pytest.approx(outcome.metrics[name.removeprefix("test_")])
    client = registry.mlflow_client(get_settings())
    assert client.get_run(outcome.run_id).data.params["task"] == "regression"
    assert client.get_model_version("diabetes", "1").tags["mlops.task"] == "regression"
    assert registry_state("diabetes")[0]["champion"] == "1"


def _wine_with_gaps(seed: int = 0) -> pd.DataFrame:
    """Wine (178 rows, 3 cultivars) with string labels, ~5 % missing feature values and a
    categorical column with gaps of its own."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.copy()
    rng = np.random.default_rng(seed)
    features = list(wine.feature_names)
    values = frame[features].to_numpy(dtype=float)
    values[rng.random(values.shape) < 0.05] = np.nan
    frame[features] = values
    frame["cellar"] = np.where(frame["alcohol"].fillna(13) > 13, "warm", "cool")
    frame.loc[rng.random(len(frame)) < 0.08, "cellar"] = None
    frame["cultivar"] = frame.pop("target").map({0: "cultivar_a", 1: "cultivar_b", 2: "cultivar_c"})
    return frame


def test_wine_multiclass_string_labels_with_missing_values(home: Path, tmp_path: Path) -> None:
    import mlflow

    frame = _wine_with_gaps()
    assert 0.03 < frame.drop(columns=["cultivar", "cellar"]).isna().mean().mean() < 0.07
    assert frame["cellar"].isna().any()
    data = write_frame(frame, tmp_path / "wine.csv")
    config = _config(
        "wine",
        data,
        "cultivar",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        slices=["cellar"],
    )

    outcome = continuous_training(config)

    assert outcome.status == "blessed", outcome.reason
    assert {"roc_auc", "f1", "accuracy", "log_loss"} <= set(outcome.metrics)
    assert outcome.metrics["roc_auc"] > 0.9  # one-vs-rest macro over three cultivars
    assert outcome.metrics["f1"] > 0.7
    run = registry.mlflow_client(get_settings()).get_run(outcome.run_id)
    assert run.data.params["features.categorical"] == "cellar"
    assert any(k.startswith("test_roc_auc__slice_cellar") for k in run.data.metrics)

    model = mlflow.sklearn.load_model("models:/wine@champion")
    rows = frame.drop(columns=["cultivar"])
    predictions = model.predict(rows)
    assert set(predictions) <= {"cultivar_a", "cultivar_b", "cultivar_c"}
    assert len(set(predictions)) == 3
    assert (predictions == frame["cultivar"].to_numpy()).mean() > 0.85
    # Rows with gaps everywhere and an unseen cellar value still get a label.
    odd = rows.head(3).copy()
    odd.loc[:, :] = np.nan
    odd["cellar"] = ["damp", None, "warm"]
    assert set(model.predict(odd)) <= {"cultivar_a", "cultivar_b", "cultivar_c"}
    assert list(model.classes_) == ["cultivar_a", "cultivar_b", "cultivar_c"]
