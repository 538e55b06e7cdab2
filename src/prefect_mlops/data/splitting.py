"""Deterministic train / validation / test splits, and the record a run keeps of one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from prefect_mlops.config import SplitConfig
from prefect_mlops.data.snapshots import row_hashes
from prefect_mlops.errors import ConfigError, DataValidationError


@dataclass(frozen=True)
class SplitIndices:
    """Positional row indices of each part of a split (into the snapshot's rows)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Row count of each part."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def split_frame(
    df: pd.DataFrame,
    config: SplitConfig,
    *,
    target: str,
    task: str,
    timestamp_column: str | None = None,
) -> SplitIndices:
    """Split ``df`` by ``config``: seeded random (stratified for classification) or by time.

    Returns positional indices. Raises ConfigError for a time split without a timestamp column
    and DataValidationError when a part would be empty.
    """
    n = len(df)
    n_test = round(n * config.test_size)
    n_val = round(n * config.validation_size)
    if n_test < 1 or n - n_test - n_val < 2:
        raise DataValidationError(
            f"{n} rows are too few to split with test_size={config.test_size} and "
            f"validation_size={config.validation_size}; supply more rows"
        )
    positions = np.arange(n)
    if config.method == "time":
        if not timestamp_column:
            raise ConfigError("field split.method: 'time' needs data.timestamp_column")
        # Stable: rows with one timestamp keep their order. (numpy reads ``kind`` in any case,
        # so the mutant "STABLE" is the same sort: hence the pragma.)
        order = np.argsort(df[timestamp_column].to_numpy(), kind="stable")  # pragma: no mutate
        train_end = n - n_test - n_val
        return SplitIndices(
            train=np.sort(order[:train_end]),
            validation=np.sort(order[train_end : train_end + n_val]),
            test=np.sort(order[train_end + n_val :]),
        )

    stratify = _stratify_labels(df[target], task) if config.stratify else None
    rest, test = _split(positions, n_test, config.seed, stratify)
    if n_val == 0:
        return SplitIndices(train=np.sort(rest), validation=np.array([], int), test=np.sort(test))
    # A class left with one row in ``rest`` cannot be stratified: ``_split`` falls back.
    strat_rest = stratify[rest] if stratify is not None else None
    train, val = _split(rest, n_val, config.seed, strat_rest)
    return SplitIndices(train=np.sort(train), validation=np.sort(val), test=np.sort(test))


def _split(
    positions: np.ndarray, size: int, seed: int, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split`` stratified when possible; a part too small to hold every class (or
    a class too rare) falls back to a plain seeded split."""
    from sklearn.model_selection import train_test_split

    if stratify is not None:
        try:
            return train_test_split(positions, test_size=size, random_state=seed, stratify=stratify)
        except ValueError:
            pass
    return train_test_split(positions, test_size=size, random_state=seed)


def _stratify_labels(y: pd.Series, task: str) -> np.ndarray | None:
    """Labels to stratify on, or None when stratifying is impossible (regression, rare classes)."""
    if task != "classification":
        return None
    counts = y.value_counts(dropna=False)
    if len(counts) < 2 or counts.min() < 2:
        return None
    return y.astype(str).to_numpy()


@dataclass(frozen=True)
class SplitRecord:
    """What a run records of its split: ``params`` (method, seed, rows per part) and ``rows``
    (each snapshot row's content hash and the part it went to), so the split can be audited
    and replayed."""

    params: dict[str, str | int]
    rows: pd.DataFrame


def split_record(df: pd.DataFrame, split: SplitIndices, config: SplitConfig) -> SplitRecord:
    """The :class:`SplitRecord` of ``split`` over ``df``: params ``split.method``,
    ``split.seed``, ``split.<part>_rows`` and a ``row_hash`` / ``split`` frame in ``df``'s row
    order (``train``, ``validation`` or ``test``)."""
    params: dict[str, str | int] = {
        "split.method": config.method,
        "split.seed": config.seed,
        **{f"split.{part}_rows": n for part, n in split.sizes().items()},
    }
    parts = np.full(len(df), "train", dtype=object)
    parts[split.validation] = "validation"
    parts[split.test] = "test"
    rows = pd.DataFrame({"row_hash": row_hashes(df).to_numpy(), "split": parts})
    return SplitRecord(params=params, rows=rows)
