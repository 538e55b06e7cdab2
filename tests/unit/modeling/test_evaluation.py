"""Tests of prefect_mlops.modeling.evaluation on tiny synthetic data with real fitted models."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score

from prefect_mlops.errors import EvaluationError
from prefect_mlops.modeling.evaluation import (
    EvaluationResult,
    compute_metrics,
    evaluate_model,
    infer_task,
    metric_key,
    slice_keys,
)

MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")


@pytest.fixture
def binary_data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    n = 200
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    y = pd.Series((x1 + 0.5 * x2 + rng.normal(scale=0.8, size=n)) > 0, name="churn")
    contract = np.where(np.arange(n) % 2 == 0, "month-to-month", "one-year")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "contract": contract})
    return frame, y


# ------------------------------------------------------------------ infer_task


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([True, False, True]), "classification"),
        (pd.Series(["a", "b", "a"]), "classification"),
        (pd.Series(["a", "b"], dtype="category"), "classification"),
        (pd.Series(["a", "b"], dtype="string"), "classification"),
        (pd.Series([0, 1, 2, 1]), "classification"),
        (pd.Series(range(100)), "regression"),
        (pd.Series([0.0, 1.0, 1.0, np.nan]), "classification"),
        (pd.Series([0.5, 1.0, 2.0]), "regression"),
        (pd.Series(np.arange(50, dtype=float)), "regression"),
    ],
)
def test_infer_task(values: pd.Series, expected: str) -> None:
    assert infer_task(values) == expected


def test_infer_task_empty_names_column() -> None:
    with pytest.raises(EvaluationError, match="'label'"):
        infer_task(pd.Series([np.nan, np.nan], name="label"))


# ------------------------------------------------------------------ compute_metrics


def test_compute_metrics_binary_uses_classes_1_as_positive() -> None:
    y_true = np.array(["no", "yes", "yes", "no"])
    y_pred = np.array(["no", "yes", "no", "no"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = compute_metrics("classification", y_true, y_pred, proba, classes=["no", "yes"])
    assert set(m) == {"roc_auc", "f1", "accuracy", "log_loss"}
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2 for "yes"
    assert m["accuracy"] == pytest.approx(0.75)


def test_compute_metrics_undefined_metrics_are_left_out() -> None:
    # one class present: roc_auc undefined, accuracy / log_loss fine, f1 has no positive at all
    m = compute_metrics(
        "classification",
        np.array([0, 0, 0]),
        np.array([0, 0, 0]),
        np.array([[0.8, 0.2], [0.7, 0.3], [0.9, 0.1]]),
        classes=[0, 1],
    )
    assert "roc_auc" not in m
    assert "f1" not in m
    assert m["accuracy"] == 1.0
    assert "log_loss" in m
    # no probabilities: no roc_auc / log_loss
    assert set(compute_metrics("classification", [0, 1], [0, 1])) == {"f1", "accuracy"}
    # one row: r2 undefined; constant target: r2 undefined
    assert set(compute_metrics("regression", [1.0], [2.0])) == {"rmse", "mae"}
    assert "r2" not in compute_metrics("regression", [1.0, 1.0], [1.0, 2.0])
    assert compute_metrics("regression", [], []) == {}
    for value in compute_metrics("regression", [1.0, 2.0], [np.nan, 1.0]).values():
        assert np.isfinite(value)


def test_compute_metrics_rejects_bad_shapes() -> None:
    with pytest.raises(EvaluationError, match="3 rows but y_pred has 2"):
        compute_metrics("regression", [1, 2, 3], [1, 2])
    with pytest.raises(EvaluationError, match=r"shape \(2, 3\).*2 classes"):
        compute_metrics("classification", [0, 1], [0, 1], np.ones((2, 3)) / 3, classes=[0, 1])
    with pytest.raises(EvaluationError, match="unknown task 'ranking'"):
        compute_metrics("ranking", [1], [1])  # type: ignore[arg-type]


# ------------------------------------------------------------------ evaluate_model


def test_binary_evaluation_with_slices(binary_data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(
        model, X, y, "classification", slice_frame=frame, slice_columns=["contract"]
    )
    assert result.task == "classification"
    assert result.n_rows == 200
    assert set(result.overall) == {"roc_auc", "f1", "accuracy", "log_loss"}
    assert result.overall["roc_auc"] > 0.8
    expected_auc = roc_auc_score(y, model.predict_proba(X)[:, 1])
    assert result.overall["roc_auc"] == pytest.approx(expected_auc)
    assert set(result.slices) == {"contract=month-to-month", "contract=one-year"}
    assert result.slice_sizes == {"contract=month-to-month": 100, "contract=one-year": 100}
    mask = frame["contract"].eq("one-year").to_numpy()
    sliced_auc = roc_auc_score(y[mask], model.predict_proba(X[mask])[:, 1])
    assert result.slices["contract=one-year"]["roc_auc"] == pytest.approx(sliced_auc)


def test_auto_task_and_slice_frame_defaults_to_x(
    binary_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(model, X, y, "auto", slice_columns=["x1"], min_slice_size=1)
    assert result.task == "classification"
    assert len(result.slices) == 4  # x1 has 200 distinct values: 4 quantile bins
    assert sum(result.slice_sizes.values()) == 200


def test_multiclass_string_labels() -> None:
    rng = np.random.default_rng(1)
    n = 150
    labels = np.array(["bronze", "gold", "silver"])
    cls = rng.integers(0, 3, size=n)
    X = pd.DataFrame({"a": cls + rng.normal(scale=0.5, size=n), "b": rng.normal(size=n)})
    y = pd.Series(labels[cls], name="tier")
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(model, X, y, "classification")
    assert set(result.overall) == {"roc_auc", "f1", "accuracy", "log_loss"}
    sk_auc = roc_auc_score(y, model.predict_proba(X), multi_class="ovr", average="macro")
    assert result.overall["roc_auc"] == pytest.approx(sk_auc)
    assert 0.5 < result.overall["f1"] <= 1.0


def test_regression_metrics_and_slices() -> None:
    rng = np.random.default_rng(2)
    n = 120
    X = pd.DataFrame({"x": rng.normal(size=n)})
    y = pd.Series(3 * X["x"] + rng.normal(scale=0.1, size=n), name="price")
    region = pd.DataFrame({"region": np.repeat(["north", "south", "east"], [60, 55, 5])})
    model = LinearRegression().fit(X, y)
    result = evaluate_model(model, X, y, "regression", slice_frame=region, slice_columns=["region"])
    assert set(result.overall) == {"rmse", "mae", "r2"}
    assert result.overall["rmse"] == pytest.approx(0.1, abs=0.03)
    assert result.overall["r2"] > 0.99
    # east has 5 rows < min_slice_size 10: skipped
    assert set(result.slices) == {"region=north", "region=south"}
    assert result.slice_sizes["region=south"] == 55


def test_single_class_slice_drops_roc_auc_keeps_accuracy() -> None:
    rng = np.random.default_rng(3)
    n = 100
    x = rng.normal(size=n)
    y = pd.Series(np.where(np.arange(n) < 80, x > 0, False), name="y")
    segment = np.where(np.arange(n) < 80, "mixed", "all-negative")
    X = pd.DataFrame({"x": x})
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(
        model,
        X,
        y,
        "classification",
        slice_frame=pd.DataFrame({"segment": segment}),
        slice_columns=["segment"],
    )
    only_negative = result.slices["segment=all-negative"]
    assert "roc_auc" not in only_negative
    assert "accuracy" in only_negative
    assert "log_loss" in only_negative
    assert "roc_auc" in result.slices["segment=mixed"]


def test_missing_slice_column_is_named(binary_data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    with pytest.raises(EvaluationError, match="'tenure'"):
        evaluate_model(model, X, y, "classification", slice_columns=["tenure"])


def test_length_mismatch_is_an_error(binary_data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    with pytest.raises(EvaluationError, match="slice_frame has 10 rows but X has 200"):
        evaluate_model(
            model, X, y, "classification", slice_frame=frame.head(10), slice_columns=["x1"]
        )


# ------------------------------------------------------------------ slice_keys


def test_slice_keys_bins_numeric_and_keeps_missing() -> None:
    age = np.concatenate([np.arange(18, 98, dtype=float), [np.nan, np.nan]])
    frame = pd.DataFrame({"age": age, "plan": ["a", "b"] * 40 + [None, "a"]})
    keys = slice_keys(frame, ["age", "plan"])
    age_keys = [k for k in keys if k.startswith("age=")]
    assert age_keys[0] == "age=[18.0, 37.75)"
    assert age_keys[-2].endswith("97.0]")
    assert age_keys[-1] == "age=<missing>"
    assert len(age_keys) == 5
    assert sum(int(keys[k].sum()) for k in age_keys) == len(frame)
    assert keys["age=<missing>"].sum() == 2
    assert keys["plan=a"].sum() == 41
    assert keys["plan=<missing>"].sum() == 1
    assert all(m.dtype == bool and m.shape == (len(frame),) for m in keys.values())


def test_slice_keys_few_distinct_numbers_are_values() -> None:
    frame = pd.DataFrame({"rooms": [1, 2, 2, 3, 3, 3]})
    keys = slice_keys(frame, ["rooms"])
    assert list(keys) == ["rooms=1", "rooms=2", "rooms=3"]


# ------------------------------------------------------------------ EvaluationResult


def test_round_trip_to_dict_from_dict(binary_data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(
        model, X, y, "classification", slice_frame=frame, slice_columns=["contract"]
    )
    payload = json.loads(json.dumps(result.to_dict()))
    assert EvaluationResult.from_dict(payload) == result
    with pytest.raises(EvaluationError, match="overall"):
        EvaluationResult.from_dict({"task": "regression"})
    assert "predictions" not in payload


def test_result_keeps_the_predictions_it_scored(
    binary_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    frame, y = binary_data
    X = frame[["x1", "x2"]]
    model = LogisticRegression().fit(X, y)
    result = evaluate_model(model, X, y, "classification")
    assert result.predictions is not None
    np.testing.assert_array_equal(result.predictions, model.predict(X))


def test_flat_metrics_keys_are_mlflow_safe() -> None:
    result = EvaluationResult(
        task="classification",
        overall={"roc_auc": 0.8},
        slices={
            "contract=month-to-month": {"roc_auc": 0.7},
            "age=[18.0, 35.0)": {"roc_auc": 0.6},
            "city=São Paulo/SP": {"roc_auc": 0.5},
            "age=<missing>": {"roc_auc": 0.4},
        },
        slice_sizes={},
        n_rows=100,
    )
    flat = result.flat_metrics()
    assert flat["test_roc_auc"] == 0.8
    assert flat["test_roc_auc__slice_contract_month-to-month"] == 0.7
    assert flat["test_roc_auc__slice_age_18.0_35.0"] == 0.6
    assert flat["test_roc_auc__slice_age_missing"] == 0.4
    assert len(flat) == 5
    assert all(MLFLOW_KEY.match(k) and "//" not in k for k in flat)
    assert set(result.flat_metrics(prefix="val_")) == {k.replace("test_", "val_") for k in flat}


def test_flat_metrics_disambiguates_colliding_keys() -> None:
    result = EvaluationResult(
        task="regression",
        overall={},
        slices={"c=a?": {"rmse": 1.0}, "c=a!": {"rmse": 2.0}},
        slice_sizes={},
        n_rows=10,
    )
    flat = result.flat_metrics()
    assert len(flat) == 2
    assert sorted(flat.values()) == [1.0, 2.0]


def test_metric_key_limits_length() -> None:
    key = metric_key("x" * 400)
    assert len(key) == 250
    assert metric_key("x" * 400) != metric_key("x" * 399)
