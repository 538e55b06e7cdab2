"""Model quality in production: what the test set promised, what the window is expected to give
before labels arrive, and what it gave once they did.

* :func:`reference_quality` — at training, from the test set: its metrics and a calibration map
  per class (isotonic regression of the true class on the model's probability of it, shrunk to
  Platt scaling), a small JSON-able dict kept with the model version;
* :func:`estimate_quality` — NannyML's confidence-based performance estimation (CBPE): on a
  window without labels, calibrated probabilities say what to expect (expected accuracy, F1 and
  ROC AUC), shown beside the test-set values;
* :func:`realised_quality` — the metric on the window's labelled rows, with a bootstrap
  interval (labels joined by ``request_id`` + ``row_index``, or by entity id and time);
* :func:`quality_verdict` — degraded or not: the realised metric when there are enough labels,
  else the estimate, against the test-set value.

The reference dict (``REFERENCE_FORMAT``)::

    {"format": "prefect-mlops/reference-quality/1", "task": "classification",
     "classes": [0, 1], "class_keys": ["0", "1"], "n_rows": 1000,
     "metrics": {"roc_auc": 0.83, "f1": 0.6, "accuracy": 0.8, "log_loss": 0.42},
     "calibration": {"method": "...",
                     "maps": {"1": {"x": [0.01, ...], "y": [0.0, ...], "applied": true}}}}

``maps`` holds one piecewise-linear map per class key (binary: the positive class
``classes[1]`` only), applied with ``numpy.interp``; ``applied`` is False for the identity map
kept when calibrating would not make the test set's probabilities more honest (out-of-fold
Brier score). A map has at most ``MAX_MAP_POINTS`` points (measured: 2 for the demo's logistic
regression, about 30 for a gradient-boosting model; 0.4-1 KB per binary reference). A regressor's
dict has no ``calibration``.
Pure pandas / numpy / scikit-learn (no Prefect, no MLflow).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from prefect_mlops.deployment.labels import join_labels, prepare_labels
from prefect_mlops.deployment.live_quality import (
    bootstrap_metric,
    check_metric,
    labelled_pairs,
    live_metric,
    worse_by,
)
from prefect_mlops.errors import DataIngestError, MonitoringError, first_line
from prefect_mlops.modeling.evaluation import ResolvedTask, compute_metrics
from prefect_mlops.serving.log import FEATURE_PREFIX, PREDICTION, PROBA_PREFIX

REFERENCE_FORMAT = "prefect-mlops/reference-quality/1"
MAX_MAP_POINTS = 200
"""Most points kept of one calibration map (isotonic maps of a test set are usually shorter)."""
SHRINK_ROWS = 20
"""Pseudo-rows of Platt scaling added to each isotonic block (see ``_shrunk_isotonic``).
Measured: plain isotonic regression fitted on 1,000 test rows of the demo churn model maps its
top scores to 1.0 and overstates accuracy by 0.06 under covariate shift 2; shrinking towards the
raw score instead biases a badly miscalibrated model's estimate by 0.02-0.05."""
CALIBRATION_FOLDS = 5
CALIBRATION_METHOD = "isotonic shrunk to Platt scaling; identity unless it lowers out-of-fold Brier"
CBPE_METHOD = "CBPE: probabilities calibrated on the test set (isotonic, shrunk to Platt)"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (JSON-able), anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


# --------------------------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------------------------


def _probability_matrix(probabilities: pd.DataFrame, keys: list[str], where: str) -> np.ndarray:
    """The columns of ``keys`` (``proba.<key>`` or ``<key>``) as an (n, classes) float array.

    Raises MonitoringError naming the class columns that are missing.
    """
    columns = []
    for key in keys:
        for name in (f"{PROBA_PREFIX}{key}", key):
            if name in probabilities.columns:
                columns.append(name)
                break
    if len(columns) != len(keys):
        found = [c for c in probabilities.columns if str(c).startswith(PROBA_PREFIX)]
        raise MonitoringError(
            f"{where}: needs one probability column per class, "
            f"{[PROBA_PREFIX + k for k in keys]}; found {found or list(probabilities.columns)}"
        )
    try:
        return probabilities[columns].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise MonitoringError(f"{where}: probability columns {columns} are not numbers") from exc


