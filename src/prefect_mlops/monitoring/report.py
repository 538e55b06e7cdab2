"""Evidently's own HTML report of a monitoring window, for people who would rather look.

The verdicts of a monitoring run come from the whole window (``monitoring.drift``); the report
is built by Evidently's ``Report`` with ``DataDriftPreset`` (plus ``ClassificationPreset`` or
``RegressionPreset`` when labels exist) on bounded samples: the version's reference sample
(kept with its profile at training) and at most ``sample_rows`` rows of the window. The report
says both sizes in its metadata and in the text the flow shows beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from prefect_mlops.processes import turn_telemetry_off


@dataclass(frozen=True)
class ReportSample:
    """How many rows Evidently's report saw, of how many."""

    reference_rows: int
    window_rows: int
    window_total: int

    def describe(self) -> str:
        """One line: the sample sizes (the verdicts are not from this sample)."""
        sampled = (
            f"a sample of {self.window_rows:,} of the window's {self.window_total:,} rows"
            if self.window_rows < self.window_total
            else f"all {self.window_total:,} window rows"
        )
        return (
            f"Evidently's report shows {sampled} against {self.reference_rows:,} reference rows; "
            "every verdict of the run comes from the whole window"
        )


def sample_rows(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``, drawn without replacement (all of them if fewer)."""
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=seed).sort_index()


def build_report(
    reference: pd.DataFrame,
    window: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    per_column_method: dict[str, str] | None = None,
    per_column_threshold: dict[str, float] | None = None,
    task: str | None = None,
    target: str | None = None,
    prediction: str | None = None,
    sample_size: int = 50_000,
    title: str = "",
) -> tuple[str, ReportSample]:
    """Evidently's HTML report of ``window`` against ``reference`` (frames with the feature
    columns by name; with ``target`` and ``prediction`` columns the task's quality preset is
    added); returns (the HTML page, the sample sizes).

    Raises MonitoringError when Evidently cannot build the report (its message is kept).
    """
    from prefect_mlops.errors import MonitoringError

    turn_telemetry_off()
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import BinaryClassification, MulticlassClassification, Regression
    from evidently.presets import ClassificationPreset, DataDriftPreset, RegressionPreset

    current = sample_rows(window, sample_size)
    columns = [*numeric, *categorical]
    with_labels = bool(target and prediction and target in current and prediction in current)
    definition_kwargs: dict[str, Any] = {
        "numerical_columns": list(numeric),
        "categorical_columns": list(categorical),
    }
    metrics: list[Any] = [
        DataDriftPreset(
            columns=columns,
            drift_share=drift_share,
            per_column_method=per_column_method or None,
            per_column_threshold=per_column_threshold or None,
        )
    ]
    if with_labels and task == "classification":
        labelled = pd.concat([reference[target], current[target]]).dropna()
        binary = labelled.nunique() <= 2
        kind = BinaryClassification if binary else MulticlassClassification
        definition_kwargs["classification"] = [kind(target=target, prediction_labels=prediction)]
        metrics.append(ClassificationPreset())
    elif with_labels and task == "regression":
        definition_kwargs["regression"] = [Regression(target=target, prediction=prediction)]
        metrics.append(RegressionPreset())
    keep = [*columns, *([target, prediction] if with_labels else [])]
    definition = DataDefinition(**definition_kwargs)
    sample = ReportSample(len(reference), len(current), len(window))
    try:
        report = Report(metrics, metadata={"title": title, "sample": sample.describe()})
        snapshot = report.run(
            Dataset.from_pandas(current[keep].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(
                reference[[c for c in keep if c in reference]].reset_index(drop=True),
                data_definition=definition,
            ),
        )
        html = snapshot.get_html_str(as_iframe=False)
    except Exception as exc:
        raise MonitoringError(f"Evidently could not build the monitoring report: {exc}") from exc
    return html, sample
