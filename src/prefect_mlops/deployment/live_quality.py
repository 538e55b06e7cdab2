"""Live quality: the challenger's metric on labelled serving-log rows, and how sure we are that
it is worse than its baseline (bootstrap over the rows). Pure functions over the frame that
``labels.join_labels`` builds (no Prefect, no MLflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.config import HIGHER_IS_BETTER
from prefect_mlops.errors import ConfigError
from prefect_mlops.modeling.evaluation import ResolvedTask, compute_metrics

LIVE_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1"),
    "regression": ("rmse", "mae", "r2"),
}
"""Metrics computable from logged predictions alone (no class probabilities)."""


def default_metric(task: str) -> str:
    """``accuracy`` for classifiers, ``rmse`` for regressors."""
    return "accuracy" if task == "classification" else "rmse"


def check_metric(task: str, metric: str) -> None:
    """Raise ConfigError unless ``metric`` can be computed live for ``task``."""
    allowed = LIVE_METRICS.get(task, ())
    if metric not in allowed:
        raise ConfigError(
            f"quality_metric {metric!r} cannot be computed on served {task} predictions; "
            f"choose one of {list(allowed)}"
        )


def _comparable(task: str, truth: pd.Series, predicted: pd.Series) -> tuple[Any, Any]:
    """Labels read from a file and predictions decoded from JSON, as arrays of one type."""
    if task == "regression":
        return truth.astype(float).to_numpy(), predicted.astype(float).to_numpy()
    t_num = pd.to_numeric(truth, errors="coerce")
    p_num = pd.to_numeric(predicted, errors="coerce")
    if t_num.notna().all() and p_num.notna().all():
        return t_num.astype(float).to_numpy(), p_num.astype(float).to_numpy()
    return truth.astype(str).to_numpy(), predicted.astype(str).to_numpy()


def labelled_pairs(
    joined: pd.DataFrame, task: str, *, variant: str | None = None, version: str | None = None
) -> tuple[Any, Any]:
    """(labels, predictions) of the rows of ``joined`` served as ``variant`` by ``version``
    (None: any), as arrays of one type (floats when both read as numbers, else strings)."""
    rows = joined if variant is None else joined[joined["variant"] == variant]
    if version is not None:
        rows = rows[rows["model_version"].astype(str) == str(version)]
    return _comparable(task, rows["label"], rows["prediction"])


def _pairs(joined: pd.DataFrame, task: str, variant: str, version: str | None) -> tuple[Any, Any]:
    return labelled_pairs(joined, task, variant=variant, version=version)


def _metric(task: str, metric: str, y_true: Any, y_pred: Any) -> float | None:
    if len(y_true) == 0:
        return None
    resolved: ResolvedTask = "classification" if task == "classification" else "regression"
    return compute_metrics(resolved, y_true, y_pred).get(metric)


def live_metric(
    joined: pd.DataFrame,
    task: str,
    metric: str,
    *,
    variant: str | None,
    version: str | None = None,
) -> tuple[int, float | None]:
    """(labelled rows, ``metric``) of ``variant`` (None: every variant) and ``version`` in
    ``joined``; the metric is None when there are no rows or it is undefined on them (one
    class present)."""
    y_true, y_pred = labelled_pairs(joined, task, variant=variant, version=version)
    return len(y_true), _metric(task, metric, y_true, y_pred)


_VECTORISED = {
    "accuracy": lambda t, p: (t == p).mean(axis=1),
    "mae": lambda t, p: np.abs(t - p).mean(axis=1),
    "rmse": lambda t, p: np.sqrt(((t - p) ** 2).mean(axis=1)),
}


def bootstrap_metric(
    task: str, metric: str, y_true: Any, y_pred: Any, *, resamples: int, seed: int = 0
) -> np.ndarray:
    """``metric`` on ``resamples`` bootstrap resamples of the rows (NaN where undefined)."""
    rng = np.random.default_rng(seed)
    n = len(y_true)
    out = np.full(resamples, np.nan)
    fast = _VECTORISED.get(metric)
    step = max(1, min(resamples, 2_000_000 // max(n, 1)))  # bounded memory for large windows
    for start in range(0, resamples, step):
        idx = rng.integers(0, n, size=(min(step, resamples - start), n))
        if fast is not None:
            out[start : start + len(idx)] = fast(y_true[idx], y_pred[idx])
            continue
        for k, rows in enumerate(idx):
            value = _metric(task, metric, y_true[rows], y_pred[rows])
            out[start + k] = np.nan if value is None else value
    return out


def worse_by(metric: str, value: Any, baseline: Any) -> Any:
    """How much worse ``value`` is than ``baseline`` (positive = worse), by metric direction;
    works on numbers and on arrays."""
    return baseline - value if HIGHER_IS_BETTER[metric] else value - baseline


@dataclass
class QualityReading:
    """Live quality of a canary so far.

    ``drop_bound`` is the one-sided lower confidence bound (at ``confidence``) of how much worse
    the challenger is than the baseline: above the allowed drop, the challenger is worse with
    that confidence, not by the luck of which rows it was routed.
    """

    metric: str
    challenger_rows: int
    challenger: float | None
    baseline: float | None
    baseline_source: str
    drop_bound: float | None = None
    confidence: float = 0.95

    def shortfall(self) -> float | None:
        """How much worse the challenger is than the baseline (None: nothing to compare)."""
        if self.challenger is None or self.baseline is None:
            return None
        return float(worse_by(self.metric, self.challenger, self.baseline))

    def describe(self) -> str:
        """One line for reasons and logs."""
        if self.challenger is None:
            return f"{self.challenger_rows} labelled challenger rows"
        text = f"live {self.metric} {self.challenger:.4g} over {self.challenger_rows} rows"
        if self.baseline is not None:
            text += f" vs {self.baseline:.4g} ({self.baseline_source})"
        return text


def read_quality(
    joined: pd.DataFrame,
    *,
    version: str,
    task: str,
    metric: str,
    min_rows: int,
    offline_baseline: float | None,
    confidence: float = 0.95,
    resamples: int = 400,
) -> QualityReading:
    """The challenger's live metric and what it is compared with: the champion's live metric
    over the same window when it has ``min_rows`` labelled rows, else the challenger's own
    offline test metric (training/serving skew), else nothing; with the bootstrap lower
    bound of the drop (both live samples resampled; an offline baseline is a fixed number)."""
    ch_true, ch_pred = _pairs(joined, task, "challenger", version)
    value = _metric(task, metric, ch_true, ch_pred)
    cp_true, cp_pred = _pairs(joined, task, "champion", None)
    champion = _metric(task, metric, cp_true, cp_pred)
    if len(cp_true) >= min_rows and champion is not None:
        reading = QualityReading(
            metric, len(ch_true), value, champion, f"champion live, {len(cp_true)} rows"
        )
        baseline_samples: Any = bootstrap_metric(
            task, metric, cp_true, cp_pred, resamples=resamples, seed=1
        )
    elif offline_baseline is not None:
        reading = QualityReading(
            metric, len(ch_true), value, offline_baseline, "challenger offline test"
        )
        baseline_samples = offline_baseline
    else:
        return QualityReading(metric, len(ch_true), value, None, "no baseline")
    reading.confidence = confidence
    if value is not None and len(ch_true) >= min_rows:
        samples = bootstrap_metric(task, metric, ch_true, ch_pred, resamples=resamples)
        drops = worse_by(metric, samples, baseline_samples)
        drops = drops[~np.isnan(drops)]
        if drops.size:
            reading.drop_bound = float(np.quantile(drops, 1 - confidence))
    return reading