def _platt(scores: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Platt scaling (a logistic regression on the score's logit), fitted and applied to
    ``scores``: the smooth prior of :func:`_shrunk_isotonic`."""
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(scores, 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    if hits.min() == hits.max():
        return np.full(len(scores), float(hits[0]))
    fitted = LogisticRegression(C=1e4).fit(logit, hits)
    return np.asarray(fitted.predict_proba(logit)[:, 1])


def _shrunk_isotonic(scores: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of ``hits`` (0/1) on ``scores`` as interpolation points, each block
    shrunk towards Platt scaling's mean in it by ``SHRINK_ROWS`` pseudo-rows: a block of few
    test rows (the tails) follows the smooth logistic fit instead of jumping to 0 or 1."""
    order = np.argsort(scores, kind="stable")
    x, h = scores[order], hits[order]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0).fit(x, h).predict(x)
    block = np.concatenate([[0], np.cumsum(np.diff(fitted) != 0)])
    size = np.bincount(block).astype(float)
    prior = np.bincount(block, _platt(x, h))
    value = (np.bincount(block, h) + SHRINK_ROWS * prior / size) / (size + SHRINK_ROWS)
    value = np.maximum.accumulate(value)
    first = np.searchsorted(block, np.arange(len(size)))
    last = np.searchsorted(block, np.arange(len(size)), side="right") - 1
    xs = np.column_stack([x[first], x[last]]).ravel()
    ys = np.repeat(value, 2)
    keep = np.concatenate([[True], np.diff(xs) > 0])  # one point for a block of one score
    return xs[keep], ys[keep]


def _apply(points: dict[str, list[float]] | tuple[np.ndarray, np.ndarray], raw: Any) -> Any:
    x, y = (points["x"], points["y"]) if isinstance(points, dict) else points
    return np.interp(raw, x, y)


def _fit_map(scores: np.ndarray, hits: np.ndarray, seed: int) -> dict[str, Any]:
    """The calibration map of one class: shrunk isotonic regression when it lowers the Brier
    score out of fold (``CALIBRATION_FOLDS``-fold), else the identity (the model's
    probabilities are already honest; refitting would only add the test set's noise)."""
    from sklearn.model_selection import KFold

    identity = {"x": [0.0, 1.0], "y": [0.0, 1.0], "applied": False}
    if len(scores) < 2 * CALIBRATION_FOLDS or hits.min() == hits.max():
        fitted = _shrunk_isotonic(scores, hits)
        return {"x": _rounded(fitted[0]), "y": _rounded(fitted[1]), "applied": True}
    out_of_fold = np.empty(len(scores))
    folds = KFold(CALIBRATION_FOLDS, shuffle=True, random_state=seed).split(scores)
    for fit_rows, held_out in folds:
        points = _shrunk_isotonic(scores[fit_rows], hits[fit_rows])
        out_of_fold[held_out] = _apply(points, scores[held_out])
    brier_raw = float(np.mean((scores - hits) ** 2))
    brier_calibrated = float(np.mean((out_of_fold - hits) ** 2))
    if brier_calibrated >= brier_raw:
        return identity
    x, y = _shrunk_isotonic(scores, hits)
    if len(x) > MAX_MAP_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_MAP_POINTS).round().astype(int))
        x, y = x[keep], y[keep]
    return {"x": _rounded(x), "y": _rounded(y), "applied": True}


