"""split_frame: sizes, determinism, disjointness, stratification, time order, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import SplitConfig
from prefect_mlops.data.snapshots import row_hashes
from prefect_mlops.data.splitting import SplitIndices, split_frame, split_record
from prefect_mlops.errors import ConfigError, DataValidationError


def _frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            # Imbalanced labels: ~15 % positives.
            "label": (rng.random(n) < 0.15).astype(int),
            # Shuffled timestamps, so the time split has to sort.
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="h"),
        }
    )


def _split(df: pd.DataFrame, task: str = "classification", **kwargs: object) -> SplitIndices:
    return split_frame(df, SplitConfig(**kwargs), target="label", task=task, timestamp_column=None)


def _as_sets(split: SplitIndices) -> list[set[int]]:
    return [set(split.train.tolist()), set(split.validation.tolist()), set(split.test.tolist())]


@pytest.mark.parametrize(
    ("test_size", "validation_size", "expected"),
    [
        (0.2, 0.1, {"train": 700, "validation": 100, "test": 200}),
        (0.25, 0.0, {"train": 750, "validation": 0, "test": 250}),
        (0.3, 0.2, {"train": 500, "validation": 200, "test": 300}),
    ],
)
def test_sizes_match_the_configured_shares(
    test_size: float, validation_size: float, expected: dict[str, int]
) -> None:
    split = _split(_frame(), test_size=test_size, validation_size=validation_size)
    assert split.sizes() == expected


def test_parts_are_disjoint_and_cover_every_row() -> None:
    df = _frame(997)
    split = _split(df)
    train, val, test = _as_sets(split)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(len(df)))
    assert sum(split.sizes().values()) == len(df)


def test_same_seed_same_split_other_seed_other_split() -> None:
    df = _frame()
    first, again = _split(df, seed=7), _split(df, seed=7)
    for a, b in zip(_as_sets(first), _as_sets(again), strict=True):
        assert a == b
    other = _split(df, seed=8)
    assert _as_sets(other)[2] != _as_sets(first)[2]
    assert _as_sets(other)[0] != _as_sets(first)[0]


def test_stratified_split_keeps_the_class_shares() -> None:
    df = _frame(2000, seed=3)
    overall = df["label"].mean()
    split = _split(df, test_size=0.2, validation_size=0.1)
    for part in (split.train, split.validation, split.test):
        assert df["label"].iloc[part].mean() == pytest.approx(overall, abs=0.01)


def test_time_split_puts_the_newest_rows_in_test() -> None:
    df = _frame(500)
    split = split_frame(
        df,
        SplitConfig(method="time", test_size=0.2, validation_size=0.1),
        target="label",
        task="classification",
        timestamp_column="ts",
    )
    assert split.sizes() == {"train": 350, "validation": 50, "test": 100}
    ts = df["ts"]
    assert ts.iloc[split.validation].min() >= ts.iloc[split.train].max()
    assert ts.iloc[split.test].min() >= ts.iloc[split.validation].max()
    assert ts.iloc[split.test].min() >= ts.iloc[split.train].max()
    # The test part is exactly the 100 newest rows.
    assert set(split.test.tolist()) == set(ts.nlargest(100).index.tolist())


def test_time_split_without_timestamp_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"split\.method"):
        split_frame(
            _frame(100),
            SplitConfig(method="time"),
            target="label",
            task="classification",
            timestamp_column=None,
        )


@pytest.mark.parametrize("n_rows", [0, 1, 2])
def test_too_few_rows_is_a_data_validation_error(n_rows: int) -> None:
    with pytest.raises(DataValidationError, match=f"{n_rows} rows are too few"):
        _split(_frame(n_rows))


def test_a_class_with_one_row_falls_back_to_an_unstratified_split() -> None:
    df = _frame(200)
    df.loc[17, "label"] = 2  # a third class with a single row: stratifying is impossible
    split = _split(df, seed=1)
    train, val, test = _as_sets(split)
    assert train | val | test == set(range(200))
    assert split.sizes() == {"train": 140, "validation": 20, "test": 40}


def test_regression_split_is_not_stratified_but_works() -> None:
    df = _frame(300)
    df["label"] = np.linspace(0, 1, 300)  # continuous target: every value unique
    split = _split(df, task="regression")
    assert split.sizes() == {"train": 210, "validation": 30, "test": 60}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # 10 rows, 3 classes: the test part gets 2 rows (< 3 classes).
        (list("aaabbbcccc"), {"train": 7, "validation": 1, "test": 2}),
        # 40 rows, 5 classes: test gets 8 rows, but validation only 4 (< 5 classes).
        ([f"c{i % 5}" for i in range(40)], {"train": 28, "validation": 4, "test": 8}),
    ],
)
def test_part_smaller_than_the_class_count_falls_back_to_unstratified(
    labels: list[str], expected: dict[str, int]
) -> None:
    df = pd.DataFrame({"x": range(len(labels)), "label": labels})
    split = _split(df)
    assert split.sizes() == expected
    train, val, test = _as_sets(split)
    assert train | val | test == set(range(len(labels)))


def _time_split(df: pd.DataFrame, **kwargs: object) -> SplitIndices:
    return split_frame(
        df,
        SplitConfig(method="time", **kwargs),
        target="label",
        task="classification",
        timestamp_column="ts",
    )


@pytest.mark.parametrize(
    "make_split",
    [
        pytest.param(lambda df: _split(df), id="random-stratified"),
        pytest.param(lambda df: _split(df, stratify=False), id="random-unstratified"),
        pytest.param(lambda df: _split(df, task="regression"), id="random-regression"),
        pytest.param(lambda df: _time_split(df), id="time"),
        pytest.param(lambda df: _time_split(df, validation_size=0.0), id="time-no-validation"),
    ],
)
def test_every_method_gives_disjoint_parts_that_cover_every_row(make_split) -> None:
    df = _frame(503)
    split = make_split(df)
    parts = [split.train, split.validation, split.test]
    # No position twice inside one part, none in two parts, and every row somewhere.
    assert sum(len(p) for p in parts) == len(df)
    assert len(np.unique(np.concatenate(parts))) == len(df)
    assert set(np.concatenate(parts).tolist()) == set(range(len(df)))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"task": "regression"}, id="regression"),
        pytest.param({"stratify": False}, id="stratify-off"),
    ],
)
def test_unstratified_split_is_seeded(kwargs: dict[str, object]) -> None:
    df = _frame()
    first, again = _split(df, seed=7, **kwargs), _split(df, seed=7, **kwargs)
    assert _as_sets(first) == _as_sets(again)
    other = _split(df, seed=8, **kwargs)
    assert _as_sets(other)[2] != _as_sets(first)[2]
    assert _as_sets(other)[1] != _as_sets(first)[1]


def test_fallback_after_a_failed_stratification_is_seeded() -> None:
    df = _frame(200)
    df.loc[17, "label"] = 2  # one row of a third class: stratifying is impossible
    first, again = _split(df, seed=3), _split(df, seed=3)
    assert _as_sets(first) == _as_sets(again)
    assert _as_sets(_split(df, seed=4))[2] != _as_sets(first)[2]


def test_split_record_names_each_rows_part_and_the_params() -> None:
    df = _frame(10)
    config = SplitConfig(test_size=0.2, validation_size=0.1, seed=5)
    split = split_frame(df, config, target="label", task="regression")
    record = split_record(df, split, config)
    assert record.params == {
        "split.method": "random",
        "split.seed": 5,
        "split.train_rows": 7,
        "split.validation_rows": 1,
        "split.test_rows": 2,
    }
    assert list(record.rows.columns) == ["row_hash", "split"]
    assert record.rows["split"].iloc[split.test].eq("test").all()
    assert record.rows["split"].iloc[split.validation].eq("validation").all()
    assert record.rows["split"].iloc[split.train].eq("train").all()
    assert record.rows["row_hash"].tolist() == row_hashes(df).tolist()


def test_smallest_splits_that_work_and_the_first_that_do_not() -> None:
    """One test row and two training rows are enough; one fewer of either is refused."""
    five = _split(_frame(5), task="regression", test_size=0.2, validation_size=0.0)
    assert five.sizes() == {"train": 4, "validation": 0, "test": 1}  # exactly one test row
    three = _split(_frame(3), task="regression", test_size=0.2, validation_size=0.0)
    assert three.sizes() == {"train": 2, "validation": 0, "test": 1}  # exactly two train rows
    with pytest.raises(DataValidationError, match="3 rows are too few"):
        _split(_frame(3), task="regression", test_size=0.5, validation_size=0.0)  # 1 train row
    with pytest.raises(DataValidationError, match="4 rows are too few"):
        _split(_frame(4), task="regression", test_size=0.1, validation_size=0.0)  # 0 test rows
    with pytest.raises(DataValidationError, match="10 rows are too few"):
        _split(_frame(10), task="regression", test_size=0.5, validation_size=0.4)  # 1 train row


def test_too_few_rows_message_names_the_sizes_and_the_fix() -> None:
    with pytest.raises(DataValidationError) as info:
        _split(_frame(2), test_size=0.25, validation_size=0.125)
    assert str(info.value) == (
        "2 rows are too few to split with test_size=0.25 and validation_size=0.125; "
        "supply more rows"
    )


def test_time_split_without_timestamp_names_the_missing_setting() -> None:
    with pytest.raises(ConfigError) as info:
        split_frame(_frame(100), SplitConfig(method="time"), target="label", task="regression")
    assert str(info.value) == "field split.method: 'time' needs data.timestamp_column"


def test_time_split_breaks_timestamp_ties_by_row_order() -> None:
    """Rows with the same timestamp keep their file order: of the rows at the boundary
    timestamp, the later ones go to the later part, so the split replays exactly."""
    days = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 50))
    df = pd.DataFrame(
        {"label": np.zeros(500), "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")}
    )
    split = _time_split(df, test_size=0.15, validation_size=0.1)  # 75 test, 50 validation
    last_day = np.flatnonzero(days == 9)
    day_8 = np.flatnonzero(days == 8)
    day_7 = np.flatnonzero(days == 7)
    # test: all of day 9 and the last 25 rows of day 8 (in file order) ...
    assert split.test.tolist() == sorted([*last_day, *day_8[25:]])
    # ... validation: the first 25 rows of day 8 and the last 25 of day 7.
    assert split.validation.tolist() == sorted([*day_8[:25], *day_7[25:]])


def test_split_record_of_a_split_without_validation() -> None:
    df = _frame(20)
    config = SplitConfig(test_size=0.25, validation_size=0.0)
    split = split_frame(df, config, target="label", task="classification")
    assert split.validation.dtype.kind == "i"  # an (empty) index array like the others
    assert df.iloc[split.validation].empty
    record = split_record(df, split, config)
    assert record.params["split.validation_rows"] == 0
    assert record.rows["split"].value_counts().to_dict() == {"train": 15, "test": 5}


def test_classes_of_two_rows_are_still_stratified() -> None:
    """Ten classes of two rows each, half the rows in test: stratified, every class has
    exactly one row in test and one in train (a plain shuffle would not manage that)."""
    df = pd.DataFrame({"x": range(20), "label": [f"c{i // 2}" for i in range(20)]})
    for seed in range(3):
        split = _split(df, seed=seed, test_size=0.5, validation_size=0.0)
        assert sorted(df["label"].iloc[split.test]) == [f"c{i}" for i in range(10)]
        assert sorted(df["label"].iloc[split.train]) == [f"c{i}" for i in range(10)]


def test_binary_labels_are_stratified_exactly() -> None:
    """8 positives in 40 rows, a quarter in test: every seed puts exactly 2 positives there."""
    df = pd.DataFrame({"x": range(40), "label": [1] * 8 + [0] * 32})
    for seed in range(4):
        split = _split(df, seed=seed, test_size=0.25, validation_size=0.0)
        assert df["label"].iloc[split.test].sum() == 2
        assert df["label"].iloc[split.train].sum() == 6


@pytest.mark.parametrize("case", ["single-class", "class-of-one-row", "one-missing-label"])
def test_nothing_to_stratify_on_gives_the_unstratified_split(case: str) -> None:
    """A single class, or a class of one row (a missing label counts as a class of its own),
    leaves nothing to stratify: the split is the plain seeded one, exactly as with
    ``stratify: false``, whichever part the rare row lands in."""
    df = _frame(200)
    if case == "single-class":
        df["label"] = 1
    elif case == "class-of-one-row":
        df.loc[17, "label"] = 2
    else:
        df["label"] = df["label"].astype(float)
        df.loc[17, "label"] = np.nan
    landed = set()
    for seed in range(1, 7):  # seed 5 puts row 17 in test, the others in train or validation
        split = _split(df, seed=seed)
        assert _as_sets(split) == _as_sets(_split(df, seed=seed, stratify=False))
        landed.add(17 in split.test)
    assert landed == {True, False}
