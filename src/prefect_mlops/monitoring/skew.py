"""Schema skew: does the served traffic still look like the data the version was trained on?

The version's own Great Expectations suite (``validation/expectation_suite.json`` on its
training run) is run over the window's feature columns with the validation core
(``data.validation.validate_frame``): types, null rates, ranges and domains. Expectations on
columns serving never sees (the target, the timestamp) are left out. Columns the model expects
but the window lacks, and columns the window has but the model never saw, are reported too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

#: The expectations that are about the table, not a column (kept when the suite is filtered).
_TABLE_LEVEL = ("expect_table_row_count_to_be_between",)


@dataclass
class SkewFinding:
    """One way the window breaks the version's expectations (a column, or the table)."""

    column: str | None
    check: str
    observed: str
    details: str

    def describe(self) -> str:
        """One line naming the column and what is wrong."""
        where = "table" if self.column is None else f"column '{self.column}'"
        return f"{where}: {self.check} — {self.details}"


@dataclass
class SkewResult:
    """The schema-skew verdict of one window: ``skewed`` when any finding."""

    evaluated: int
    findings: list[SkewFinding] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def skewed(self) -> bool:
        """Whether the window breaks any expectation, or lacks or adds a column."""
        return bool(self.findings or self.missing_columns or self.unexpected_columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``skewed`` included)."""
        return {**asdict(self), "skewed": self.skewed}


def serving_suite(suite: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """``suite`` with only the expectations on ``columns`` (the model's features) and the
    table-level ones: the target and the timestamp are not part of a serving request."""
    keep = set(columns)
    expectations = [
        e
        for e in suite.get("expectations", [])
        if e.get("type") in _TABLE_LEVEL or (e.get("kwargs") or {}).get("column") in keep
    ]
    return {**suite, "expectations": expectations}


def check_skew(
    window: pd.DataFrame,
    suite: dict[str, Any] | None,
    features: list[str],
    *,
    data_name: str = "serving window",
) -> SkewResult:
    """Check ``window`` (feature columns by their own names) against ``suite`` over
    ``features``; returns a :class:`SkewResult`, never raises for bad data.

    A feature the window lacks is reported as missing (and its expectations are not run), a
    window column not in ``features`` as unexpected. Without a suite (a version registered
    without validation) only the columns are compared and ``error`` says why. A suite GX
    refuses is reported in ``error`` too: skew is one check of several, the others go on.
    """
    from prefect_mlops.data.validation import validate_frame
    from prefect_mlops.errors import ConfigError

    present = [c for c in features if c in window.columns]
    missing = [c for c in features if c not in window.columns]
    unexpected = [str(c) for c in window.columns if c not in set(features)]
    result = SkewResult(evaluated=0, missing_columns=missing, unexpected_columns=unexpected)
    if suite is None:
        result.error = "the version has no expectation suite: only the columns were compared"
        return result
    chosen = serving_suite(suite, present)
    try:
        outcome = validate_frame(window[present], chosen, data_name=data_name)
    except ConfigError as exc:
        result.error = f"the version's expectation suite cannot be run: {exc}"
        return result
    result.evaluated = outcome.evaluated
    result.findings = [
        SkewFinding(f.column, f.expectation_type, f.observed, f.details) for f in outcome.failures
    ]
    return result