def reference_quality(
    task: str,
    y_true: Any,
    y_pred: Any,
    probabilities: pd.DataFrame | None,
    classes: list[Any],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The test set's metrics and, for a classifier with ``probabilities``, the calibration maps
    that :func:`estimate_quality` needs; a JSON-able dict (module docstring) of a few KB.

    ``probabilities`` has one column per entry of ``classes`` (named ``proba.<class>``, the
    class itself as text, or positionally when it has exactly ``len(classes)`` columns).

    Raises:
        MonitoringError: unknown task, no test rows, lengths that differ, probability columns
            missing or not finite.
    """
    if task not in ("classification", "regression"):
        raise MonitoringError(
            f"reference quality: task must be 'classification' or 'regression', got {task!r}"
        )
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if len(yt) == 0:
        raise MonitoringError("reference quality: the test set has no rows")
    if len(yt) != len(yp):
        raise MonitoringError(
            f"reference quality: y_true has {len(yt)} rows but y_pred has {len(yp)}"
        )
    resolved: ResolvedTask = "classification" if task == "classification" else "regression"
    out: dict[str, Any] = {"format": REFERENCE_FORMAT, "task": resolved, "n_rows": len(yt)}
    if resolved == "regression":
        out["metrics"] = compute_metrics(resolved, yt, yp)
        return out
    keys = [str(c) for c in classes]
    out["classes"] = [_plain(c) for c in classes]
    out["class_keys"] = keys
    proba = None
    if probabilities is not None:
        frame = probabilities
        unnamed = not any(str(c) in keys or str(c).startswith(PROBA_PREFIX) for c in frame)
        if unnamed and frame.shape[1] == len(keys):  # columns in class order, any names
            frame = frame.set_axis(keys, axis=1)
        proba = _probability_matrix(frame, keys, "reference quality: probabilities")
        if len(proba) != len(yt):
            raise MonitoringError(
                f"reference quality: y_true has {len(yt)} rows but probabilities has {len(proba)}"
            )
        if not np.isfinite(proba).all():
            raise MonitoringError(
                "reference quality: probabilities hold missing or infinite values"
            )
    out["metrics"] = compute_metrics(resolved, yt, yp, proba, classes)
    if proba is not None and len(keys) >= 2:
        truth = np.asarray([_class_text(v) for v in yt])  # 1.0 read from a file is class 1
        maps = {}
        for index in range(1, 2) if len(keys) == 2 else range(len(keys)):
            hits = (truth == _class_text(classes[index])).astype(float)
            maps[keys[index]] = _fit_map(proba[:, index], hits, seed)
        out["calibration"] = {"method": CALIBRATION_METHOD, "maps": maps}
    return out


# --------------------------------------------------------------------------------------------
# estimate (CBPE)
# --------------------------------------------------------------------------------------------


@dataclass
class EstimatedQuality:
    """Expected metrics of a window without labels (``estimated`` is always True).

    ``metrics`` are the estimates (``accuracy``, ``f1``, ``roc_auc``), ``reference`` the
    test-set values beside them; ``available`` is False (and ``reason`` says why) for a
    regressor, a reference without calibration or a window without scored rows.
    """

    task: str
    n_rows: int
    metrics: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    available: bool = True
    reason: str | None = None
    version: str | None = None
    method: str = CBPE_METHOD
    estimated: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def _check_reference(reference: dict[str, Any]) -> None:
    missing = [k for k in ("format", "task", "metrics") if k not in reference]
    if missing or reference.get("format") != REFERENCE_FORMAT:
        raise MonitoringError(
            f"reference quality: not a {REFERENCE_FORMAT!r} dict (missing {missing}, format "
            f"{reference.get('format')!r}); build it with reference_quality at training"
        )


def _calibrated(raw: np.ndarray, reference: dict[str, Any]) -> np.ndarray:
    """Calibrated class probabilities of ``raw`` (rows sum to 1)."""
    keys: list[str] = reference["class_keys"]
    maps: dict[str, dict[str, list[float]]] = reference["calibration"]["maps"]

    def apply(key: str) -> np.ndarray:
        return np.asarray(_apply(maps[key], raw[:, keys.index(key)]))

    if len(keys) == 2:
        positive = apply(keys[1])
        return np.column_stack([1.0 - positive, positive])
    cal = np.column_stack([apply(k) for k in keys])
    sums = cal.sum(axis=1, keepdims=True)
    return np.where(sums > 0, cal / np.where(sums > 0, sums, 1.0), raw)


def _expected_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """CBPE's expected ROC AUC: each row a fractional positive (``positive``) and negative."""
    if positive.sum() <= 0 or (1.0 - positive).sum() <= 0:
        return None
    truth = np.concatenate([np.ones(len(score)), np.zeros(len(score))])
    weights = np.concatenate([positive, 1.0 - positive])
    return float(roc_auc_score(truth, np.concatenate([score, score]), sample_weight=weights))


def _expected_f1(cal: np.ndarray, predicted: np.ndarray, index: int) -> float | None:
    chosen = predicted == index
    tp = cal[chosen, index].sum()
    fp = (1.0 - cal[chosen, index]).sum()
    fn = cal[~chosen, index].sum()
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator > 0 else None


def _cbpe(raw: np.ndarray, cal: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    n_classes = raw.shape[1]
    out: dict[str, float | None] = {}
    if n_classes == 2:
        out["roc_auc"] = _expected_auc(raw[:, 1], cal[:, 1])
        out["f1"] = _expected_f1(cal, predicted, 1)
    else:
        aucs = [_expected_auc(raw[:, c], cal[:, c]) for c in range(n_classes)]
        present = [a for a in aucs if a is not None]
        out["roc_auc"] = float(np.mean(present)) if len(present) >= 2 else None
        f1s = [
            _expected_f1(cal, predicted, c)
            for c in range(n_classes)
            if (predicted == c).any() or cal[:, c].sum() > 0
        ]
        scores = [f for f in f1s if f is not None]
        out["f1"] = float(np.mean(scores)) if scores else None
    out["accuracy"] = float(cal[np.arange(len(cal)), predicted].mean())
    return {k: v for k, v in out.items() if v is not None and math.isfinite(v)}


def _predicted_index(frame: pd.DataFrame, raw: np.ndarray, keys: list[str]) -> np.ndarray:
    """The served class of each row as its index in ``keys``: the ``prediction`` column when
    every value is a known class, else the most probable class."""
    if PREDICTION in frame.columns:
        as_text = frame[PREDICTION].map(_class_text)
        lookup = {k: i for i, k in enumerate(keys)}
        if as_text.isin(list(lookup)).all():
            return as_text.map(lookup).to_numpy(dtype=int)
    return np.asarray(raw.argmax(axis=1), dtype=int)


def _class_text(value: Any) -> str:
    """A served prediction as its class key (``1.0`` read from a file is class ``1``)."""
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.startswith('"'):  # a JSON-encoded string
        return str(json.loads(value))
    return str(value)


def _of_version(window: pd.DataFrame, version: str | None) -> pd.DataFrame:
    if version is None or "model_version" not in window.columns:
        return window
    return window[window["model_version"].astype(str) == str(version)]


def estimate_quality(
    reference: dict[str, Any], probabilities: pd.DataFrame, *, version: str | None = None
) -> EstimatedQuality:
    """CBPE on a window: the expected accuracy (mean calibrated probability of the served
    class), F1 (expected confusion counts) and ROC AUC (the model's scores ranked, each row a
    calibrated fraction of a positive and of a negative; one-vs-rest macro for multiclass).

    ``probabilities`` is a serving-log window (or any frame) with ``proba.<class>`` columns;
    rows without probabilities (refused requests) are left out, and with ``version`` only that
    model version's rows count. The served class is the ``prediction`` column when present,
    else the most probable class.

    Returns an estimate with ``available=False`` and a reason for a regressor, a reference
    without calibration maps or a window without scored rows.

    Raises:
        MonitoringError: ``reference`` is not a :func:`reference_quality` dict, or a class's
            probability column is missing.
    """
    _check_reference(reference)
    task = str(reference["task"])
    ref_metrics = {k: float(v) for k, v in reference["metrics"].items()}
    result = EstimatedQuality(task, 0, reference=ref_metrics, version=version)
    if task == "regression":
        result.available = False
        result.reason = (
            "not available for regression: CBPE reads the expected error off calibrated class "
            "probabilities, and a regressor's prediction carries no such confidence; use "
            "realised quality on labels"
        )
        return result
    if "calibration" not in reference:
        result.available = False
        result.reason = (
            "no calibration maps in the reference (the model gave no class probabilities on "
            "its test set), so nothing to estimate from"
        )
        return result
    keys: list[str] = reference["class_keys"]
    rows = _of_version(probabilities, version)
    raw = _probability_matrix(rows, keys, "estimate quality: window")
    scored = np.isfinite(raw).all(axis=1)
    rows, raw = rows[scored], raw[scored]
    result.n_rows = len(rows)
    if len(rows) == 0:
        result.available = False
        result.reason = "no scored rows with class probabilities in the window" + (
            f" for version {version}" if version is not None else ""
        )
        return result
    predicted = _predicted_index(rows, raw, keys)
    result.metrics = _cbpe(raw, _calibrated(raw, reference), predicted)
    return result


# --------------------------------------------------------------------------------------------
# realised
# --------------------------------------------------------------------------------------------


@dataclass
class RealisedQuality:
    """The metric on a version's labelled rows of a window.

    ``status`` is ``measured`` (``value`` and, with two rows or more, the bootstrap interval
    ``low``..``high`` at ``confidence``) or ``unknown`` (``message`` says why: no labels, none
    matching a served row, the metric undefined on them). ``reference`` is the test-set value.
    """

    metric: str
    version: str | None
    status: Literal["measured", "unknown"]
    message: str
    n_labelled: int = 0
    n_labels: int = 0
    n_served: int = 0
    value: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95
    reference: float | None = None
    key: str = "request_id + row_index"
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def labels_by_entity(
    window: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    entity: str,
    label_column: str,
    where: str,
    label_time: str = "timestamp",
    tolerance: str | pd.Timedelta = "7D",
) -> pd.DataFrame:
    """Labels keyed by entity and time turned into the ``request_id`` + ``row_index`` labels of
    :func:`prepare_labels`: each label goes to the latest served row of its entity (window
    column ``feature.<entity>``) at or before the label's ``label_time``, at most ``tolerance``
    earlier; labels without such a row are dropped. Times without a zone are read as UTC.

    Raises:
        DataIngestError: the labels lack ``entity``, ``label_time`` or ``label_column``, or a
            time cannot be read.
        MonitoringError: the window has no ``feature.<entity>`` column.
    """
    missing = [c for c in (entity, label_time, label_column) if c not in labels.columns]
    if missing:
        raise DataIngestError(
            f"labels {where}: missing column(s) {missing}; labels keyed by entity need the "
            f"entity column {entity!r}, the time {label_time!r} and the label {label_column!r}; "
            f"its columns are {list(labels.columns)}"
        )
    column = f"{FEATURE_PREFIX}{entity}"
    if column not in window.columns:
        raise MonitoringError(
            f"labels {where}: the serving-log window has no column {column!r} to match the "
            f"labels' {entity!r} on; log the entity as a feature or key labels by request_id"
        )
    out_columns = ["request_id", "row_index", label_column]
    served = window[window["status"].astype(str) == "ok"]
    served = served.drop_duplicates(["request_id", "row_index"])  # shadow rows share the key
    left = labels[[entity, label_time, label_column]].dropna()
    if served.empty or left.empty:
        return pd.DataFrame(columns=out_columns)
    times = left[label_time]
    text = pd.api.types.is_object_dtype(times) or pd.api.types.is_string_dtype(times)
    try:
        left = left.assign(
            _entity=left[entity].map(_class_text),
            _time=pd.to_datetime(times, utc=True, format="ISO8601" if text else None),
        )
    except (TypeError, ValueError) as exc:
        raise DataIngestError(
            f"labels {where}: column {label_time!r} must hold times (ISO 8601 text or "
            f"timestamps); {first_line(exc)}"
        ) from exc
    right = served.assign(
        _entity=served[column].map(_class_text),
        _time=pd.to_datetime(served["timestamp"], utc=True),
    )[["_entity", "_time", "request_id", "row_index"]]
    matched = pd.merge_asof(
        left.sort_values("_time"),
        right.dropna(subset=["_entity"]).sort_values("_time"),
        on="_time",
        by="_entity",
        direction="backward",
        tolerance=pd.Timedelta(tolerance),
    )
    return matched.dropna(subset=["request_id"])[out_columns].reset_index(drop=True)


def _served_rows(window: pd.DataFrame, version: str | None) -> int:
    if window.empty:
        return 0
    rows = _of_version(window, version)
    return int((rows["status"].astype(str) == "ok").sum())


def realised_quality(
    window: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    task: str,
    metric: str,
    where: str,
    version: str | None,
    label_column: str = "label",
    reference: dict[str, Any] | None = None,
    confidence: float = 0.95,
    resamples: int = 400,
    seed: int = 0,
    entity: str | None = None,
    label_time: str = "timestamp",
    tolerance: str | pd.Timedelta = "7D",
) -> RealisedQuality:
    """``metric`` of ``version`` (None: every version) on the window's labelled answered rows,
    with a two-sided bootstrap interval at ``confidence``, beside the test-set value from
    ``reference``. Labels are joined by ``request_id`` + ``row_index`` (``labels.join_labels``)
    or, with ``entity``, by entity and time (:func:`labels_by_entity`). ``where`` names the
    labels source in messages.

    Returns ``status="unknown"`` with a message naming ``where`` and the counts tried when no
    label is usable, none matches a served row of the version or the metric is undefined.

    Raises:
        ConfigError: ``metric`` cannot be computed from served predictions for ``task``.
        DataIngestError: the labels lack a key or label column, or a multi-row request is
            labelled without ``row_index``.
    """
    check_metric(task, metric)
    key = "request_id + row_index"
    given = len(labels)
    if entity is not None:
        key = f"{entity} + time (within {tolerance})"
        labels = labels_by_entity(
            window,
            labels,
            entity=entity,
            label_column=label_column,
            where=where,
            label_time=label_time,
            tolerance=tolerance,
        )
    prepared = prepare_labels(labels, label_column, where)
    baseline = None
    if reference is not None and metric in reference.get("metrics", {}):
        baseline = float(reference["metrics"][metric])
    served = _served_rows(window, version)
    of_version = f" of version {version}" if version is not None else ""
    result = RealisedQuality(
        metric,
        version,
        "unknown",
        "",
        n_labels=len(prepared),
        n_served=served,
        confidence=confidence,
        reference=baseline,
        key=key,
    )
    if prepared.empty:
        matched = " matching a served row" if entity is not None else " usable"
        result.message = (
            f"quality unknown: labels {where}: none of its {given} rows is{matched} (a label "
            f"or key is missing)"
        )
        return result
    joined = join_labels(window, prepared, where)
    n, value = live_metric(joined, task, metric, variant=None, version=version)
    result.n_labelled = n
    if n == 0:
        result.message = (
            f"quality unknown: none of the {len(prepared)} labels of {where} matches one of "
            f"the {served} answered rows{of_version} in the window (joined on {key})"
        )
        return result
    if value is None:
        result.message = (
            f"quality unknown: {metric} is undefined on the {n} labelled rows{of_version} "
            f"(labels {where}; e.g. one class only)"
        )
        return result
    result.status, result.value = "measured", value
    result.message = f"{metric} {value:.4g} on {n} labelled rows{of_version} (labels {where})"
    if n >= 2:
        y_true, y_pred = labelled_pairs(joined, task, version=version)
        samples = bootstrap_metric(task, metric, y_true, y_pred, resamples=resamples, seed=seed)
        samples = samples[~np.isnan(samples)]
        if samples.size:
            tail = (1.0 - confidence) / 2
            result.low = float(np.quantile(samples, tail))
            result.high = float(np.quantile(samples, 1.0 - tail))
    return result


# --------------------------------------------------------------------------------------------
# verdict
# --------------------------------------------------------------------------------------------


@dataclass
class QualityVerdict:
    """Whether quality degraded: ``source`` says which reading decided (``realised`` when it
    had at least ``min_labelled_rows`` labelled rows, else ``estimated``; None: neither could
    be read, and ``degraded`` is None)."""

    degraded: bool | None
    source: Literal["realised", "estimated"] | None
    metric: str
    value: float | None
    reference: float | None
    drop: float | None
    max_drop: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def quality_verdict(
    *,
    estimated: EstimatedQuality | None = None,
    realised: RealisedQuality | None = None,
    metric: str | None = None,
    max_drop: float = 0.05,
    min_labelled_rows: int = 30,
) -> QualityVerdict:
    """Degraded when the deciding metric is worse than its test-set value by more than
    ``max_drop`` (absolute, in the metric's units, by its direction: rmse up, accuracy down).

    The realised reading decides when it is measured on at least ``min_labelled_rows`` rows
    and has a reference value; else the estimate of ``metric`` (default: the realised metric,
    else ``accuracy``).

    Raises:
        MonitoringError: ``max_drop`` is negative or ``min_labelled_rows`` below 1.
    """
    if max_drop < 0 or min_labelled_rows < 1:
        raise MonitoringError(
            f"quality verdict: max_drop must be >= 0 and min_labelled_rows >= 1; got "
            f"max_drop={max_drop}, min_labelled_rows={min_labelled_rows}"
        )
    name = metric or (realised.metric if realised is not None else "accuracy")
    if (
        realised is not None
        and realised.metric == name
        and realised.value is not None
        and realised.reference is not None
        and realised.n_labelled >= min_labelled_rows
    ):
        source: Literal["realised", "estimated"] | None = "realised"
        value, baseline = realised.value, realised.reference
    elif estimated is not None and name in estimated.metrics and name in estimated.reference:
        source, value, baseline = "estimated", estimated.metrics[name], estimated.reference[name]
    else:
        why = []
        if realised is not None:
            why.append(f"realised: {realised.message or realised.status}")
        if estimated is not None:
            why.append(f"estimated: {estimated.reason or f'no {name} estimate'}")
        return QualityVerdict(
            None, None, name, None, None, None, max_drop,
            f"quality of {name} unknown" + (f" ({'; '.join(why)})" if why else ""),
        )  # fmt: skip
    drop = float(worse_by(name, value, baseline))
    degraded = drop > max_drop
    state = "degraded" if degraded else "within bounds"
    message = (
        f"{source} {name} {value:.4g} vs test {baseline:.4g}: {state} "
        f"(worse by {drop:.4g}, allowed {max_drop:.4g})"
    )
    return QualityVerdict(degraded, source, name, value, baseline, drop, max_drop, message)
