"""Reference profiles: the cell sketch, category counts, predictions, JSON and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import ConfigError, DataValidationError, MonitoringError
from prefect_mlops.monitoring.profile import (
    CATEGORY_LIMIT,
    PREDICTION_COLUMN,
    PROFILE_FORMAT,
    TAIL_VALUES,
    ReferenceProfile,
    build_profile,
    probability_column,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 2.0, np.nan, np.inf, 5.0],
            "n": [3, 3, 4, 4, 4, 9],
            "c": ["a", "b", "a", None, "a", "c"],
        }
    )


def test_small_numeric_column_keeps_its_values_exactly() -> None:
    profile = build_profile(_frame(), numeric=["x", "n"], categorical=["c"])
    x = profile.columns["x"]
    assert (x.rows, x.nulls, x.count, x.distinct) == (6, 2, 4, 3)
    assert x.null_rate == pytest.approx(2 / 6)
    assert x.exact and x.edges == (1.0, 2.0, 5.0)
    # cells: below, =1, (1,2), =2, (2,5), =5, above
    assert x.cells == (0, 1, 0, 2, 0, 1, 0)
    assert (x.min, x.max) == (1.0, 5.0)
    assert x.mean == pytest.approx(2.5)
    assert x.std == pytest.approx(np.std([1.0, 2.0, 2.0, 5.0]))
    assert profile.columns["n"].dtype == "integer"
    assert profile.columns["x"].dtype == "float"


def test_large_numeric_column_is_a_quantile_sketch() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    profile = build_profile(pd.DataFrame({"x": values}), numeric=["x"], categorical=[], bins=100)
    x = profile.columns["x"]
    assert not x.exact and x.distinct == 5000
    assert 101 <= len(x.edges) <= 101 + 2 * TAIL_VALUES
    ordered = np.sort(values)
    assert x.edges[:TAIL_VALUES] == tuple(ordered[:TAIL_VALUES])  # the tails value by value
    assert x.edges[-TAIL_VALUES:] == tuple(ordered[-TAIL_VALUES:])
    assert x.edges[0] == values.min() and x.edges[-1] == values.max()
    assert sum(x.cells) == 5000
    assert x.cells[0] == 0 and x.cells[-1] == 0
    assert all(c == 1 for c in x.cells[1:-1:2])  # each quantile edge is one of the values


def test_categorical_column_counts_most_frequent_first() -> None:
    profile = build_profile(_frame(), numeric=[], categorical=["c"])
    c = profile.columns["c"]
    assert c.categories == (("a", 3), ("b", 1), ("c", 1))
    assert (c.nulls, c.distinct, c.other_count) == (1, 3, 0)
    assert c.dtype == "string"


def test_categories_beyond_the_limit_are_one_other_mass() -> None:
    values = [f"v{i}" for i in range(CATEGORY_LIMIT + 50)] + ["v0"] * 3
    profile = build_profile(pd.DataFrame({"c": values}), numeric=[], categorical=["c"])
    c = profile.columns["c"]
    assert len(c.categories) == CATEGORY_LIMIT
    assert c.categories[0] == ("v0", 4)
    assert (c.other_count, c.other_distinct, c.distinct) == (50, 50, CATEGORY_LIMIT + 50)


def test_predictions_and_probabilities_are_profiled_as_columns() -> None:
    frame = _frame()
    predictions = pd.Series(["yes", "no", "yes", "yes", "no", "no"])
    probabilities = pd.DataFrame({"no": np.linspace(0, 1, 6), "yes": np.linspace(1, 0, 6)})
    profile = build_profile(
        frame,
        numeric=["x"],
        categorical=["c"],
        predictions=predictions,
        probabilities=probabilities,
        task="classification",
        quality={"calibration": [0.1, 0.9]},
    )
    assert profile.features == ["x", "c"]
    assert profile.prediction_columns == [
        PREDICTION_COLUMN,
        probability_column("no"),
        probability_column("yes"),
    ]
    assert profile.columns[PREDICTION_COLUMN].kind == "categorical"
    assert profile.columns["proba_yes"].kind == "numeric"
    assert profile.quality == {"calibration": [0.1, 0.9]}
    regression = build_profile(
        frame, numeric=["x"], categorical=[], predictions=frame["n"] * 1.5, task="regression"
    )
    assert regression.columns[PREDICTION_COLUMN].kind == "numeric"
    assert regression.columns[PREDICTION_COLUMN].role == "prediction"


def test_profile_round_trips_through_json() -> None:
    frame = _frame()
    profile = build_profile(
        frame,
        numeric=["x", "n"],
        categorical=["c"],
        quality={"k": 1},
        task="regression",
        predictions=frame["n"].astype(float),
    )
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["format"] == PROFILE_FORMAT
    assert ReferenceProfile.from_dict(data) == profile


def test_twenty_column_profile_is_compact() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=20_000) for i in range(15)})
    for i in range(5):
        frame[f"c{i}"] = rng.choice(list("abcdefgh"), 20_000)
    profile = build_profile(
        frame, numeric=[f"x{i}" for i in range(15)], categorical=[f"c{i}" for i in range(5)]
    )
    size = len(json.dumps(profile.to_dict()))
    assert size < 700_000, size


def test_from_dict_refuses_another_format() -> None:
    with pytest.raises(MonitoringError, match="format 'other/9'"):
        ReferenceProfile.from_dict({"format": "other/9", "rows": 1, "columns": []})


def test_from_dict_names_a_missing_field() -> None:
    data = build_profile(_frame(), numeric=["x"], categorical=[]).to_dict()
    del data["columns"][0]["edges"]
    with pytest.raises(MonitoringError, match="column 'x': field 'edges' is missing"):
        ReferenceProfile.from_dict(data)


def test_from_dict_names_a_bad_cell_count() -> None:
    data = build_profile(_frame(), numeric=["x"], categorical=[]).to_dict()
    data["columns"][0]["cells"] = [1, 2]
    with pytest.raises(MonitoringError, match="column 'x': 2 cells for 3 edges"):
        ReferenceProfile.from_dict(data)


def test_missing_column_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no column \['nope'\]"):
        build_profile(_frame(), numeric=["x", "nope"], categorical=[])


def test_column_listed_as_both_kinds_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\['x'\] are listed as numeric and categorical"):
        build_profile(_frame(), numeric=["x"], categorical=["x"])


def test_column_listed_twice_is_named() -> None:
    with pytest.raises(ConfigError, match=r"\['x'\] are listed more than once"):
        build_profile(_frame(), numeric=["x", "x"], categorical=[])


def test_numeric_column_of_strings_is_named() -> None:
    with pytest.raises(DataValidationError, match=r"reference column 'c'.*dtype object"):
        build_profile(_frame(), numeric=["c"], categorical=[])


def test_predictions_need_a_task() -> None:
    with pytest.raises(ConfigError, match="predictions need task"):
        build_profile(_frame(), numeric=["x"], categorical=[], predictions=_frame()["n"])


def test_unknown_task_is_named() -> None:
    with pytest.raises(ConfigError, match="task 'ranking'"):
        build_profile(_frame(), numeric=["x"], categorical=[], task="ranking")


def test_prediction_length_must_match() -> None:
    with pytest.raises(ConfigError, match="2 predictions for 6 reference rows"):
        build_profile(
            _frame(),
            numeric=["x"],
            categorical=[],
            predictions=pd.Series([1, 2]),
            task="regression",
        )


def test_probability_length_must_match() -> None:
    with pytest.raises(ConfigError, match="1 probability rows for 6 reference rows"):
        build_profile(
            _frame(), numeric=["x"], categorical=[], probabilities=pd.DataFrame({"a": [0.5]})
        )


def test_feature_named_like_a_prediction_column_is_refused() -> None:
    frame = _frame().rename(columns={"x": "prediction"})
    with pytest.raises(ConfigError, match=r"\['prediction'\] clash"):
        build_profile(
            frame,
            numeric=["prediction"],
            categorical=[],
            predictions=frame["n"],
            task="regression",
        )


def test_nothing_to_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="no column to profile"):
        build_profile(_frame(), numeric=[], categorical=[])


def test_bins_below_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="bins must be at least 2, got 1"):
        build_profile(_frame(), numeric=["x"], categorical=[], bins=1)
