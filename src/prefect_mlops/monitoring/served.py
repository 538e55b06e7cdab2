"""The window a monitoring run looks at: the watched version's serving-log rows, read with
``serving.log.read_window``, and those rows named as the version's reference profile names them
(what the statistics are computed over, here or on a Dask worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_mlops.monitoring.profile import PREDICTION_COLUMN, probability_column

if TYPE_CHECKING:
    from prefect_mlops.monitoring.profile import ReferenceProfile
    from prefect_mlops.monitoring.runner import MonitoringTarget


@dataclass
class Window:
    """The watched version's serving-log rows between ``start`` and ``end`` (``frame``: the
    serving-log columns, ``feature.*`` and ``proba.*`` included) and the files skipped."""

    model_name: str
    version: str
    start: datetime
    end: datetime
    frame: pd.DataFrame
    skipped: list[str] = field(default_factory=list)

    @cached_property
    def answered(self) -> Any:
        """Which rows were answered (status ``ok``), as a boolean array: computed once."""
        return (self.frame["status"].astype(str) == "ok").to_numpy()

    @cached_property
    def scored(self) -> pd.DataFrame:
        """The rows that were answered: the ones with features and predictions (the frame
        itself, not a copy, when every row was)."""
        return self.frame if self.answered.all() else self.frame[self.answered]

    @property
    def rows(self) -> int:
        """How many scored rows the window holds."""
        return int(self.answered.sum())


def profile_features(profile: ReferenceProfile) -> list[str]:
    """The profile's feature columns."""
    return list(profile.features)


def read_serving_window(
    directory: Path,
    target: MonitoringTarget,
    profile: ReferenceProfile,
    *,
    start: datetime,
    end: datetime,
    last_n: int | None,
) -> Window:
    """The version's rows of the serving log under ``directory`` in [start, end), the newest
    ``last_n`` at most; a file that cannot be read is named in ``skipped``, never silently."""
    from prefect_mlops.serving.log import read_window

    skipped: list[str] = []
    classes = _profile_classes(profile)
    frame = read_window(
        directory,
        target.model_name,
        start=start,
        end=end,
        versions=[target.version],
        last_n=last_n,
        classes=classes,
        on_skip=lambda path, reason: skipped.append(f"{path}: {reason}"),
        ordered=False,  # the checks summarise rows; none needs their order
    )
    return Window(target.model_name, target.version, start, end, frame, skipped)


def _profile_classes(profile: ReferenceProfile) -> list[str] | None:
    from prefect_mlops.monitoring.profile import PROBABILITY_PREFIX

    names = [c[len(PROBABILITY_PREFIX) :] for c in profile.prediction_columns if c != "prediction"]
    return names or None


def monitored_frame(window: Window) -> pd.DataFrame:
    """The scored rows as the profile names them: features by name, ``prediction`` and
    ``proba_<class>`` (columns taken as they are, no copy when every row was scored)."""
    from prefect_mlops.serving.log import FEATURE_PREFIX, PREDICTION, PROBA_PREFIX

    frame = window.frame
    keep = None if window.answered.all() else window.answered
    data: dict[str, Any] = {}
    for column in frame.columns:
        name = str(column)
        if name.startswith(FEATURE_PREFIX):
            name = name[len(FEATURE_PREFIX) :]
        elif name.startswith(PROBA_PREFIX):
            name = probability_column(name[len(PROBA_PREFIX) :])
        elif name == PREDICTION:
            name = PREDICTION_COLUMN
        else:
            continue
        values = frame[column]
        if keep is not None:
            values = values[keep]
        # A column with no value in the window's files is read back untyped (object of
        # None): as floats it is what it is, all null, not "a numeric column holds objects".
        untyped = values.dtype == object and len(values) and pd.isna(values.iloc[0])
        if untyped and values.isna().all():
            values = values.astype("float64")
        data[name] = values.reset_index(drop=True) if keep is not None else values
    return pd.DataFrame(data, copy=False)


# -- the checks ----------------------------------------------------------------------------------
