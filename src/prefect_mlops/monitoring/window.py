"""Mergeable statistics of a serving-log window, for one reference profile.

:func:`window_stats` reads a frame (one window, or one partition of it) once and keeps, per
profile column, what the drift tests need: rows, nulls, sum and sum of squares, min / max, the
counts in the reference sketch's cells (with the sums of the values below / above the reference's
range, which make the Wasserstein distance's tails exact), category counts aligned with the
reference's categories, and the smallest few values the reference never had (with counts).
:func:`merge` adds two of them; it is associative and commutative, so statistics computed per
partition (on Dask workers) and merged give the same verdicts as one pass over the whole window.

The frame's columns are the profile's column names (rename serving-log columns first); a
profile column the frame lacks is recorded as missing, not raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import DataValidationError, MonitoringError
from prefect_mlops.monitoring.profile import (
    ColumnKind,
    ColumnProfile,
    ReferenceProfile,
    category_key,
    finite_values,
    numeric_cells,
)

#: Distinct values outside the reference kept per column (the smallest ones, with counts).
NEW_VALUE_LIMIT = 32
#: Numeric columns with at most this many distinct reference values track their unseen values
#: (Evidently compares such columns value by value: its histogram starts above 20 values).
VALUE_COUNT_DISTINCT = 20


def value_order(value: Any) -> tuple[int, Any]:
    """A total order over category keys and numbers (numbers first, then strings)."""
    if isinstance(value, bool | int | float):
        return (0, float(value))
    return (1, str(value))


@dataclass
class ColumnStats:
    """Statistics of one profile column over a window (or part of one).

    ``rows`` counts the rows of the parts that had the column, ``missing_rows`` those of parts
    that did not; ``nulls`` the null (or infinite) rows; ``error`` the first problem seen
    (a numeric column holding strings, say). Numeric: ``total`` / ``total_sq`` (sum, sum of
    squares), ``min`` / ``max``, ``cells`` (counts in the reference sketch's cells),
    ``below_sum`` / ``above_sum`` (sum of the values below / above the reference's range),
    ``sums`` (of the values in each open cell between two edges).
    Categorical: ``counts`` aligned with the reference's categories. Both: ``new_values``, the
    :data:`NEW_VALUE_LIMIT` smallest distinct values outside the reference (categories it did not
    keep; for a numeric column of at most :data:`VALUE_COUNT_DISTINCT` values, values that are not
    among them) with their counts, ``new_count`` rows with such values and ``new_truncated``
    when more distinct ones were seen than kept.
    """

    name: str
    kind: ColumnKind
    rows: int = 0
    nulls: int = 0
    missing_rows: int = 0
    error: str | None = None
    total: float = 0.0
    total_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    below_sum: float = 0.0
    above_sum: float = 0.0
    cells: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new_values: dict[Any, int] = field(default_factory=dict)
    new_count: int = 0
    new_truncated: bool = False

    @property
    def count(self) -> int:
        """Non-null rows: what the drift tests compare."""
        return self.rows - self.nulls

    @property
    def mean(self) -> float | None:
        """Mean of the non-null values (numeric), None when there are none."""
        return self.total / self.count if self.kind == "numeric" and self.count else None

    @property
    def std(self) -> float | None:
        """Population standard deviation of the non-null values (numeric), or None."""
        if self.kind != "numeric" or not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no cells): rows, nulls, mean / std or new categories."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "nulls": self.nulls,
            "missing_rows": self.missing_rows,
            "error": self.error,
            "new_count": self.new_count,
            "new_values": {str(k): v for k, v in self.new_values.items()},
        }
        if self.kind == "numeric":
            finite = self.count > 0
            data.update(
                mean=self.mean,
                std=self.std,
                min=self.min if finite else None,
                max=self.max if finite else None,
            )
        return data


@dataclass
class WindowStats:
    """Mergeable statistics of a window: ``rows`` and one :class:`ColumnStats` per profile
    column (see :func:`window_stats`, :func:`merge`)."""

    rows: int
    columns: dict[str, ColumnStats]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary of the window (rows, per-column summaries)."""
        return {"rows": self.rows, "columns": [c.to_dict() for c in self.columns.values()]}


def _keep_smallest(values: dict[Any, int]) -> tuple[dict[Any, int], bool]:
    if len(values) <= NEW_VALUE_LIMIT:
        return values, False
    keys = sorted(values, key=value_order)[:NEW_VALUE_LIMIT]
    return {k: values[k] for k in keys}, True


def _numeric_stats(series: pd.Series, column: ColumnProfile) -> ColumnStats:
    stats = ColumnStats(column.name, "numeric", rows=len(series))
    try:
        values, nulls = finite_values(series, f"window column {column.name!r}")
    except DataValidationError as exc:
        stats.error = str(exc)
        return stats
    stats.nulls = nulls
    edges = np.asarray(column.edges, dtype=np.float64)
    stats.sums = np.zeros(max(len(edges) - 1, 0), dtype=np.float64)
    if len(values) == 0:
        stats.cells = np.zeros(2 * len(edges) + 1, dtype=np.int64)
        return stats
    values = np.sort(values)
    stats.total = float(values.sum())
    stats.total_sq = float(np.dot(values, values))
    stats.min = float(values[0])
    stats.max = float(values[-1])
    if len(edges) == 0:  # an all-null reference column: nothing to place the values in
        stats.cells = np.zeros(1, dtype=np.int64)
        stats.cells[0] = len(values)
        return stats
    cells, sums = numeric_cells(values, edges)
    stats.cells = cells
    stats.sums = sums
    if cells[0]:
        stats.below_sum = float(values[: cells[0]].sum())
    if cells[-1]:
        stats.above_sum = float(values[len(values) - cells[-1] :].sum())
    if column.exact and column.distinct <= VALUE_COUNT_DISTINCT:
        outside = cells[0::2]
        stats.new_count = int(outside.sum())
        if stats.new_count:
            starts = np.concatenate(([0], np.cumsum(cells)[:-1]))[0::2]
            pieces = [values[s : s + c] for s, c in zip(starts, outside, strict=True) if c]
            uniq, counts = np.unique(np.concatenate(pieces), return_counts=True)
            kept = dict(zip(uniq[:NEW_VALUE_LIMIT].tolist(), counts.tolist(), strict=False))
            stats.new_values = kept
            stats.new_truncated = len(uniq) > NEW_VALUE_LIMIT
    return stats


def _categorical_stats(
    series: pd.Series, column: ColumnProfile, index: dict[Any, int]
) -> ColumnStats:
    stats = ColumnStats(column.name, "categorical", rows=len(series))
    counts = np.zeros(len(column.categories), dtype=np.int64)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        per_code = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
        pairs: list[tuple[Any, int]] = list(
            zip(series.cat.categories.tolist(), per_code.tolist(), strict=True)
        )
    else:
        value_counts = series.value_counts(dropna=True, sort=False)
        pairs = list(zip(value_counts.index.tolist(), value_counts.tolist(), strict=True))
    new: dict[Any, int] = {}
    seen = 0
    for value, count in pairs:
        key = category_key(value)
        if not count or (isinstance(key, float) and math.isinf(key)):
            continue  # an infinity is a null to Evidently (it replaces them with NaN)
        seen += int(count)
        position = index.get(key)
        if position is None:
            new[key] = new.get(key, 0) + int(count)
        else:
            counts[position] += int(count)
    stats.counts = counts
    stats.nulls = stats.rows - seen
    stats.new_count = sum(new.values())
    stats.new_values, stats.new_truncated = _keep_smallest(new)
    return stats


def window_stats(frame: pd.DataFrame, profile: ReferenceProfile) -> WindowStats:
    """Statistics of ``frame`` for every column of ``profile``.

    Returns a :class:`WindowStats`; a profile column the frame lacks has ``missing_rows`` set,
    a numeric one holding non-numbers has ``error`` set (neither raises).
    """
    columns: dict[str, ColumnStats] = {}
    for name, column in profile.columns.items():
        if name not in frame.columns:
            numeric = column.kind == "numeric"
            columns[name] = ColumnStats(
                name,
                column.kind,
                missing_rows=len(frame),
                cells=np.zeros(2 * len(column.edges) + 1 if numeric else 0, dtype=np.int64),
                sums=np.zeros(max(len(column.edges) - 1, 0), dtype=np.float64),
                counts=np.zeros(0 if numeric else len(column.categories), dtype=np.int64),
            )
            continue
        if column.kind == "numeric":
            columns[name] = _numeric_stats(frame[name], column)
        else:
            index = {value: i for i, (value, _) in enumerate(column.categories)}
            columns[name] = _categorical_stats(frame[name], column, index)
    return WindowStats(rows=len(frame), columns=columns)


def _merge_column(a: ColumnStats, b: ColumnStats) -> ColumnStats:
    if a.kind != b.kind or a.cells.shape != b.cells.shape or a.counts.shape != b.counts.shape:
        raise MonitoringError(
            f"merge: column {a.name!r} has different shapes in the two window statistics "
            f"(kind {a.kind}/{b.kind}, {a.cells.size}/{b.cells.size} cells, "
            f"{a.counts.size}/{b.counts.size} categories): they were computed for different "
            f"profiles"
        )
    new = dict(a.new_values)
    for key, count in b.new_values.items():
        new[key] = new.get(key, 0) + count
    kept, truncated = _keep_smallest(new)
    return replace(
        a,
        rows=a.rows + b.rows,
        nulls=a.nulls + b.nulls,
        missing_rows=a.missing_rows + b.missing_rows,
        error=a.error if a.error is not None else b.error,
        total=a.total + b.total,
        total_sq=a.total_sq + b.total_sq,
        min=min(a.min, b.min),
        max=max(a.max, b.max),
        below_sum=a.below_sum + b.below_sum,
        above_sum=a.above_sum + b.above_sum,
        cells=a.cells + b.cells,
        sums=a.sums + b.sums,
        counts=a.counts + b.counts,
        new_values=kept,
        new_count=a.new_count + b.new_count,
        new_truncated=a.new_truncated or b.new_truncated or truncated,
    )


def merge(a: WindowStats, b: WindowStats) -> WindowStats:
    """The statistics of two windows (or partitions) taken together.

    Returns a new :class:`WindowStats` (the inputs are not changed). Raises MonitoringError when
    the two were computed for different profiles (other columns, sketches or categories).
    """
    if list(a.columns) != list(b.columns):
        raise MonitoringError(
            f"merge: the window statistics have different columns ({sorted(a.columns)} vs "
            f"{sorted(b.columns)}): they were computed for different profiles"
        )
    return WindowStats(
        rows=a.rows + b.rows,
        columns={name: _merge_column(a.columns[name], b.columns[name]) for name in a.columns},
    )
