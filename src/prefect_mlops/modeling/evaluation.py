"""Model evaluation: overall and per-slice metrics of a fitted scikit-learn model.

Pure functions over pandas / numpy / scikit-learn (no Prefect, no MLflow):

* :func:`infer_task` guesses classification or regression from the target column;
* :func:`compute_metrics` gives the metrics of one set of predictions, leaving out any metric that
  is undefined on it (one class present, one row, ...) instead of raising or returning NaN;
* :func:`slice_keys` cuts a frame into named slices (``"contract=one-year"``,
  ``"age=[18.0, 35.0)"``, ``"age=<missing>"``);
* :func:`evaluate_model` puts these together into an :class:`EvaluationResult`, which is
  JSON-able (``to_dict`` / ``from_dict``) and gives MLflow-safe metric keys (``flat_metrics``).

Why one module of ~520 lines: its parts are one concern, the metrics of one model on one test
set; slices and the metric set are each used only by :func:`evaluate_model`, and over half the
length is the docstrings that define each metric's edge cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from prefect_mlops.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from prefect_mlops.errors import EvaluationError

ResolvedTask = Literal["classification", "regression"]

MAX_CLASSIFICATION_DISTINCT = 20
"""Numeric targets with at most this many distinct (integral) values count as classes."""

MAX_CATEGORICAL_NUMERIC_DISTINCT = 10
"""Numeric slice columns with more distinct values than this are binned by quantiles."""

MISSING_SLICE = "<missing>"
SLICE_SEPARATOR = "__slice_"
MLFLOW_MAX_KEY_LENGTH = 250

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")
_REPEATED_UNDERSCORES = re.compile(r"_{2,}")


# --------------------------------------------------------------------------------------------
# task inference
# --------------------------------------------------------------------------------------------


def infer_task(y: pd.Series) -> ResolvedTask:
    """Return ``"classification"`` or ``"regression"`` for the target column ``y``.

    Boolean, object, string and category targets are classification. Integer targets, and float
    targets whose values are all integral, are classification when they hold at most
    ``MAX_CLASSIFICATION_DISTINCT`` (20) distinct values, regression otherwise. Other float
    targets are regression. Missing values are ignored.

    Raises:
        EvaluationError: the target has no non-missing value, or an unsupported dtype
            (e.g. datetime).
    """
    name = y.name if y.name is not None else "target"
    values = y.dropna()
    if values.empty:
        raise EvaluationError(f"cannot infer the task: target column {name!r} has no values")
    dtype = y.dtype
    if (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        return "classification"
    if pd.api.types.is_integer_dtype(dtype):
        few = values.nunique() <= MAX_CLASSIFICATION_DISTINCT
        return "classification" if few else "regression"
    if pd.api.types.is_float_dtype(dtype):
        as_float = values.to_numpy(dtype=float)
        integral = bool(np.all(np.isfinite(as_float) & (as_float == np.round(as_float))))
        few = values.nunique() <= MAX_CLASSIFICATION_DISTINCT
        return "classification" if integral and few else "regression"
    raise EvaluationError(
        f"cannot infer the task from target column {name!r} of dtype {dtype}; "
        "set `task` to 'classification' or 'regression'"
    )


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def _safe(fn: Callable[[], float]) -> float | None:
    """Return ``fn()`` as a float, or None when the metric is undefined (raises / not finite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn())
        except (ValueError, TypeError, ZeroDivisionError, IndexError):
            return None
    return value if math.isfinite(value) else None


