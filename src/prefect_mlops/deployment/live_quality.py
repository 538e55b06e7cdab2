"""Live quality: ground truth that arrives after serving, joined to the serving log.

Pure functions over frames (no Prefect, no MLflow). A labels table holds one row per scored row
whose true value is now known:

==============  =========================================================================
column          meaning
==============  =========================================================================
request_id      the ``request_id`` the service answered with (and logged)
row_index       position of the row within that request; optional when every labelled
                request scored a single row
<label column>  the true value (the model's training target name by default)
==============  =========================================================================

Rows with a missing label are ignored; when a key appears more than once the last row wins (a
late correction). :func:`join_labels` pairs labels with the logged predictions;
:func:`live_metric` scores one variant / version on the pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.config import HIGHER_IS_BETTER
from prefect_mlops.errors import ConfigError, DataIngestError
from prefect_mlops.modeling.evaluation import ResolvedTask, compute_metrics, infer_task
from prefect_mlops.registry import lineage

KEY = ("request_id", "row_index")
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


def prepare_labels(labels: pd.DataFrame, label_column: str, where: str) -> pd.DataFrame:
    """The labels of ``where`` as ``request_id``, ``row_index`` (or absent), ``label``.

    Raises DataIngestError naming ``where`` and the column when ``request_id`` or the label
    column is missing, or ``row_index`` holds something other than whole numbers.
    """
    missing = [c for c in ("request_id", label_column) if c not in labels.columns]
    if missing:
        raise DataIngestError(
            f"labels {where}: missing column(s) {missing}; a labels table needs `request_id` "
            f"(the id the service answered with), the label column {label_column!r} and, for "
            f"requests of several rows, `row_index`; its columns are {list(labels.columns)}"
        )
    columns = ["request_id", label_column] + (["row_index"] if "row_index" in labels else [])
    out = labels[columns].rename(columns={label_column: "label"})
    out = out[out["label"].notna() & out["request_id"].notna()].copy()
    out["request_id"] = out["request_id"].astype(str)
    if "row_index" in out:
        index = pd.to_numeric(out["row_index"], errors="coerce")
        bad = index.isna() | (index != index.round())
        if bad.any():
            first = out.loc[bad, "row_index"].iloc[0]
            raise DataIngestError(
                f"labels {where}: column 'row_index' must hold whole numbers (the row's "
                f"position in its request); found {first!r}"
            )
        out["row_index"] = index.astype("int64")
    key = [c for c in KEY if c in out]
    return out.drop_duplicates(key, keep="last").reset_index(drop=True)


@dataclass
class LabelSpec:
    """How to read and score one model's labels: resolved once, before a canary starts."""

    where: str
    label_column: str
    task: str
    metric: str
    offline_baseline: float | None


def resolve_label_spec(
    labels: pd.DataFrame,
    *,
    where: str,
    label_column: str | None,
    metric: str | None,
    version_tags: dict[str, str],
) -> LabelSpec:
    """The label column (default: the version's training target, tag ``mlops.target``), the
    task (tag ``mlops.task``, else inferred from the labels), the metric (default
    :func:`default_metric`) and the version's offline test value of it (``mlops.metric.*``).

    Raises ConfigError or DataIngestError naming the field or column that is wrong.
    """
    column = label_column or version_tags.get(lineage.TARGET)
    if not column:
        raise ConfigError(
            f"labels {where}: set label_column (the model version has no mlops.target tag "
            "naming its training target)"
        )
    prepared = prepare_labels(labels, column, where)
    task = version_tags.get(lineage.TASK)
    if task not in LIVE_METRICS:
        if prepared.empty:
            raise ConfigError(
                f"labels {where}: the model version has no mlops.task tag and the labels have "
                "no rows to infer it from; add labels or register the model with prefect-mlops"
            )
        task = infer_task(prepared["label"])
    chosen = metric or default_metric(task)
    check_metric(task, chosen)
    offline = version_tags.get(lineage.metric_tag(chosen))
    return LabelSpec(where, column, task, chosen, float(offline) if offline else None)


def join_labels(log: pd.DataFrame, labels: pd.DataFrame, where: str) -> pd.DataFrame:
    """Answered serving-log rows that have a label: ``variant``, ``model_version``,
    ``prediction`` (decoded), ``label``. ``labels`` comes from :func:`prepare_labels`.

    Raises DataIngestError when ``labels`` has no ``row_index`` but a labelled request scored
    several rows (which row the label belongs to would be a guess).
    """
    columns = ["request_id", "row_index", "variant", "model_version", "prediction", "label"]
    if log.empty or labels.empty:
        return pd.DataFrame(columns=columns)
    served = log[log["status"].astype(str) == "ok"]
    served = served[[*KEY, "variant", "model_version", "prediction"]]
    if "row_index" in labels:
        joined = served.merge(labels, on=list(KEY), how="inner")
    else:
        joined = served.merge(labels, on="request_id", how="inner")
        several = joined[joined["row_index"] != 0]
        if not several.empty:
            raise DataIngestError(
                f"labels {where}: request {several['request_id'].iloc[0]!r} scored several "
                "rows; add a `row_index` column (the row's position in its request)"
            )
    joined = joined.copy()
    joined["prediction"] = [json.loads(p) for p in joined["prediction"]]
    return joined[columns]


def _comparable(task: str, truth: pd.Series, predicted: pd.Series) -> tuple[Any, Any]:
    """Labels read from a file and predictions decoded from JSON, as arrays of one type."""
    if task == "regression":
        return truth.astype(float).to_numpy(), predicted.astype(float).to_numpy()
    t_num = pd.to_numeric(truth, errors="coerce")
    p_num = pd.to_numeric(predicted, errors="coerce")
    if t_num.notna().all() and p_num.notna().all():
        return t_num.astype(float).to_numpy(), p_num.astype(float).to_numpy()
    return truth.astype(str).to_numpy(), predicted.astype(str).to_numpy()


def _pairs(joined: pd.DataFrame, task: str, variant: str, version: str | None) -> tuple[Any, Any]:
    rows = joined[joined["variant"] == variant]
    if version is not None:
        rows = rows[rows["model_version"].astype(str) == str(version)]
    return _comparable(task, rows["label"], rows["prediction"])


def _metric(task: str, metric: str, y_true: Any, y_pred: Any) -> float | None:
    if len(y_true) == 0:
        return None
    resolved: ResolvedTask = "classification" if task == "classification" else "regression"
    return compute_metrics(resolved, y_true, y_pred).get(metric)


def live_metric(
    joined: pd.DataFrame, task: str, metric: str, *, variant: str, version: str | None = None
) -> tuple[int, float | None]:
    """(labelled rows, ``metric``) of ``variant`` (and ``version``) in ``joined``; the metric
    is None when there are no rows or it is undefined on them (one class present)."""
    y_true, y_pred = _pairs(joined, task, variant, version)
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
