"""Feature and prediction drift from a reference profile and a window's statistics, with the
tests and thresholds Evidently 0.7's ``DataDriftPreset`` picks, and its verdicts.

Per column (Evidently's ``_get_default_stattest``; rows and values counted after dropping nulls
and infinities, values counted over reference and window together):

============================  ======================================  =======================
non-null reference rows       numeric column                          categorical column
============================  ======================================  =======================
at most 1,000                 K-S (> 5 values), chi-square (3-5),     chi-square (> 2 values),
                              Z-test (<= 2): p-value, 0.05            Z-test (<= 2)
above 1,000                   normed Wasserstein (> 5 values),        Jensen-Shannon, 0.1
                              Jensen-Shannon (<= 5): distance, 0.1
============================  ======================================  =======================

A distance drifts at ``score >= threshold``, a K-S p-value at ``<=``, a chi-square or Z-test
p-value at ``<``. The dataset drifts when the share of drifted columns is ``>= drift_share``.

Where Evidently cannot run a column's test (all values null in the window or the reference,
the column missing) it fails the whole report; here that column gets ``error`` set and
``drifted=False``, and it is left out of the drifted share (drifted / tested columns), so the
other columns still give a verdict.

Exact where Evidently is exact on the raw data: K-S, chi-square and Z-test with a reference of
at most 1,000 rows, Jensen-Shannon on categories and on numeric columns of at most 20 reference
values, the Wasserstein distance's tails outside the reference's range. Approximate (values
spread evenly within a reference sketch cell; well within 1 % of Evidently's score on 1,000
quantile bins): the Wasserstein distance within the range, and overrides that need raw values a
large reference no longer has (K-S above 1,000 rows, PSI / Jensen-Shannon on the histogram of
a numeric column of more than 20 values, categories beyond the profile's kept ones).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from scipy.spatial import distance

from prefect_mlops.errors import ConfigError, MonitoringError
from prefect_mlops.monitoring.profile import (
    SMALL_REFERENCE_ROWS,
    ColumnProfile,
    ReferenceProfile,
    cells_cdf_below,
)
from prefect_mlops.monitoring.window import (
    VALUE_COUNT_DISTINCT,
    ColumnStats,
    WindowStats,
    value_order,
)

#: Every test and its default threshold (Evidently's).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
}
#: The tests Evidently allows per column kind when one is asked for by name.
ALLOWED_METHODS: dict[str, tuple[str, ...]] = {
    "numeric": ("wasserstein", "ks", "jensenshannon", "psi"),
    "categorical": ("jensenshannon", "psi", "chisquare", "z"),
}
P_VALUE_METHODS = ("ks", "chisquare", "z")
#: Below this many rows on both sides scipy's K-S p-value is exact (``MAX_AUTO_N``).
_KS_EXACT_ROWS = 10_000
_NORM_FLOOR = 0.001


@dataclass(frozen=True)
class DriftOverride:
    """A column's own test (``method``, one of :data:`DEFAULT_THRESHOLDS`) and/or
    ``threshold``; None keeps Evidently's choice."""

    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: ``score`` (distance or p-value) against ``threshold``,
    ``rows`` non-null window rows compared with ``reference_rows``; ``error`` says why the test
    could not run (then ``drifted`` is False and ``score`` None)."""

    column: str
    kind: str
    method: str | None
    score: float | None
    threshold: float | None
    drifted: bool
    rows: int
    error: str | None = None
    reference_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The column's result as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class DriftResult:
    """Drift over a set of columns: ``drifted_share`` is drifted / tested columns (those
    without ``error``), ``dataset_drift`` is ``drifted_share >= drift_share`` (False when no
    column could be tested)."""

    columns: list[ColumnDrift]
    drift_share: float
    drifted_share: float
    dataset_drift: bool
    tested_columns: int
    drifted_columns: int

    @property
    def errors(self) -> dict[str, str]:
        """Column -> why its test could not run."""
        return {c.column: c.error for c in self.columns if c.error is not None}

    def column(self, name: str) -> ColumnDrift:
        """The result of column ``name``; raises KeyError when it was not tested."""
        for item in self.columns:
            if item.column == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict."""
        return {
            "drift_share": self.drift_share,
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
            "tested_columns": self.tested_columns,
            "drifted_columns": self.drifted_columns,
            "columns": [c.to_dict() for c in self.columns],
        }


class _CannotTest(Exception):
    """A column's test cannot run; the message says why."""


# --- value counts ---------------------------------------------------------------------------


