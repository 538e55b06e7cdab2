"""The reference profile: what a model version's reference data and test-set predictions look
like, compact enough to keep with the version (a JSON artifact), complete enough for every drift
test Evidently's ``DataDriftPreset`` would run on the raw reference.

A numeric column is kept as a *cell sketch*: sorted distinct ``edges`` (every distinct value when
there are at most ``bins`` of them, which a reference of at most 1,000 rows always has; else the
reference's quantiles at ``bins`` + 1 evenly spaced levels and its ``TAIL_VALUES`` smallest and
largest values) and the
reference's row counts in the cells they make::

    cells[0]          below edges[0]            (always 0 in the reference)
    cells[2 i + 1]    equal to edges[i]
    cells[2 i + 2]    strictly between edges[i] and edges[i + 1]
    cells[2 k]        above edges[k - 1]        (always 0 in the reference)

An *exact* sketch (all distinct values as edges) is the reference's values themselves (value,
multiplicity), so K-S, chi-square and Z-test are exact; a quantile sketch gives the normed
Wasserstein distance within a fraction of a percent of scipy's on the raw values. A categorical
column keeps the counts of its ``CATEGORY_LIMIT`` most frequent categories and the rest as one
"other" mass.

Nulls are dropped before profiling, as Evidently drops them before its tests; infinities count
as nulls (Evidently replaces them with NaN first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from prefect_mlops.errors import ConfigError, DataValidationError, MonitoringError

#: The ``format`` field of :meth:`ReferenceProfile.to_dict`; ``from_dict`` reads only this one.
PROFILE_FORMAT = "prefect-mlops.reference-profile/1"
#: Edges of a numeric sketch: every distinct value up to this many, else this many quantile bins.
DEFAULT_BINS = 1000
#: The smallest and largest values a quantile sketch also keeps as edges.
TAIL_VALUES = 50
#: Categories kept by name per categorical column (the most frequent); the rest is "other".
CATEGORY_LIMIT = 1000
#: Evidently switches from K-S / chi-square / Z-test to Wasserstein / Jensen-Shannon above this
#: many (non-null) reference rows.
SMALL_REFERENCE_ROWS = 1000
#: The profile column name of the served / test-set predictions.
PREDICTION_COLUMN = "prediction"
#: Prefix of the profile column of a class probability (``proba_<label>``).
PROBABILITY_PREFIX = "proba_"

ColumnKind = Literal["numeric", "categorical"]
ColumnRole = Literal["feature", "prediction", "probability"]
TASKS = ("classification", "regression")


def probability_column(label: Any) -> str:
    """The profile column name of the probability of class ``label`` (``proba_<label>``)."""
    return f"{PROBABILITY_PREFIX}{label}"


def category_key(value: Any) -> Any:
    """A category as the JSON scalar the profile stores: numpy scalars become Python ones,
    anything that is not a str / bool / int / float becomes its ``str``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def finite_values(series: pd.Series, where: str) -> tuple[np.ndarray, int]:
    """A numeric column's finite values as float64, and how many rows were null or infinite.

    Raises DataValidationError naming ``where`` and the dtype when the column is not numeric.
    """
    if not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series)):
        raise DataValidationError(
            f"{where}: a numeric column holds dtype {series.dtype}; declare it categorical "
            f"or cast it to numbers"
        )
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    if finite.all():
        return values, 0
    kept = values[finite]
    return kept, int(len(values) - len(kept))


def dtype_family(series: pd.Series) -> str:
    """The dtype family: bool, integer, float, category, datetime or string (anything else)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def numeric_cells(sorted_values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``sorted_values`` (ascending, finite) in the ``2 len(edges) + 1`` cells of
    ``edges`` (see the module docstring), as int64, and the sums of the values in each of the
    ``len(edges) - 1`` open cells between two edges (float64)."""
    left = np.searchsorted(sorted_values, edges, side="left")
    right = np.searchsorted(sorted_values, edges, side="right")
    cumulative = np.concatenate(([0.0], np.cumsum(sorted_values)))
    sums = cumulative[left[1:]] - cumulative[right[:-1]]
    cells = np.empty(2 * len(edges) + 1, dtype=np.int64)
    cells[0] = left[0]
    cells[1:-1:2] = right - left
    cells[2:-1:2] = left[1:] - right[:-1]
    cells[-1] = len(sorted_values) - right[-1]
    return cells, sums


