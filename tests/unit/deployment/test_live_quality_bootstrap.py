"""Live quality's figures: which baseline a reading uses and at which row counts, the direction
of "worse" per metric, and the bootstrap bound of the drop: reproducible from fixed seeds (the
challenger's rows resampled with seed 0, the champion's independently with seed 1), at the
configured confidence, the same whether drawn in one batch or in memory-bounded chunks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.deployment.live_quality import (
    QualityReading,
    bootstrap_metric,
    check_metric,
    default_metric,
    live_metric,
    read_quality,
    worse_by,
)
from prefect_mlops.errors import ConfigError
from prefect_mlops.modeling.evaluation import compute_metrics


def _rows(variant: str, version: str, truth: list, predicted: list) -> pd.DataFrame:
    """Joined rows (``labels.join_labels``'s output) of one variant."""
    return pd.DataFrame(
        {
            "request_id": [f"{variant}-{version}-{i}" for i in range(len(truth))],
            "row_index": 0,
            "variant": variant,
            "model_version": version,
            "prediction": predicted,
            "label": truth,
        }
    )


def _classes(n: int, right: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` binary labels and predictions of which the first ``right`` are right."""
    truth = np.random.default_rng(seed).integers(0, 2, n)
    predicted = np.where(np.arange(n) < right, truth, 1 - truth)
    return truth, predicted


def _resampled(truth: np.ndarray, predicted: np.ndarray, seed: int, metric: str, resamples: int):
    """The metric on ``resamples`` bootstrap resamples: rows drawn uniformly with replacement
    by numpy's ``default_rng(seed)``, scored with the evaluation module's own metrics."""
    n = len(truth)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    task = "regression" if metric in ("rmse", "mae", "r2") else "classification"
    return np.array(
        [compute_metrics(task, truth[rows], predicted[rows]).get(metric, np.nan) for rows in idx]
    )


def test_the_drop_bound_is_the_seeded_bootstrap_quantile_of_both_live_samples() -> None:
    ch_true, ch_pred = _classes(40, 24, seed=5)  # 60 % right
    cp_true, cp_pred = _classes(40, 32, seed=6)  # 80 % right: the same row count as the challenger
    joined = pd.concat(
        [
            _rows("challenger", "2", ch_true.tolist(), ch_pred.tolist()),
            _rows("champion", "1", cp_true.tolist(), cp_pred.tolist()),
            _rows("challenger", "3", [1] * 40, [1] * 40),  # another challenger: not this one
        ]
    )
    reading = read_quality(
        joined, version="2", task="classification", metric="accuracy", min_rows=30,
        offline_baseline=0.99, confidence=0.9,
    )  # fmt: skip
    drops = _resampled(cp_true, cp_pred, 1, "accuracy", 400) - _resampled(
        ch_true, ch_pred, 0, "accuracy", 400
    )
    assert reading == QualityReading(
        "accuracy", 40, 0.6, 0.8, "champion live, 40 rows",
        drop_bound=pytest.approx(float(np.quantile(drops, 0.1))), confidence=0.9,
    )  # fmt: skip
    # Every poll over the same rows gives the same figures.
    again = read_quality(
        joined, version="2", task="classification", metric="accuracy", min_rows=30,
        offline_baseline=0.99, confidence=0.9,
    )  # fmt: skip
    assert again == reading


def test_an_offline_baseline_is_a_fixed_number_and_rmse_is_worse_when_higher() -> None:
    truth = np.linspace(0.0, 10.0, 25)
    predicted = truth + np.where(np.arange(25) % 2 == 0, 1.0, -2.0)
    joined = _rows("challenger", "2", truth.tolist(), predicted.tolist())
    reading = read_quality(
        joined, version="2", task="regression", metric="rmse", min_rows=25,
        offline_baseline=1.0, confidence=0.8,
    )  # fmt: skip
    value = float(np.sqrt(np.mean((truth - predicted) ** 2)))
    bound = float(np.quantile(_resampled(truth, predicted, 0, "rmse", 400) - 1.0, 0.2))
    assert reading == QualityReading(
        "rmse", 25, pytest.approx(value), 1.0, "challenger offline test",
        drop_bound=pytest.approx(bound), confidence=0.8,
    )  # fmt: skip
    assert reading.shortfall() == pytest.approx(value - 1.0) and value > 1.0


def test_without_a_baseline_a_reading_has_the_challenger_figures_only() -> None:
    joined = _rows("challenger", "2", [1, 0, 1, 0], [1, 1, 1, 1])
    reading = read_quality(
        joined, version="2", task="classification", metric="accuracy", min_rows=1,
        offline_baseline=None, confidence=0.9,
    )  # fmt: skip
    assert reading == QualityReading("accuracy", 4, 0.5, None, "no baseline")
    assert reading.shortfall() is None
    assert reading.describe() == "live accuracy 0.5 over 4 rows"


def test_the_champion_is_the_baseline_from_exactly_min_rows_labelled_rows() -> None:
    champion = _rows("champion", "1", [1, 0, 1, 0, 1], [1, 0, 1, 0, 1])
    challenger = _rows("challenger", "2", [1, 0, 1, 0, 1], [1, 0, 1, 0, 0])
    joined = pd.concat([champion, challenger])

    def reading(min_rows: int) -> QualityReading:
        return read_quality(
            joined, version="2", task="classification", metric="accuracy", min_rows=min_rows,
            offline_baseline=0.5,
        )  # fmt: skip

    at = reading(5)
    assert (at.baseline, at.baseline_source) == (1.0, "champion live, 5 rows")
    assert at.drop_bound is not None  # the challenger's five rows are enough to judge, too
    over = reading(6)
    assert (over.baseline, over.baseline_source) == (0.5, "challenger offline test")
    assert over.drop_bound is None  # five challenger rows are too few for min_rows=6
    assert over.challenger == 0.8 and over.challenger_rows == 5


def test_a_bound_needs_a_challenger_value() -> None:
    # r2 is undefined on a constant target: there is nothing to bound.
    joined = pd.concat(
        [
            _rows("champion", "1", [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 4.0]),
            _rows("challenger", "2", [2.0] * 6, [2.0, 2.5, 2.0, 1.5, 2.0, 2.0]),
        ]
    )
    reading = read_quality(
        joined, version="2", task="regression", metric="r2", min_rows=5, offline_baseline=None
    )
    assert (reading.challenger_rows, reading.challenger, reading.baseline) == (6, None, 0.9)
    assert reading.drop_bound is None and reading.shortfall() is None
    assert reading.describe() == "6 labelled challenger rows"


def test_f1_bounds_are_bootstrapped_row_by_row_from_the_same_seeds() -> None:
    ch_true, ch_pred = _classes(30, 20, seed=7)
    cp_true, cp_pred = _classes(30, 27, seed=8)
    joined = pd.concat(
        [
            _rows("challenger", "2", ch_true.tolist(), ch_pred.tolist()),
            _rows("champion", "1", cp_true.tolist(), cp_pred.tolist()),
        ]
    )
    reading = read_quality(
        joined, version="2", task="classification", metric="f1", min_rows=30,
        offline_baseline=None, resamples=60,
    )  # fmt: skip
    drops = _resampled(cp_true, cp_pred, 1, "f1", 60) - _resampled(ch_true, ch_pred, 0, "f1", 60)
    drops = drops[~np.isnan(drops)]
    assert reading.drop_bound == pytest.approx(float(np.quantile(drops, 0.05)))


def test_bootstrap_samples_come_in_the_order_drawn_with_nan_where_undefined() -> None:
    truth = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 2.0])  # r2 is undefined on a resample of 2s only
    predicted = np.array([1.5, 2.0, 2.5, 1.0, 2.0, 2.0])
    samples = bootstrap_metric("regression", "r2", truth, predicted, resamples=30)
    expected = _resampled(truth, predicted, 0, "r2", 30)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    np.testing.assert_array_equal(samples, expected)


@pytest.mark.parametrize("metric", ["accuracy", "rmse", "mae"])
def test_a_large_window_is_resampled_in_chunks_with_the_same_draws(metric: str) -> None:
    # 6000 rows: 333 resamples per chunk of at most 2,000,000 drawn indices.
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 3, 6000).astype(float)
    predicted = np.where(rng.random(6000) < 0.7, truth, truth + 1)
    task = "classification" if metric == "accuracy" else "regression"
    samples = bootstrap_metric(task, metric, truth, predicted, resamples=400, seed=4)
    idx = np.random.default_rng(4).integers(0, 6000, size=(400, 6000))
    errors = truth[idx] - predicted[idx]
    expected = {
        "accuracy": (errors == 0).mean(axis=1),
        "rmse": np.sqrt((errors**2).mean(axis=1)),
        "mae": np.abs(errors).mean(axis=1),
    }[metric]
    np.testing.assert_allclose(samples, expected)


def test_a_single_labelled_row_has_a_metric() -> None:
    joined = _rows("challenger", "2", [1], [1])
    assert live_metric(joined, "classification", "accuracy", variant="challenger") == (1, 1.0)
    assert live_metric(joined.head(0), "classification", "accuracy", variant="challenger") == (
        0,
        None,
    )


def test_live_metric_counts_the_given_version_only() -> None:
    joined = pd.concat(
        [_rows("challenger", "2", [1, 1], [1, 0]), _rows("challenger", "3", [1] * 3, [1] * 3)]
    )
    assert live_metric(joined, "classification", "accuracy", variant="challenger", version="2") == (
        2,
        0.5,
    )
    assert live_metric(joined, "classification", "accuracy", variant="challenger") == (5, 0.8)


def test_labels_that_are_not_all_numbers_are_compared_as_text() -> None:
    # A stray text label costs its own row, not the whole metric.
    joined = _rows("challenger", "2", ["1", "2", "unknown"], [1, 2, 3])
    n, accuracy = live_metric(joined, "classification", "accuracy", variant="challenger")
    assert (n, accuracy) == (3, pytest.approx(2 / 3))
    # Numbers read as text and as floats are the same class.
    numeric = _rows("challenger", "2", ["1", "0.0"], [1.0, 0])
    assert live_metric(numeric, "classification", "accuracy", variant="challenger") == (2, 1.0)


@pytest.mark.parametrize(
    ("metric", "value", "baseline", "worse"),
    [("accuracy", 0.7, 0.8, 0.1), ("r2", 0.9, 0.6, -0.3), ("rmse", 1.5, 1.25, 0.25),
     ("mae", 2.0, 3.0, -1.0)],
)  # fmt: skip
def test_worse_goes_by_the_metric_direction(
    metric: str, value: float, baseline: float, worse: float
) -> None:
    assert worse_by(metric, value, baseline) == pytest.approx(worse)
    reading = QualityReading(metric, 10, value, baseline, "challenger offline test")
    assert reading.shortfall() == pytest.approx(worse)


def test_nothing_to_compare_has_no_shortfall() -> None:
    assert QualityReading("rmse", 5, 1.0, None, "no baseline").shortfall() is None
    assert QualityReading("rmse", 0, None, 1.0, "challenger offline test").shortfall() is None


def test_default_and_allowed_live_metrics() -> None:
    assert (default_metric("classification"), default_metric("regression")) == ("accuracy", "rmse")
    check_metric("regression", "r2")
    with pytest.raises(
        ConfigError,
        match=r"quality_metric 'f1' cannot be computed on served regression predictions; "
        r"choose one of \['rmse', 'mae', 'r2'\]",
    ):
        check_metric("regression", "f1")
    with pytest.raises(ConfigError, match=r"served ranking predictions; choose one of \[\]$"):
        check_metric("ranking", "accuracy")
