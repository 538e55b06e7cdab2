"""Tests of the synthetic churn generator."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.data.demo import (
    CATEGORICAL_FEATURES,
    CONTRACTS,
    DEMO_ID_COLUMN,
    DEMO_TARGET,
    DEMO_TIMESTAMP_COLUMN,
    INTERNET_SERVICES,
    NUMERIC_FEATURES,
    PAYMENT_METHODS,
    REGIONS,
    generate_churn,
    write_demo_dataset,
)
from prefect_mlops.errors import ConfigError

COLUMNS = [
    "customer_id",
    "event_ts",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "age",
    "contract",
    "payment_method",
    "region",
    "internet_service",
    "churned",
]


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return generate_churn(20_000, seed=3)


def test_constants() -> None:
    assert (DEMO_TARGET, DEMO_ID_COLUMN, DEMO_TIMESTAMP_COLUMN) == (
        "churned",
        "customer_id",
        "event_ts",
    )
    assert set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) | {
        DEMO_TARGET,
        DEMO_ID_COLUMN,
        DEMO_TIMESTAMP_COLUMN,
    } == set(COLUMNS)


def test_schema_and_dtypes(churn: pd.DataFrame) -> None:
    assert list(churn.columns) == COLUMNS
    assert len(churn) == 20_000
    assert churn[DEMO_ID_COLUMN].is_unique
    assert churn[DEMO_ID_COLUMN].map(type).eq(str).all()
    assert pd.api.types.is_datetime64_any_dtype(churn[DEMO_TIMESTAMP_COLUMN])
    for column in ("tenure_months", "support_calls", "age", "churned"):
        assert pd.api.types.is_integer_dtype(churn[column]), column
    for column in ("monthly_charges", "total_charges"):
        assert pd.api.types.is_float_dtype(churn[column]), column
    for column in CATEGORICAL_FEATURES:
        assert churn[column].dtype == object, column
    assert set(churn["contract"]) == set(CONTRACTS)
    assert set(churn["payment_method"]) == set(PAYMENT_METHODS)
    assert set(churn["region"]) == set(REGIONS)
    assert set(churn["internet_service"]) == set(INTERNET_SERVICES)
    assert set(churn[DEMO_TARGET].unique()) == {0, 1}


def test_realistic_values(churn: pd.DataFrame) -> None:
    assert 0.2 <= churn[DEMO_TARGET].mean() <= 0.3
    assert 0.005 <= churn["total_charges"].isna().mean() <= 0.02
    others = churn.drop(columns=["total_charges"])
    assert not others.isna().any().any()
    ts = churn[DEMO_TIMESTAMP_COLUMN]
    assert ts.min() >= pd.Timestamp("2025-01-01")
    assert ts.max() < pd.Timestamp("2026-01-01")
    assert (ts.max() - ts.min()).days > 350
    assert churn["tenure_months"].between(0, 72).all()
    assert churn["age"].between(18, 90).all()
    assert (churn["support_calls"] >= 0).all()
    assert churn["monthly_charges"].between(18, 150).all()


def test_same_seed_same_frame() -> None:
    pd.testing.assert_frame_equal(generate_churn(500, seed=7), generate_churn(500, seed=7))
    a, b = generate_churn(500, seed=7), generate_churn(500, seed=8)
    assert not a.drop(columns=[DEMO_ID_COLUMN]).equals(b.drop(columns=[DEMO_ID_COLUMN]))


def test_start_moves_timestamps() -> None:
    df = generate_churn(200, start="2030-06-01")
    assert df[DEMO_TIMESTAMP_COLUMN].min() >= pd.Timestamp("2030-06-01")


def _design(df: pd.DataFrame) -> np.ndarray:
    """Intercept, tenure, support calls and month-to-month as a float matrix."""
    return np.column_stack(
        [
            np.ones(len(df)),
            df["tenure_months"],
            df["support_calls"],
            df["contract"].eq("month-to-month"),
        ]
    ).astype(float)


def _linear_fit(df: pd.DataFrame) -> np.ndarray:
    """Least-squares linear-probability weights; enough to see the signal without sklearn."""
    weights, *_ = np.linalg.lstsq(_design(df), df[DEMO_TARGET].to_numpy(float), rcond=None)
    return weights


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _score(df: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    return _design(df) @ weights


def test_target_has_signal_and_concept_drift_breaks_it(churn: pd.DataFrame) -> None:
    weights = _linear_fit(churn)
    assert weights[1] < 0  # longer tenure, less churn
    assert weights[2] > 0  # more support calls, more churn
    auc = {}
    for drift in (0.0, 0.5, 1.0):
        df = generate_churn(10_000, seed=11, concept_drift=drift)
        auc[drift] = _auc(_score(df, weights), df[DEMO_TARGET].to_numpy())
    assert auc[0.0] > 0.75
    assert auc[1.0] < auc[0.5] < auc[0.0]
    assert auc[1.0] < 0.5


def test_covariate_shift_moves_features(churn: pd.DataFrame) -> None:
    shifted = generate_churn(20_000, seed=3, covariate_shift=1.0)
    assert (
        shifted["contract"].eq("month-to-month").mean()
        > churn["contract"].eq("month-to-month").mean() + 0.15
    )
    assert shifted["monthly_charges"].mean() > churn["monthly_charges"].mean() + 10
    assert shifted["support_calls"].mean() > churn["support_calls"].mean() + 0.5
    half = generate_churn(20_000, seed=3, covariate_shift=0.5)
    assert (
        churn["monthly_charges"].mean()
        < half["monthly_charges"].mean()
        < shifted["monthly_charges"].mean()
    )


def test_corruption_missing_column() -> None:
    df = generate_churn(300, corruption="missing_column")
    assert "monthly_charges" not in df.columns
    assert len(df.columns) == len(COLUMNS) - 1


def test_corruption_wrong_dtype() -> None:
    clean = generate_churn(300)
    df = generate_churn(300, corruption="wrong_dtype")
    assert df["tenure_months"].dtype == object
    assert df["tenure_months"].str.fullmatch(r"\d+ months").all()
    assert df["tenure_months"].iloc[0] == f"{clean['tenure_months'].iloc[0]} months"


def test_corruption_null_burst() -> None:
    df = generate_churn(5000, corruption="null_burst")
    for column in ("support_calls", "age"):
        assert 0.35 <= df[column].isna().mean() <= 0.45, column
    assert not df["tenure_months"].isna().any()


def test_corruption_unseen_category() -> None:
    df = generate_churn(5000, corruption="unseen_category")
    share = df["payment_method"].eq("crypto").mean()
    assert 0.15 <= share <= 0.25
    assert set(df["payment_method"]) == {*PAYMENT_METHODS, "crypto"}


def test_corruption_keeps_other_columns() -> None:
    clean = generate_churn(300, seed=2)
    broken = generate_churn(300, seed=2, corruption="unseen_category")
    pd.testing.assert_frame_equal(
        clean.drop(columns=["payment_method"]), broken.drop(columns=["payment_method"])
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"covariate_shift": -0.1}, "covariate_shift"),
        ({"concept_drift": 1.5}, "concept_drift"),
        ({"corruption": "bogus"}, "bogus"),
        ({"start": "not a date"}, "not a date"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_churn(**kwargs)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_write_demo_dataset(tmp_path: Path, suffix: str) -> None:
    path = write_demo_dataset(tmp_path / "sub" / f"churn{suffix}", n_rows=100, seed=1)
    assert path.exists()
    if suffix == ".csv":
        back = pd.read_csv(path, parse_dates=[DEMO_TIMESTAMP_COLUMN])
    else:
        back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, generate_churn(100, seed=1))


def test_write_demo_dataset_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"churn\.xlsx"):
        write_demo_dataset(tmp_path / "churn.xlsx", n_rows=10)


def test_one_million_rows_is_fast() -> None:
    started = time.perf_counter()
    df = generate_churn(1_000_000, seed=0)
    elapsed = time.perf_counter() - started
    assert len(df) == 1_000_000
    assert df[DEMO_ID_COLUMN].is_unique
    assert elapsed < 10
