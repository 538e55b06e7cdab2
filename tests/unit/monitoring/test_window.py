"""Window statistics: counts in the reference's cells and categories, faults, and merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import MonitoringError
from prefect_mlops.monitoring.drift import detect_drift
from prefect_mlops.monitoring.profile import ReferenceProfile, build_profile
from prefect_mlops.monitoring.window import NEW_VALUE_LIMIT, WindowStats, merge, window_stats


def _profile() -> ReferenceProfile:
    reference = pd.DataFrame(
        {"x": [1.0, 2.0, 2.0, 5.0], "c": ["a", "b", "a", "a"], "k": [0, 1, 1, 0]}
    )
    return build_profile(reference, numeric=["x", "k"], categorical=["c"])


def test_numeric_values_fall_in_the_reference_cells() -> None:
    window = pd.DataFrame({"x": [0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 9.0, np.nan, -np.inf]})
    x = window_stats(window, _profile()).columns["x"]
    # below, =1, (1,2), =2, (2,5), =5, above
    assert x.cells.tolist() == [1, 1, 1, 1, 1, 1, 2]
    assert (x.rows, x.nulls, x.count) == (10, 2, 8)
    assert (x.below_sum, x.above_sum) == (0.0, 16.0)
    assert (x.min, x.max) == (0.0, 9.0)
    values = np.array([0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 9.0])
    assert x.mean == pytest.approx(values.mean())
    assert x.std == pytest.approx(values.std())


def test_few_valued_numeric_column_keeps_unseen_values() -> None:
    k = window_stats(pd.DataFrame({"k": [0, 1, 2, 2, 7]}), _profile()).columns["k"]
    assert k.new_values == {2.0: 2, 7.0: 1}
    assert k.new_count == 3 and not k.new_truncated


def test_categories_are_counted_against_the_reference() -> None:
    window = pd.DataFrame({"c": ["b", "a", "z", None, "b", "y", "z"]})
    c = window_stats(window, _profile()).columns["c"]
    assert dict(zip(["a", "b"], c.counts.tolist(), strict=True)) == {"a": 1, "b": 2}
    assert c.new_values == {"y": 1, "z": 2}
    assert (c.new_count, c.nulls, c.count) == (3, 1, 6)


def test_category_dtype_counts_like_object() -> None:
    values = ["b", "a", "z", None, "b"]
    plain = window_stats(pd.DataFrame({"c": values}), _profile()).columns["c"]
    typed = window_stats(
        pd.DataFrame({"c": pd.Categorical(values, categories=["a", "b", "z", "unused"])}),
        _profile(),
    ).columns["c"]
    assert typed.counts.tolist() == plain.counts.tolist() == [1, 2]
    assert typed.new_values == plain.new_values == {"z": 1}
    assert typed.nulls == plain.nulls == 1


def test_missing_column_is_recorded_not_raised() -> None:
    stats = window_stats(pd.DataFrame({"x": [1.0, 2.0]}), _profile())
    assert stats.columns["c"].missing_rows == 2
    assert stats.columns["k"].missing_rows == 2
    assert stats.columns["x"].missing_rows == 0


def test_strings_in_a_numeric_column_are_an_error_of_that_column() -> None:
    stats = window_stats(pd.DataFrame({"x": ["1", "2"], "c": ["a", "a"]}), _profile())
    assert "window column 'x'" in (stats.columns["x"].error or "")
    assert stats.columns["c"].error is None


def test_unseen_values_beyond_the_limit_keep_the_smallest() -> None:
    window = pd.DataFrame({"c": [f"n{i:03d}" for i in range(NEW_VALUE_LIMIT + 10)]})
    c = window_stats(window, _profile()).columns["c"]
    assert c.new_truncated
    assert sorted(c.new_values) == [f"n{i:03d}" for i in range(NEW_VALUE_LIMIT)]
    assert c.new_count == NEW_VALUE_LIMIT + 10


def _big_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(1.5, 2.0, rows),
            "k": rng.integers(0, 3, rows),
            "c": rng.choice(["a", "b", "q", "r"] + [f"n{i}" for i in range(40)], rows),
        }
    )
    frame.loc[frame.index % 11 == 0, "x"] = np.nan
    return frame


def _assert_same(profile: ReferenceProfile, one: WindowStats, two: WindowStats) -> None:
    assert one.rows == two.rows
    for name, a in one.columns.items():
        b = two.columns[name]
        assert a.cells.tolist() == b.cells.tolist()
        assert a.counts.tolist() == b.counts.tolist()
        assert (a.rows, a.nulls, a.new_count, a.missing_rows) == (
            b.rows,
            b.nulls,
            b.new_count,
            b.missing_rows,
        )
        assert a.new_values == b.new_values
        assert a.new_truncated == b.new_truncated
        assert (a.min, a.max) == (b.min, b.max)
        assert a.total == pytest.approx(b.total)
        assert a.above_sum == pytest.approx(b.above_sum)
    first, second = detect_drift(profile, one), detect_drift(profile, two)
    for x, y in zip(first.columns, second.columns, strict=True):
        assert (x.method, x.drifted, x.error, x.rows) == (y.method, y.drifted, y.error, y.rows)
        assert x.score == pytest.approx(y.score)
    assert first.dataset_drift == second.dataset_drift


def test_split_and_merge_equals_one_pass() -> None:
    profile = _profile()
    frame = _big_frame(3000, 1)
    whole = window_stats(frame, profile)
    parts = [window_stats(frame.iloc[i : i + 700], profile) for i in range(0, 3000, 700)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge(merged, part)
    assert whole.columns["c"].new_truncated  # 40 unseen categories: the cap is exercised
    _assert_same(profile, merged, whole)


def test_merge_is_associative_and_commutative() -> None:
    profile = _profile()
    a, b, c = (window_stats(_big_frame(400, seed), profile) for seed in (2, 3, 4))
    _assert_same(profile, merge(merge(a, b), c), merge(a, merge(b, c)))
    _assert_same(profile, merge(a, b), merge(b, a))


def test_merge_counts_a_part_missing_the_column() -> None:
    profile = _profile()
    merged = merge(
        window_stats(pd.DataFrame({"x": [1.0], "c": ["a"], "k": [0]}), profile),
        window_stats(pd.DataFrame({"x": [2.0, 3.0]}), profile),
    )
    assert merged.columns["c"].missing_rows == 2
    assert merged.columns["c"].rows == 1


def test_merge_refuses_statistics_of_another_profile() -> None:
    other = build_profile(pd.DataFrame({"x": [1.0, 9.0]}), numeric=["x"], categorical=[])
    stats = window_stats(pd.DataFrame({"x": [1.0]}), other)
    with pytest.raises(MonitoringError, match="different columns"):
        merge(stats, window_stats(pd.DataFrame({"x": [1.0]}), _profile()))
    wider = build_profile(pd.DataFrame({"x": [1.0, 5.0, 9.0]}), numeric=["x"], categorical=[])
    with pytest.raises(MonitoringError, match="column 'x' has different shapes"):
        merge(stats, window_stats(pd.DataFrame({"x": [1.0]}), wider))


def test_infinite_categories_count_as_nulls() -> None:
    profile = build_profile(
        pd.DataFrame({"c": [1.0, 2.0, np.inf, np.nan]}), numeric=[], categorical=["c"]
    )
    assert profile.columns["c"].nulls == 2
    c = window_stats(pd.DataFrame({"c": [1.0, -np.inf, 3.0]}), profile).columns["c"]
    assert (c.nulls, c.new_values) == (1, {3.0: 1})