def _as_2d_proba(y_proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Return ``y_proba`` as an (n_rows, n_classes) array; a 1-d array is P(classes[1])."""
    proba = np.asarray(y_proba, dtype=float)
    if proba.ndim == 1 and n_classes == 2:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.ndim != 2 or proba.shape[1] != n_classes:
        raise EvaluationError(
            f"y_proba has shape {proba.shape} but there are {n_classes} classes; "
            "pass `classes` in the column order of y_proba (model.classes_)"
        )
    return proba


def _ovr_macro_roc_auc(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in ``y_true``.

    Equal to scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")`` when every
    class is present; classes absent from a slice are left out of the average instead of making
    the metric undefined. Raises ValueError when fewer than two classes are present.
    """
    present = [i for i, c in enumerate(classes) if np.any(y_true == c)]
    if len(present) < 2:
        raise ValueError("fewer than two classes present")
    scores = [skm.roc_auc_score(y_true == classes[i], proba[:, i]) for i in present]
    return float(np.mean(scores))


def _classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_proba: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> dict[str, float | None]:
    if classes is None:
        classes_arr = np.unique(np.concatenate([y_true, y_pred]))
    else:
        classes_arr = np.asarray(classes)
    n_classes = len(classes_arr)
    proba = None if y_proba is None else _as_2d_proba(y_proba, n_classes)
    binary = n_classes == 2
    out: dict[str, float | None] = {}

    if proba is None or n_classes < 2:
        out["roc_auc"] = None
    elif binary:
        positive = classes_arr[1]
        out["roc_auc"] = _safe(lambda: skm.roc_auc_score(y_true == positive, proba[:, 1]))
    else:
        out["roc_auc"] = _safe(lambda: _ovr_macro_roc_auc(y_true, proba, classes_arr))

    if binary:
        out["f1"] = _safe(
            lambda: skm.f1_score(
                y_true,
                y_pred,
                average="binary",
                pos_label=classes_arr[1],
                zero_division=np.nan,
            )
        )
    else:
        out["f1"] = _safe(
            lambda: skm.f1_score(y_true, y_pred, average="macro", zero_division=np.nan)
        )
    out["accuracy"] = _safe(lambda: skm.accuracy_score(y_true, y_pred))
    out["log_loss"] = (
        None
        if proba is None
        else _safe(lambda: skm.log_loss(y_true, proba, labels=list(classes_arr)))
    )
    return out


def _regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    yt = y_true.astype(float)
    yp = y_pred.astype(float)
    return {
        "rmse": _safe(lambda: skm.root_mean_squared_error(yt, yp)),
        "mae": _safe(lambda: skm.mean_absolute_error(yt, yp)),
        # force_finite=False: a constant target gives NaN/-inf (undefined), which is dropped.
        "r2": _safe(lambda: skm.r2_score(yt, yp, force_finite=False)),
    }


def compute_metrics(
    task: ResolvedTask,
    y_true: Any,
    y_pred: Any,
    y_proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Return the metrics of one set of predictions, keyed by metric name.

    Classification gives ``roc_auc``, ``f1``, ``accuracy`` and ``log_loss``. With two classes
    the positive class is ``classes[1]`` (ROC AUC on its probability column, binary F1 with
    ``pos_label=classes[1]``); with more, ROC AUC is one-vs-rest macro (over the classes present
    in ``y_true``) and F1 is macro. ``y_proba`` has one column per entry of ``classes`` (the
    model's ``classes_``); without it ``roc_auc`` and ``log_loss`` are left out. ``classes``
    defaults to the sorted labels of ``y_true`` and ``y_pred``.

    Regression gives ``rmse``, ``mae`` and ``r2``.

    A metric that is undefined on these rows (one class present, no positive label, a single
    row, a constant regression target, non-finite predictions) is left out of the dict: the
    values are always finite floats.

    Raises:
        EvaluationError: unknown task, ``y_true`` and ``y_pred`` (or ``y_proba``) differ in
            length, or ``y_proba`` does not have one column per class.
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.shape[0] != yp.shape[0]:
        raise EvaluationError(f"y_true has {yt.shape[0]} rows but y_pred has {yp.shape[0]}")
    if y_proba is not None and np.shape(y_proba)[0] != yt.shape[0]:
        raise EvaluationError(
            f"y_true has {yt.shape[0]} rows but y_proba has {np.shape(y_proba)[0]}"
        )
    if yt.shape[0] == 0:
        return {}
    order: tuple[str, ...]
    if task == "classification":
        raw = _classification_metrics(yt, yp, y_proba, classes)
        order = CLASSIFICATION_METRICS
    elif task == "regression":
        raw = _regression_metrics(yt, yp)
        order = REGRESSION_METRICS
    else:
        raise EvaluationError(f"unknown task {task!r}; expected 'classification' or 'regression'")
    return {name: value for name in order if (value := raw.get(name)) is not None}


# --------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------


def metric_key(name: str) -> str:
    """Return ``name`` made safe as an MLflow metric key (a part of one, for slice keys).

    Runs of characters other than ASCII letters, digits, ``_``, ``-`` and ``.`` become one
    ``_`` (spaces and ``/`` included, so the key can never be read as a path), and leading or
    trailing ``_`` are stripped. Keys longer than MLflow's 250 characters are cut and end in a
    short hash of the full name.
    """
    key = _UNSAFE_KEY_CHARS.sub("_", name)
    key = _REPEATED_UNDERSCORES.sub("_", key).strip("_") or "_"
    return _limit_length(key, name)


def _limit_length(key: str, original: str) -> str:
    if len(key) <= MLFLOW_MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha1(original.encode()).hexdigest()[:8]
    return f"{key[: MLFLOW_MAX_KEY_LENGTH - 9]}_{digest}"


@dataclass
class EvaluationResult:
    """Metrics of one model on one test set: overall and per slice.

    ``slices`` maps a slice key (``"contract=one-year"``) to that slice's metrics and
    ``slice_sizes`` to its row count; slices below ``min_slice_size`` are absent from both.
    """

    task: str
    overall: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    slice_sizes: dict[str, int] = field(default_factory=dict)
    n_rows: int = 0
    predictions: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The model's predictions on the evaluated rows (not part of ``to_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (plain str / float / int), the inverse of ``from_dict``."""
        return {
            "task": self.task,
            "overall": {k: float(v) for k, v in self.overall.items()},
            "slices": {s: {k: float(v) for k, v in m.items()} for s, m in self.slices.items()},
            "slice_sizes": {s: int(n) for s, n in self.slice_sizes.items()},
            "n_rows": int(self.n_rows),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """Return the result stored by ``to_dict``.

        Raises:
            EvaluationError: ``data`` lacks ``task`` or ``overall``, or holds non-numeric
                metric values.
        """
        missing = [k for k in ("task", "overall") if k not in data]
        if missing:
            raise EvaluationError(
                f"not an evaluation result: missing key(s) {missing}; got keys {sorted(data)}"
            )
        try:
            return cls(
                task=str(data["task"]),
                overall={k: float(v) for k, v in data["overall"].items()},
                slices={
                    s: {k: float(v) for k, v in m.items()}
                    for s, m in (data.get("slices") or {}).items()
                },
                slice_sizes={s: int(n) for s, n in (data.get("slice_sizes") or {}).items()},
                n_rows=int(data.get("n_rows", 0)),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise EvaluationError(f"not an evaluation result: {exc}") from exc

    def flat_metrics(self, prefix: str = "test_") -> dict[str, float]:
        """Return every metric under an MLflow-safe key.

        Overall metrics are ``<prefix><metric>`` (``test_roc_auc``); slice metrics are
        ``<prefix><metric>__slice_<slice key>`` with the key passed through :func:`metric_key`
        (``test_roc_auc__slice_contract_month-to-month``). Should two slice keys sanitize to the
        same text, the later one gets a short hash of its original key appended.
        """
        out = {metric_key(f"{prefix}{name}"): float(v) for name, v in self.overall.items()}
        used: dict[str, str] = {}
        for slice_key in self.slices:
            safe = metric_key(slice_key)
            if used.get(safe, slice_key) != slice_key:
                safe = f"{safe}_{hashlib.sha1(slice_key.encode()).hexdigest()[:8]}"
            used[safe] = slice_key
            for name, v in self.slices[slice_key].items():
                full = f"{metric_key(prefix + name)}{SLICE_SEPARATOR}{safe}"
                out[_limit_length(full, f"{prefix}{name}{SLICE_SEPARATOR}{slice_key}")] = float(v)
        return out


# --------------------------------------------------------------------------------------------
# slices
# --------------------------------------------------------------------------------------------


def _format_edge(value: float, digits: int) -> str:
    text = f"{value:.{digits}g}"
    if re.fullmatch(r"-?\d+", text):
        text += ".0"
    return text


def _format_edges(edges: np.ndarray) -> list[str]:
    """Short labels of the bin edges, with more digits when the short ones would collide."""
    for digits in (6, 10, 17):
        labels = [_format_edge(float(e), digits) for e in edges]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(float(e)) for e in edges]


def _numeric_bins(column: str, values: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    """Quantile bins ``[lo, hi)`` (the last one closed) over the non-missing ``values``."""
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, n_bins + 1)))
    labels = _format_edges(edges)
    out: dict[str, np.ndarray] = {}
    last = len(edges) - 2
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        if i == last:
            mask = (values >= lo) & (values <= hi)
            key = f"{column}=[{labels[i]}, {labels[i + 1]}]"
        else:
            mask = (values >= lo) & (values < hi)
            key = f"{column}=[{labels[i]}, {labels[i + 1]})"
        if mask.any():
            out[key] = mask
    return out


def _value_slices(column: str, series: pd.Series) -> dict[str, np.ndarray]:
    """One slice per distinct non-missing value; values that print alike share a slice."""
    uniques = list(pd.unique(series.dropna()))
    with contextlib.suppress(TypeError):  # mixed types: keep the order of appearance
        uniques = sorted(uniques)
    out: dict[str, np.ndarray] = {}
    for value in uniques:
        mask = (series == value).fillna(False).to_numpy(dtype=bool)
        key = f"{column}={value}"
        out[key] = out[key] | mask if key in out else mask
    return out


def slice_keys(
    frame: pd.DataFrame, slice_columns: Sequence[str], n_bins: int = 4
) -> dict[str, np.ndarray]:
    """Return ``{slice key: boolean row mask}`` for the columns ``slice_columns`` of ``frame``.

    Masks are numpy arrays aligned with ``frame`` by position. A column gives one slice per
    distinct value (``"contract=one-year"``), except a numeric (non-boolean) column with more
    than ``MAX_CATEGORICAL_NUMERIC_DISTINCT`` (10) distinct values, which is cut into at most
    ``n_bins`` quantile bins computed from ``frame`` (``"age=[18.0, 35.0)"``, the last bin
    closed: ``"age=[50.0, 80.0]"``). Missing values form the slice ``"<column>=<missing>"``.

    Raises:
        EvaluationError: a slice column is not in ``frame`` (names it and the columns there
            are), or ``n_bins`` is below 1.
    """
    if n_bins < 1:
        raise EvaluationError(f"n_bins must be at least 1, got {n_bins}")
    absent = [c for c in slice_columns if c not in frame.columns]
    if absent:
        raise EvaluationError(
            f"slice column(s) {absent} not found in the evaluation data; "
            f"available columns: {list(frame.columns)}"
        )
    out: dict[str, np.ndarray] = {}
    for column in dict.fromkeys(slice_columns):
        series = frame[column]
        if isinstance(series, pd.DataFrame):
            raise EvaluationError(f"slice column {column!r} appears more than once in the data")
        is_numeric = pd.api.types.is_numeric_dtype(series.dtype) and not (
            pd.api.types.is_bool_dtype(series.dtype)
        )
        if is_numeric and series.nunique(dropna=True) > MAX_CATEGORICAL_NUMERIC_DISTINCT:
            values = series.to_numpy(dtype=float, na_value=np.nan)
            out.update(_numeric_bins(column, values, n_bins))
        else:
            out.update(_value_slices(column, series))
        missing = series.isna().to_numpy(dtype=bool)
        if missing.any():
            out[f"{column}={MISSING_SLICE}"] = missing
    return out


# --------------------------------------------------------------------------------------------
# model evaluation
# --------------------------------------------------------------------------------------------


def _predict(model: Any, X: pd.DataFrame, task: ResolvedTask) -> tuple[Any, Any, Any]:
    """Return (predictions, probabilities or None, classes or None) of ``model`` on ``X``."""
    name = type(model).__name__
    try:
        y_pred = np.asarray(model.predict(X))
    except Exception as exc:
        raise EvaluationError(f"{name}.predict failed on {len(X)} rows: {exc}") from exc
    if task != "classification":
        return y_pred, None, None
    classes = getattr(model, "classes_", None)
    if classes is None or not hasattr(model, "predict_proba"):
        return y_pred, None, classes
    try:
        y_proba = np.asarray(model.predict_proba(X))
    except Exception as exc:
        raise EvaluationError(f"{name}.predict_proba failed on {len(X)} rows: {exc}") from exc
    return y_pred, y_proba, classes


def evaluate_model(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    task: str,
    *,
    slice_frame: pd.DataFrame | None = None,
    slice_columns: Sequence[str] = (),
    min_slice_size: int = 10,
) -> EvaluationResult:
    """Return the overall and per-slice metrics of a fitted scikit-learn ``model`` on (X, y).

    ``task`` is ``"classification"``, ``"regression"`` or ``"auto"`` (see :func:`infer_task`).
    Classification uses ``predict_proba`` with ``model.classes_`` when the model has them (else
    ``roc_auc`` and ``log_loss`` are absent). Slices come from :func:`slice_keys` over
    ``slice_frame`` (default ``X``; pass the full test table to slice on non-feature columns),
    whose rows must line up with ``X`` by position. Slices with fewer than ``min_slice_size``
    rows are skipped.

    Raises:
        EvaluationError: X is empty, X / y / slice_frame differ in length, a slice column is
            missing, the task is unknown, or the model fails to predict.
    """
    if task == "auto":
        resolved: ResolvedTask = infer_task(y)
    elif task in ("classification", "regression"):
        resolved = task  # type: ignore[assignment]
    else:
        raise EvaluationError(
            f"unknown task {task!r}; expected 'classification', 'regression' or 'auto'"
        )
    if len(X) == 0:
        raise EvaluationError("cannot evaluate on an empty test set (0 rows)")
    if len(X) != len(y):
        raise EvaluationError(f"X has {len(X)} rows but y has {len(y)}")
    frame = X if slice_frame is None else slice_frame
    if len(frame) != len(X):
        raise EvaluationError(f"slice_frame has {len(frame)} rows but X has {len(X)}")
    masks = slice_keys(frame, list(slice_columns)) if slice_columns else {}

    y_true = y.to_numpy()
    y_pred, y_proba, classes = _predict(model, X, resolved)
    overall = compute_metrics(resolved, y_true, y_pred, y_proba, classes)
    slices: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for key, mask in masks.items():
        size = int(mask.sum())
        if size < min_slice_size:
            continue
        slices[key] = compute_metrics(
            resolved,
            y_true[mask],
            y_pred[mask],
            None if y_proba is None else y_proba[mask],
            classes,
        )
        sizes[key] = size
    return EvaluationResult(
        task=resolved,
        overall=overall,
        slices=slices,
        slice_sizes=sizes,
        n_rows=len(X),
        predictions=y_pred,
    )
