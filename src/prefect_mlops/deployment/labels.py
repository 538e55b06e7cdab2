"""Ground truth that arrives after serving ("late labels"), read and joined to the serving log.

A labels table holds one row per scored row whose true value is now known:

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
``live_quality.read_quality`` scores them; :func:`read_live_quality` does both for a canary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prefect_mlops.deployment.live_quality import (
    LIVE_METRICS,
    QualityReading,
    check_metric,
    default_metric,
    read_quality,
)
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import ConfigError, DataIngestError
from prefect_mlops.modeling.evaluation import infer_task
from prefect_mlops.registry import lineage

KEY = ("request_id", "row_index")


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
            shown = (
                "an empty cell" if pd.isna(first) else repr(getattr(first, "item", lambda: first)())
            )
            raise DataIngestError(
                f"labels {where}: column 'row_index' must hold whole numbers (the row's "
                f"position in its request); found {shown}"
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
    ``prediction`` (typed, as ``serving.log.read_window`` reads it), ``label``. ``labels``
    comes from :func:`prepare_labels`.

    Raises DataIngestError when ``labels`` has no ``row_index`` but a labelled request scored
    several rows (which row the label belongs to would be a guess).
    """
    columns = ["request_id", "row_index", "variant", "model_version", "prediction", "label"]
    if log.empty or labels.empty:
        return pd.DataFrame(columns=columns)
    served = log[log["status"].astype(str) == "ok"]
    served = served[[*KEY, "variant", "model_version", "prediction"]]
    if "row_index" in labels:
        joined = served.merge(labels, on=list(KEY))  # an inner join
    else:
        joined = served.merge(labels, on="request_id")  # an inner join
        several = joined[joined["row_index"] != 0]
        if not several.empty:
            raise DataIngestError(
                f"labels {where}: request {several['request_id'].iloc[0]!r} scored several "
                "rows; add a `row_index` column (the row's position in its request)"
            )
    return joined[columns].reset_index(drop=True)


def read_live_quality(
    config: DeploymentConfig, spec: LabelSpec, log: pd.DataFrame, version: str
) -> QualityReading:
    """Re-read ``config.labels`` and score ``version``'s labelled rows of ``log`` (the serving
    log since the canary started) against its baseline; returns the reading.

    Raises ConfigError when no labels are configured, DataIngestError when they cannot be read.
    """
    from prefect_mlops.data.sources import read_table

    if config.labels is None:
        raise ConfigError("live quality needs `labels` (a table of request ids and true values)")
    table = read_table(config.labels, allow_empty=True)
    labels = prepare_labels(table, spec.label_column, spec.where)
    return read_quality(
        join_labels(log, labels, spec.where),
        version=version,
        task=spec.task,
        metric=spec.metric,
        min_rows=config.min_labelled_rows,
        offline_baseline=spec.offline_baseline,
        confidence=config.quality_confidence,
    )