def _value_counts(
    column: ColumnProfile, window: ColumnStats
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Keys and (reference, window) counts over the union of values, as Evidently compares
    them value by value."""
    if column.kind == "categorical":
        keys: list[Any] = [value for value, _ in column.categories]
        ref = [count for _, count in column.categories]
        cur = window.counts.tolist()
        if column.other_count:
            # Categories beyond the profile's kept ones: one lump on both sides.
            keys.append("<other>")
            ref.append(column.other_count)
            cur.append(window.new_count)
            return keys, np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)
    else:
        if not column.exact or column.distinct > VALUE_COUNT_DISTINCT:
            raise _CannotTest(
                f"its values cannot be compared one by one: the reference has "
                f"{column.distinct} distinct values (the profile keeps values for at most "
                f"{VALUE_COUNT_DISTINCT})"
            )
        keys = list(column.edges)
        ref = list(column.cells[1:-1:2])
        cur = window.cells[1:-1:2].tolist()
    for value, count in window.new_values.items():
        keys.append(value)
        ref.append(0)
        cur.append(count)
    rest = window.new_count - sum(window.new_values.values())
    if rest > 0:
        keys.append("<more unseen values>")
        ref.append(0)
        cur.append(rest)
    return keys, np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)


def _union_distinct(column: ColumnProfile, window: ColumnStats) -> int:
    """Distinct non-null values over reference and window (exact up to the kept unseen
    values; more than that when they were truncated)."""
    if column.kind == "numeric" and not (column.exact and column.distinct <= VALUE_COUNT_DISTINCT):
        return column.distinct  # already above 20: more than the <= 5 rule looks at
    return column.distinct + len(window.new_values) + (1 if window.new_truncated else 0)


# --- the tests -----------------------------------------------------------------------------


def _cumulative_shares(column: ColumnProfile, window: ColumnStats) -> tuple[np.ndarray, np.ndarray]:
    ref = np.cumsum(np.asarray(column.cells, dtype=np.float64)) / column.count
    cur = np.cumsum(window.cells.astype(np.float64)) / window.count
    return ref, cur


def _wasserstein(column: ColumnProfile, window: ColumnStats) -> float:
    """Normed Wasserstein distance (scipy's, divided by ``max(reference std, 0.001)``)."""
    edges = np.asarray(column.edges)
    cum_ref, cum_cur = _cumulative_shares(column, window)
    n_cur = window.count
    cells = window.cells
    below = (cells[0] * edges[0] - window.below_sum) / n_cur
    above = (window.above_sum - cells[-1] * edges[-1]) / n_cur
    inner = 0.0
    if len(edges) > 1:
        # Open cell i lies between edges[i] and edges[i + 1]; each CDF rises linearly over it
        # from its value after the point at edges[i].
        alpha = cum_ref[1:-2:2] - cum_cur[1:-2:2]
        end = cum_ref[2:-1:2] - cum_cur[2:-1:2]
        beta = end - alpha
        width = np.diff(edges)
        # Where the CDFs do not cross, the area between them over the cell is exact from the
        # counts and sums of the values in it: the integral of F over (a, b) is
        # F(a) (b - a) + (count * b - sum) / n.
        ref_sums = np.asarray(column.sums) if column.sums else np.zeros(len(width))
        ref_counts = np.asarray(column.cells[2:-1:2], dtype=np.float64)
        cur_counts = cells[2:-1:2].astype(np.float64)
        upper = edges[1:]
        signed = alpha * width + (
            (ref_counts * upper - ref_sums) / column.count
            - (cur_counts * upper - window.sums) / n_cur
        )
        # Where they cross, both rise linearly over the cell (values spread evenly).
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = width * (alpha**2 + end**2) / (2 * np.abs(beta))
        area = np.where(alpha * end >= 0, np.abs(signed), crossing)
        inner = float(area.sum())
    std = column.std if column.std is not None else 0.0
    return (max(float(below), 0.0) + max(float(above), 0.0) + inner) / max(std, _NORM_FLOOR)


def _stand_in_sample(edges: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """A sample with the same counts in every cell: values at the edges, at the middle of the
    cells between them, and just outside the range."""
    span = max(abs(edges[0]), abs(edges[-1]), 1.0)
    positions = np.empty(len(cells))
    positions[0] = edges[0] - span
    positions[1:-1:2] = edges
    positions[2:-1:2] = (edges[:-1] + edges[1:]) / 2
    positions[-1] = edges[-1] + span
    return np.repeat(positions, cells.astype(np.int64))


def _ks(column: ColumnProfile, window: ColumnStats) -> float:
    """Two-sided two-sample K-S p-value, as ``scipy.stats.ks_2samp(method='auto')``."""
    n_ref, n_cur = column.count, window.count
    edges = np.asarray(column.edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if max(n_ref, n_cur) <= _KS_EXACT_ROWS:
            # The exact p-value depends on the statistic and both sizes only; stand-in samples
            # with the same counts per cell have the same statistic.
            ref = _stand_in_sample(edges, np.asarray(column.cells))
            cur = _stand_in_sample(edges, window.cells)
            return float(scipy_stats.ks_2samp(ref, cur).pvalue)
        cum_ref, cum_cur = _cumulative_shares(column, window)
        statistic = float(np.max(np.abs(cum_ref - cum_cur)))
        m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
        en = m * n / (m + n)
        return float(np.clip(scipy_stats.kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


def _histogram_shares(column: ColumnProfile, window: ColumnStats) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's Sturges histogram over reference and window together, for a numeric column
    of more than 20 reference values (from the sketch: approximate)."""
    first = min(float(column.min or 0.0), window.min)
    last = max(float(column.max or 0.0), window.max)
    n = column.count + window.count
    if first == last:
        first, last = first - 0.5, last + 0.5
        bins = 1
    else:
        width = (last - first) / (math.log2(n) + 1.0)
        bins = math.ceil((last - first) / width)
    bounds = np.linspace(first, last, bins + 1)
    edges = np.asarray(column.edges)
    ref_below = cells_cdf_below(edges, np.asarray(column.cells, dtype=np.float64), bounds)
    cur_below = cells_cdf_below(
        edges, window.cells.astype(np.float64), bounds, low=window.min, high=window.max
    )
    ref_below[-1] = cur_below[-1] = 1.0  # the last bin is closed
    ref_below[0] = cur_below[0] = 0.0
    return np.diff(ref_below), np.diff(cur_below)


def _binned_shares(
    column: ColumnProfile, window: ColumnStats, fill_zeroes: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: shares per histogram bin or per value."""
    if column.kind == "numeric" and column.distinct > VALUE_COUNT_DISTINCT:
        ref, cur = _histogram_shares(column, window)
    else:
        _, ref_counts, cur_counts = _value_counts(column, window)
        ref, cur = ref_counts / column.count, cur_counts / window.count
    if fill_zeroes:
        for shares in (ref, cur):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return ref, cur


def _jensenshannon(column: ColumnProfile, window: ColumnStats) -> float:
    ref, cur = _binned_shares(column, window, fill_zeroes=False)
    return float(distance.jensenshannon(ref, cur))


def _psi(column: ColumnProfile, window: ColumnStats) -> float:
    ref, cur = _binned_shares(column, window, fill_zeroes=True)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def _chisquare(column: ColumnProfile, window: ColumnStats) -> float:
    _, ref, cur = _value_counts(column, window)
    expected = ref * (window.count / column.count)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(scipy_stats.chisquare(cur, expected)[1])


def _z(column: ColumnProfile, window: ColumnStats) -> float:
    keys, ref, cur = _value_counts(column, window)
    present = [(k, r, c) for k, r, c in zip(keys, ref, cur, strict=True) if r or c]
    if len(present) == 1:  # one and the same value on both sides
        return 1.0
    first = min(present, key=lambda item: value_order(item[0]))
    n1, n2 = column.count, window.count
    p1 = (n1 - first[1]) / n1
    p2 = (n2 - first[2]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - scipy_stats.norm.cdf(np.abs(z))))


_TESTS = {
    "wasserstein": _wasserstein,
    "jensenshannon": _jensenshannon,
    "psi": _psi,
    "ks": _ks,
    "chisquare": _chisquare,
    "z": _z,
}


def _drifted(method: str, score: float, threshold: float) -> bool:
    if method == "ks":
        return score <= threshold
    if method in ("chisquare", "z"):
        return score < threshold
    return score >= threshold


def default_method(column: ColumnProfile, window: ColumnStats) -> str:
    """The test Evidently's ``DataDriftPreset`` picks for the column (see the module table)."""
    values = _union_distinct(column, window)
    small = column.count <= SMALL_REFERENCE_ROWS
    if column.kind == "numeric":
        if values <= 5:
            if small:
                return "chisquare" if values > 2 else "z"
            return "jensenshannon"
        return "ks" if small else "wasserstein"
    if small:
        return "chisquare" if values > 2 else "z"
    return "jensenshannon"


def _check_overrides(
    profile: ReferenceProfile, names: list[str], overrides: dict[str, DriftOverride]
) -> None:
    for name, override in overrides.items():
        if name not in profile.columns:
            raise ConfigError(
                f"drift override: column {name!r} is not in the reference profile (it has "
                f"{list(profile.columns)})"
            )
        kind = profile.columns[name].kind
        if override.method is not None:
            if override.method not in DEFAULT_THRESHOLDS:
                raise ConfigError(
                    f"drift override for column {name!r}: method {override.method!r} is not one "
                    f"of {sorted(DEFAULT_THRESHOLDS)}"
                )
            if override.method not in ALLOWED_METHODS[kind]:
                raise ConfigError(
                    f"drift override for column {name!r}: method {override.method!r} does not "
                    f"apply to a {kind} column; use one of {list(ALLOWED_METHODS[kind])}"
                )
        threshold = override.threshold
        if threshold is not None:
            p_value = override.method in P_VALUE_METHODS
            if not math.isfinite(threshold) or threshold <= 0 or (p_value and threshold >= 1):
                raise ConfigError(
                    f"drift override for column {name!r}: threshold {threshold!r} must be a "
                    f"positive number{' below 1 (a p-value)' if p_value else ''}"
                )


def _column_drift(
    column: ColumnProfile, window: ColumnStats | None, override: DriftOverride | None
) -> ColumnDrift:
    def failed(why: str, method: str | None = None, rows: int = 0) -> ColumnDrift:
        threshold = None
        if method is not None:
            threshold = (override.threshold if override else None) or DEFAULT_THRESHOLDS[method]
        return ColumnDrift(
            column.name, column.kind, method, None, threshold, False, rows, why, column.count
        )

    if window is None:
        return failed("the column is not in the window statistics")
    if window.missing_rows:
        total = window.missing_rows + window.rows
        return failed(
            f"the column is missing from the window ({window.missing_rows} of {total} rows)"
        )
    if window.error is not None:
        return failed(window.error)
    if column.count == 0:
        return failed(f"all {column.rows} reference rows are null: the profile has no values")
    if window.count == 0:
        if window.rows == 0:
            return failed("the window has no rows")
        return failed(f"all {window.rows} window rows are null")
    method = (override.method if override else None) or default_method(column, window)
    threshold = (override.threshold if override else None) or DEFAULT_THRESHOLDS[method]
    try:
        score = _TESTS[method](column, window)
    except _CannotTest as exc:
        return failed(f"{method} cannot run: {exc}", method, window.count)
    if not math.isfinite(score):
        return failed(f"the {method} score is not a number ({score})", method, window.count)
    return ColumnDrift(
        column=column.name,
        kind=column.kind,
        method=method,
        score=score,
        threshold=threshold,
        drifted=_drifted(method, score, threshold),
        rows=window.count,
        error=None,
        reference_rows=column.count,
    )


def detect_drift(
    profile: ReferenceProfile,
    stats: WindowStats,
    *,
    columns: Iterable[str] | None = None,
    overrides: dict[str, DriftOverride] | None = None,
    drift_share: float = 0.5,
) -> DriftResult:
    """Test each column (default: the profile's features) of the window ``stats`` against the
    reference ``profile``, with Evidently's default tests unless ``overrides`` sets a column's
    method or threshold, and call dataset drift when the share of drifted columns among those
    tested is at least ``drift_share``. Overrides of profile columns not tested are ignored.

    Returns a :class:`DriftResult`; a column whose test cannot run is in it with ``error`` set.
    Raises ConfigError for a column (tested or overridden) the profile does not have, an unknown
    method or one that does not apply to the column's kind, a threshold that is not positive
    (or not below 1 for a p-value), or a ``drift_share`` outside (0, 1].
    """
    if not 0 < drift_share <= 1:
        raise ConfigError(f"detect_drift: drift_share must be within (0, 1], got {drift_share!r}")
    names = list(profile.features if columns is None else columns)
    unknown = [n for n in names if n not in profile.columns]
    if unknown:
        raise ConfigError(
            f"detect_drift: columns {unknown} are not in the reference profile "
            f"(it has {list(profile.columns)})"
        )
    overrides = overrides or {}
    _check_overrides(profile, names, overrides)
    results = [
        _column_drift(profile.columns[n], stats.columns.get(n), overrides.get(n)) for n in names
    ]
    tested = [r for r in results if r.error is None]
    drifted = sum(1 for r in tested if r.drifted)
    share = drifted / len(tested) if tested else 0.0
    return DriftResult(
        columns=results,
        drift_share=drift_share,
        drifted_share=share,
        dataset_drift=bool(tested) and share >= drift_share,
        tested_columns=len(tested),
        drifted_columns=drifted,
    )


def prediction_drift(
    profile: ReferenceProfile,
    stats: WindowStats,
    *,
    overrides: dict[str, DriftOverride] | None = None,
    drift_share: float = 0.5,
) -> DriftResult:
    """Drift of the served predictions (and class probabilities) against the version's test-set
    predictions: :func:`detect_drift` over the profile's prediction columns.

    Raises MonitoringError when the profile has no prediction columns, and what
    :func:`detect_drift` raises.
    """
    names = profile.prediction_columns
    if not names:
        raise MonitoringError(
            "prediction_drift: the reference profile has no prediction columns; build it with "
            "predictions= or probabilities="
        )
    return detect_drift(profile, stats, columns=names, overrides=overrides, drift_share=drift_share)
