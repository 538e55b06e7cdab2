"""Model pipelines on tiny frames: features, estimator import, preprocessing, search, preflight."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import SearchConfig, TrainingConfig
from prefect_mlops.data.suites import validated_columns
from prefect_mlops.errors import ConfigError, DataValidationError, TrainingError
from prefect_mlops.modeling.training import (
    FeatureSpec,
    build_estimator,
    build_pipeline,
    fit_model,
    import_estimator,
    preflight_checks,
    resolve_features,
)


def _config(**overrides: Any) -> TrainingConfig:
    raw: dict[str, Any] = {
        "model_name": "unit",
        "data": {"path": "unused.csv", "timestamp_column": "event_ts"},
        "target": "label",
        "id_column": "customer_id",
    }
    raw.update(overrides)
    return TrainingConfig.model_validate(raw)


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 10, n)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "event_ts": pd.date_range("2024-01-01", periods=n, freq="D"),
            "signup_date": pd.date_range("2020-01-01", periods=n, freq="W"),
            "amount": amount,
            "visits": rng.integers(0, 10, n),
            "is_member": rng.random(n) < 0.5,
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "internal_note": ["x"] * n,
            "label": (amount > 50).astype(int),
        }
    )


# --- resolve_features ---------------------------------------------------------------------


def test_auto_features_skip_target_id_timestamp_drops_and_datetimes() -> None:
    spec = resolve_features(_frame(), _config(drop_columns=["internal_note"]))
    assert set(spec.columns) == {"amount", "visits", "is_member", "plan"}
    assert spec.categorical == ["plan"]
    assert spec.numeric == ["amount", "visits", "is_member"]


def test_non_numeric_columns_are_categorical_without_drops() -> None:
    spec = resolve_features(_frame(), _config())
    assert set(spec.categorical) == {"plan", "internal_note"}
    assert "label" not in spec.columns and "customer_id" not in spec.columns


def test_configured_features_and_categoricals_are_kept_in_order() -> None:
    config = _config(features=["visits", "plan", "amount"], categorical_features=["visits"])
    spec = resolve_features(_frame(), config)
    assert spec == FeatureSpec(numeric=["plan", "amount"], categorical=["visits"])


def test_missing_configured_feature_is_named() -> None:
    config = _config(features=["amount", "loyalty_points"])
    with pytest.raises(DataValidationError, match="loyalty_points") as info:
        resolve_features(_frame(), config, source="table.csv")
    assert "table.csv" in str(info.value)
    assert info.value.failures == ["column 'loyalty_points' (feature) is missing"]


def test_missing_target_is_named() -> None:
    with pytest.raises(DataValidationError, match="will_churn") as info:
        resolve_features(_frame(), _config(target="will_churn"))
    assert "target" in str(info.value)


def test_no_feature_left_is_a_config_error() -> None:
    df = _frame()[["customer_id", "event_ts", "label"]]
    with pytest.raises(ConfigError, match="no feature columns"):
        resolve_features(df, _config())


# --- import_estimator / build_estimator -----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.nonexistent_module.ForestClassifier",  # unknown module
        "sklearn.ensemble.TurboForestClassifier",  # unknown class
        "collections.OrderedDict",  # a class, but not an estimator
        "os.path",  # not a class at all
        "RandomForestClassifier",  # not an import path
    ],
)
def test_import_estimator_names_the_bad_path(path: str) -> None:
    with pytest.raises(TrainingError, match=r"estimator\.class_path") as info:
        import_estimator(path)
    assert repr(path) in str(info.value)


def test_import_estimator_returns_the_class() -> None:
    from sklearn.linear_model import LogisticRegression

    assert import_estimator("sklearn.linear_model.LogisticRegression") is LogisticRegression


def test_build_estimator_seeds_random_state() -> None:
    config = _config(
        estimator={"class_path": "sklearn.ensemble.RandomForestClassifier", "params": {}}
    )
    assert build_estimator(config, "classification", seed=123).random_state == 123
    # An explicit random_state wins over the seed.
    pinned = _config(
        estimator={
            "class_path": "sklearn.ensemble.RandomForestClassifier",
            "params": {"random_state": 7, "n_estimators": 5},
        }
    )
    estimator = build_estimator(pinned, "classification", seed=123)
    assert (estimator.random_state, estimator.n_estimators) == (7, 5)


def test_build_estimator_defaults_by_task_and_skips_unseeded_estimators() -> None:
    assert type(build_estimator(_config(), "regression", 1)).__name__ == (
        "HistGradientBoostingRegressor"
    )
    knn = _config(estimator={"class_path": "sklearn.neighbors.KNeighborsClassifier"})
    assert not hasattr(build_estimator(knn, "classification", 1), "random_state")


def test_build_estimator_with_unknown_param_is_a_training_error() -> None:
    config = _config(
        estimator={
            "class_path": "sklearn.linear_model.LogisticRegression",
            "params": {"n_trees": 10},
        }
    )
    with pytest.raises(TrainingError, match=r"estimator\.params") as info:
        build_estimator(config, "classification", 0)
    assert "n_trees" in str(info.value)


# --- build_pipeline / fit_model -------------------------------------------------------------


def _mixed_frame() -> tuple[pd.DataFrame, pd.Series]:
    X = pd.DataFrame(
        {
            "amount": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, np.nan, 8.0, 9.0, 10.0, 11.0, 12.0],
            "plan": ["a", "b", None, "a", "b", "a", "b", None, "a", "b", "a", "b"],
        }
    )
    y = pd.Series([0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1])
    return X, y


def test_pipeline_handles_missing_values_and_unseen_categories() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _mixed_frame()
    spec = FeatureSpec(numeric=["amount"], categorical=["plan"])
    pipeline = build_pipeline(spec, LogisticRegression()).fit(X, y)
    new = pd.DataFrame(
        {"amount": [np.nan, 3.0, 100.0], "plan": ["enterprise", None, np.nan]},
    )
    predictions = pipeline.predict(new)
    proba = pipeline.predict_proba(new)
    assert len(predictions) == 3
    assert set(predictions) <= {0, 1}
    assert np.isfinite(proba).all()
    # Imputation/encoding happened inside the pipeline: transformed features have no NaN.
    transformed = pipeline[:-1].transform(new)
    assert not np.isnan(transformed).any()


def test_pipeline_with_an_all_missing_numeric_column_still_fits() -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y = _mixed_frame()
    X["empty"] = np.nan
    spec = FeatureSpec(numeric=["amount", "empty"], categorical=["plan"])
    pipeline = build_pipeline(spec, DecisionTreeClassifier(random_state=0)).fit(X, y)
    assert len(pipeline.predict(X)) == len(X)


def test_fit_model_random_search_returns_unprefixed_best_params() -> None:
    from sklearn.tree import DecisionTreeClassifier

    df = _frame(80)
    spec = resolve_features(df, _config(drop_columns=["internal_note"]))
    pipeline = build_pipeline(spec, DecisionTreeClassifier(random_state=0))
    search = SearchConfig(kind="random", space={"max_depth": [1, 2, 3, 4]}, n_iter=2, cv=2)
    result = fit_model(
        pipeline, df[spec.columns], df["label"], task="classification", search=search, seed=0
    )
    assert set(result.best_params) == {"max_depth"}
    assert result.best_params["max_depth"] in (1, 2, 3, 4)
    assert result.cv_results is not None and len(result.cv_results) == 2
    assert "param_model__max_depth" in result.cv_results.columns
    assert result.best_cv_score is not None and 0.0 <= result.best_cv_score <= 1.0
    assert result.model[-1].max_depth == result.best_params["max_depth"]
    assert len(result.model.predict(df[spec.columns])) == len(df)


def test_fit_model_without_search_just_fits() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _mixed_frame()
    pipeline = build_pipeline(FeatureSpec(["amount"], ["plan"]), LogisticRegression())
    result = fit_model(pipeline, X, y, task="classification", search=None, seed=0)
    assert result.best_params == {} and result.cv_results is None
    assert result.model is pipeline
    assert len(result.model.predict(X)) == len(X)


def test_fit_model_with_invalid_param_values_is_a_training_error() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _mixed_frame()
    pipeline = build_pipeline(
        FeatureSpec(["amount"], ["plan"]), HistGradientBoostingClassifier(max_iter=-5)
    )
    with pytest.raises(TrainingError, match="HistGradientBoostingClassifier") as info:
        fit_model(pipeline, X, y, task="classification", search=None, seed=0)
    assert "max_iter" in str(info.value)


def test_fit_model_search_over_a_bad_param_is_a_training_error() -> None:
    from sklearn.tree import DecisionTreeClassifier

    X, y = _mixed_frame()
    pipeline = build_pipeline(FeatureSpec(["amount"], ["plan"]), DecisionTreeClassifier())
    search = SearchConfig(kind="grid", space={"max_depth": [-1, -2]}, cv=2)
    with pytest.raises(TrainingError, match="DecisionTreeClassifier"):
        fit_model(pipeline, X, y, task="classification", search=search, seed=0)


# --- validated_columns / preflight_checks ---------------------------------------------------


def test_validated_columns_exclude_the_id_and_drops() -> None:
    df = _frame()
    columns = validated_columns(df, _config(drop_columns=["internal_note"]))
    assert "customer_id" not in columns and "internal_note" not in columns
    assert {"label", "event_ts", "amount", "plan"} <= set(columns)


def test_validated_columns_with_configured_features() -> None:
    df = _frame()
    columns = validated_columns(df, _config(features=["amount", "plan"]))
    assert columns == ["amount", "plan", "label", "event_ts"]


def test_preflight_rejects_an_unknown_estimator() -> None:
    config = _config(estimator={"class_path": "sklearn.ensemble.TurboForestClassifier"})
    with pytest.raises(TrainingError, match="TurboForestClassifier"):
        preflight_checks(config)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        ({"metric": "log_loss", "min_value": 0.2}, "min_value"),
        ({"metric": "roc_auc", "max_value": 0.9}, "max_value"),
        ({"metric": "f1"}, "sets no rule"),
    ],
)
def test_preflight_rejects_contradictory_thresholds(
    threshold: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        preflight_checks(_config(thresholds=[threshold]))
    assert threshold["metric"] in str(info.value)


def test_preflight_accepts_a_sound_config() -> None:
    config = _config(
        estimator={"class_path": "sklearn.ensemble.HistGradientBoostingClassifier"},
        thresholds=[
            {"metric": "roc_auc", "min_value": 0.7},
            {"metric": "log_loss", "max_value": 0.6},
        ],
    )
    assert preflight_checks(config) is None