@dataclass(frozen=True)
class ColumnProfile:
    """One column of a reference profile.

    ``rows`` counts every row, ``nulls`` the null (or infinite) ones, ``count`` the rest (what the
    tests see). ``distinct`` is the exact number of distinct non-null values. Numeric columns
    carry ``mean``, ``std`` (population, as ``np.std``), ``edges``, ``cells``, ``sums`` (of the
    values in each open cell between two edges; empty when ``exact``) and ``exact``;
    categorical ones ``categories`` (value, count) pairs, most frequent first, plus
    ``other_count`` rows in ``other_distinct`` categories that were not kept by name.
    """

    name: str
    kind: ColumnKind
    role: ColumnRole
    dtype: str
    rows: int
    nulls: int
    distinct: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: tuple[float, ...] = ()
    cells: tuple[int, ...] = ()
    sums: tuple[float, ...] = ()
    exact: bool = False
    categories: tuple[tuple[Any, int], ...] = ()
    other_count: int = 0
    other_distinct: int = 0

    @property
    def count(self) -> int:
        """Non-null rows: what the drift tests compare."""
        return self.rows - self.nulls

    @property
    def null_rate(self) -> float:
        """Share of null (or infinite) rows; 0 for an empty column."""
        return self.nulls / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The column as a JSON-able dict (only the fields its kind uses)."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "dtype": self.dtype,
            "rows": self.rows,
            "nulls": self.nulls,
            "distinct": self.distinct,
        }
        if self.kind == "numeric":
            data.update(
                min=self.min,
                max=self.max,
                mean=self.mean,
                std=self.std,
                exact=self.exact,
                edges=list(self.edges),
                cells=list(self.cells),
                sums=list(self.sums),
            )
        else:
            data.update(
                categories=[[value, count] for value, count in self.categories],
                other_count=self.other_count,
                other_distinct=self.other_distinct,
            )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        """Rebuild a column from :meth:`to_dict`. Raises MonitoringError naming a missing or
        bad field."""
        name = data.get("name", "?")
        try:
            kind = data["kind"]
            if kind not in ("numeric", "categorical"):
                raise MonitoringError(
                    f"reference profile column {name!r}: kind {kind!r} is neither "
                    f"'numeric' nor 'categorical'"
                )
            common: dict[str, Any] = {
                "name": str(data["name"]),
                "kind": kind,
                "role": data["role"],
                "dtype": str(data["dtype"]),
                "rows": int(data["rows"]),
                "nulls": int(data["nulls"]),
                "distinct": int(data["distinct"]),
            }
            if kind == "numeric":
                edges = tuple(float(e) for e in data["edges"])
                cells = tuple(int(c) for c in data["cells"])
                if edges and len(cells) != 2 * len(edges) + 1:
                    raise MonitoringError(
                        f"reference profile column {name!r}: {len(cells)} cells for "
                        f"{len(edges)} edges (expected {2 * len(edges) + 1})"
                    )
                return cls(
                    **common,
                    min=_opt_float(data["min"]),
                    max=_opt_float(data["max"]),
                    mean=_opt_float(data["mean"]),
                    std=_opt_float(data["std"]),
                    edges=edges,
                    cells=cells,
                    sums=tuple(float(v) for v in data["sums"]),
                    exact=bool(data["exact"]),
                )
            return cls(
                **common,
                categories=tuple((value, int(count)) for value, count in data["categories"]),
                other_count=int(data["other_count"]),
                other_distinct=int(data["other_distinct"]),
            )
        except KeyError as exc:
            raise MonitoringError(
                f"reference profile column {name!r}: field {exc.args[0]!r} is missing"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise MonitoringError(f"reference profile column {name!r}: {exc}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ReferenceProfile:
    """A model version's reference profile: its feature columns, and the profile of its test-set
    predictions (``prediction``) and class probabilities (``proba_<label>``) when given.

    ``quality`` is stored as given (calibration data of the quality estimators).
    """

    rows: int
    columns: dict[str, ColumnProfile]
    task: str | None = None
    quality: dict[str, Any] | None = None
    format: str = PROFILE_FORMAT

    @property
    def features(self) -> list[str]:
        """The feature columns, in profile order."""
        return [n for n, c in self.columns.items() if c.role == "feature"]

    @property
    def numeric(self) -> list[str]:
        """The numeric feature columns."""
        return [n for n, c in self.columns.items() if c.role == "feature" and c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """The categorical feature columns."""
        return [
            n for n, c in self.columns.items() if c.role == "feature" and c.kind == "categorical"
        ]

    @property
    def prediction_columns(self) -> list[str]:
        """The prediction column (if profiled) followed by the probability columns."""
        return [n for n, c in self.columns.items() if c.role != "feature"]

    def to_dict(self) -> dict[str, Any]:
        """The profile as a JSON-able dict with a ``format`` field."""
        return {
            "format": self.format,
            "rows": self.rows,
            "task": self.task,
            "quality": self.quality,
            "columns": [column.to_dict() for column in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict`.

        Raises MonitoringError when ``format`` is not :data:`PROFILE_FORMAT` or a field is
        missing or malformed (the error names it).
        """
        if not isinstance(data, dict):
            raise MonitoringError(
                f"reference profile: expected a JSON object, got {type(data).__name__}"
            )
        fmt = data.get("format")
        if fmt != PROFILE_FORMAT:
            raise MonitoringError(
                f"reference profile: format {fmt!r} is not {PROFILE_FORMAT!r}; rebuild the "
                f"profile with this version of prefect-mlops"
            )
        for key in ("rows", "columns"):
            if key not in data:
                raise MonitoringError(f"reference profile: field {key!r} is missing")
        columns = [ColumnProfile.from_dict(c) for c in data["columns"]]
        return cls(
            rows=int(data["rows"]),
            columns={c.name: c for c in columns},
            task=data.get("task"),
            quality=data.get("quality"),
        )


def _numeric_profile(
    name: str, series: pd.Series, role: ColumnRole, bins: int, where: str
) -> ColumnProfile:
    values, nulls = finite_values(series, where)
    values = np.sort(values)
    rows = len(series)
    if len(values) == 0:
        return ColumnProfile(
            name, "numeric", role, dtype_family(series), rows, nulls, 0, exact=True
        )
    distinct = int(np.count_nonzero(np.diff(values)) + 1)
    exact = distinct <= max(bins, SMALL_REFERENCE_ROWS)
    if exact:
        edges = np.unique(values)
    else:
        levels = np.linspace(0.0, 1.0, bins + 1)
        # The extreme values themselves too: the tails' cells are the widest, and the
        # Wasserstein area there would depend on how values spread within them.
        tail = TAIL_VALUES
        quantiles = np.quantile(values, levels, method="inverted_cdf")
        edges = np.unique(np.concatenate((values[:tail], quantiles, values[-tail:])))
    cells, sums = numeric_cells(values, edges)
    return ColumnProfile(
        name=name,
        kind="numeric",
        role=role,
        dtype=dtype_family(series),
        rows=rows,
        nulls=nulls,
        distinct=distinct,
        min=float(values[0]),
        max=float(values[-1]),
        mean=float(np.mean(values)),
        std=float(np.std(values)),
        edges=tuple(edges.tolist()),
        cells=tuple(cells.tolist()),
        # An exact sketch has no values between its edges; 10 significant digits of an open
        # cell's sum are plenty for the Wasserstein area it gives.
        sums=() if exact else tuple(float(f"{v:.10g}") for v in sums.tolist()),
        exact=exact,
    )


def _categorical_profile(name: str, series: pd.Series, role: ColumnRole) -> ColumnProfile:
    counts = series.value_counts(dropna=True)
    merged: dict[Any, int] = {}
    for value, count in counts.items():
        key = category_key(value)
        if isinstance(key, float) and math.isinf(key):
            continue  # an infinity is a null to Evidently (it replaces them with NaN)
        merged[key] = merged.get(key, 0) + int(count)
    ordered = sorted(merged.items(), key=lambda kv: (-kv[1], str(kv[0])))
    kept = ordered[:CATEGORY_LIMIT]
    rest = ordered[CATEGORY_LIMIT:]
    nulls = int(len(series) - sum(merged.values()))
    return ColumnProfile(
        name=name,
        kind="categorical",
        role=role,
        dtype=dtype_family(series),
        rows=len(series),
        nulls=nulls,
        distinct=len(ordered),
        categories=tuple(kept),
        other_count=sum(c for _, c in rest),
        other_distinct=len(rest),
    )


def build_profile(
    reference: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    predictions: pd.Series | None = None,
    probabilities: pd.DataFrame | None = None,
    task: str | None = None,
    quality: dict[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
) -> ReferenceProfile:
    """Profile ``reference`` (the training or test data of a model version).

    ``numeric`` and ``categorical`` name the feature columns; ``predictions`` (the version's
    test-set predictions; ``task`` ``"classification"`` profiles them as categorical,
    ``"regression"`` as numeric) become column :data:`PREDICTION_COLUMN`, and each column of
    ``probabilities`` (one per class label) a numeric column ``proba_<label>``. ``quality`` is
    stored as given. ``bins`` is the number of quantile bins of a numeric sketch.

    Returns the :class:`ReferenceProfile`. Raises ConfigError for a listed column the frame
    does not have, a column listed twice, a reserved or clashing name, an unknown ``task``,
    predictions without a task, or a prediction / probability length that differs from the
    frame's; DataValidationError for a numeric column that does not hold numbers.
    """
    if bins < 2:
        raise ConfigError(f"build_profile: bins must be at least 2, got {bins}")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ConfigError(f"build_profile: columns {both} are listed as numeric and categorical")
    listed = [*numeric, *categorical]
    duplicated = sorted({c for c in listed if listed.count(c) > 1})
    if duplicated:
        raise ConfigError(f"build_profile: columns {duplicated} are listed more than once")
    missing = [c for c in listed if c not in reference.columns]
    if missing:
        raise ConfigError(
            f"build_profile: reference frame has no column {missing}; it has "
            f"{list(map(str, reference.columns))}"
        )
    if task is not None and task not in TASKS:
        raise ConfigError(f"build_profile: task {task!r} is not one of {list(TASKS)}")
    if predictions is not None and task is None:
        raise ConfigError(
            "build_profile: predictions need task='classification' or task='regression'"
        )
    reserved = [c for c in listed if c == PREDICTION_COLUMN or c.startswith(PROBABILITY_PREFIX)]
    if reserved and (predictions is not None or probabilities is not None):
        raise ConfigError(
            f"build_profile: feature columns {reserved} clash with the prediction column "
            f"names ({PREDICTION_COLUMN!r}, {PROBABILITY_PREFIX!r}<label>); rename them"
        )
    if not listed and predictions is None and probabilities is None:
        raise ConfigError("build_profile: no column to profile (numeric and categorical empty)")

    columns: dict[str, ColumnProfile] = {}
    for name in numeric:
        columns[name] = _numeric_profile(
            name, reference[name], "feature", bins, f"reference column {name!r}"
        )
    for name in categorical:
        columns[name] = _categorical_profile(name, reference[name], "feature")
    if predictions is not None:
        if len(predictions) != len(reference):
            raise ConfigError(
                f"build_profile: {len(predictions)} predictions for {len(reference)} reference rows"
            )
        if task == "classification":
            columns[PREDICTION_COLUMN] = _categorical_profile(
                PREDICTION_COLUMN, predictions, "prediction"
            )
        else:
            columns[PREDICTION_COLUMN] = _numeric_profile(
                PREDICTION_COLUMN, predictions, "prediction", bins, "predictions"
            )
    if probabilities is not None:
        if len(probabilities) != len(reference):
            raise ConfigError(
                f"build_profile: {len(probabilities)} probability rows for {len(reference)} "
                f"reference rows"
            )
        for label in probabilities.columns:
            name = probability_column(label)
            columns[name] = _numeric_profile(
                name, probabilities[label], "probability", bins, f"probabilities[{label!r}]"
            )
    if task is None and probabilities is not None:
        task = "classification"
    return ReferenceProfile(rows=len(reference), columns=columns, task=task, quality=quality)


def sketch_cdf_below(column: ColumnProfile, points: np.ndarray) -> np.ndarray:
    """The reference's mass strictly below each of ``points`` from a numeric column's sketch,
    as a share of its non-null rows (linear within each open cell between edges)."""
    return cells_cdf_below(
        np.asarray(column.edges), np.asarray(column.cells, dtype=np.float64), points
    )


def cells_cdf_below(
    edges: np.ndarray,
    cells: np.ndarray,
    points: np.ndarray,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """Share of the mass of ``cells`` (over ``edges``) strictly below each of ``points``.

    Point cells are masses at their edge; an open cell between two edges is spread evenly over
    it; the cells below the first / above the last edge are spread evenly over ``[low,
    edges[0])`` / ``(edges[-1], high]`` (all at the edge when not given)."""
    total = float(cells.sum())
    if total == 0:
        return np.zeros(len(points))
    k = len(edges)
    # Positions of the cell boundaries and the cumulative mass at each, as a piecewise-linear
    # CDF with jumps at the edges (left limits).
    lo = edges[0] if low is None or not math.isfinite(low) else min(low, edges[0])
    hi = edges[-1] if high is None or not math.isfinite(high) else max(high, edges[-1])
    xs = np.concatenate(([lo], np.repeat(edges, 2), [hi]))
    masses = np.zeros(2 * k + 2)
    # Mass reached at each x (left limit at the first copy of an edge, right limit at the second).
    cum = np.cumsum(cells)
    masses[1] = cells[0]  # at edges[0]-
    masses[2] = cum[1]  # at edges[0]+
    for_inner = np.arange(1, k)
    masses[2 * for_inner + 1] = cum[2 * for_inner]  # at edges[i]-
    masses[2 * for_inner + 2] = cum[2 * for_inner + 1]  # at edges[i]+
    masses[-1] = total
    points = np.asarray(points, dtype=np.float64)
    # Left limit at a point: the mass before the first copy of an equal x.
    pos = np.searchsorted(xs, points, side="left")
    out = np.empty(len(points))
    below = pos == 0
    above = pos >= len(xs)
    inner = ~(below | above)
    p = pos[inner]
    x0, x1 = xs[p - 1], xs[p]
    m0, m1 = masses[p - 1], masses[p]
    width = x1 - x0
    frac = np.where(width > 0, (points[inner] - x0) / np.where(width > 0, width, 1.0), 1.0)
    out[inner] = m0 + frac * (m1 - m0)
    out[below] = 0.0
    out[above] = total
    return out / total
