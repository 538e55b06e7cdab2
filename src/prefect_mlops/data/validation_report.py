"""An outcome of data validation for people: the error that stops a run, and the reports."""

from __future__ import annotations

from typing import Any

from prefect_mlops.data.validation import ValidationOutcome
from prefect_mlops.errors import DataValidationError


def raise_for_failures(outcome: ValidationOutcome, source: str) -> None:
    """Return None if ``outcome`` succeeded; else raise DataValidationError listing every failure.

    The message starts ``data validation failed for <source>: N of M expectations failed``, then
    one line per failure, then the fix.
    """
    if outcome.success:
        return
    lines = [f.describe() for f in outcome.failures]
    message = "\n".join(
        [
            f"data validation failed for {source}: "
            f"{outcome.failed} of {outcome.evaluated} expectations failed",
            *(f"  - {line}" for line in lines),
            "Fix the data; if the change is expected, re-infer the suite from newer reference "
            "data (validation.reference), widen the validation.*_tolerance settings, or set "
            "validation.enabled: false.",
        ]
    )
    raise DataValidationError(message, failures=lines)


def _md_cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def failures_markdown(outcome: ValidationOutcome, source: str) -> str:
    """A markdown report of ``outcome`` for a Prefect artifact (a table of failures, if any)."""
    if outcome.success:
        return (
            f"# Data validation passed: {source}\n\nAll {outcome.evaluated} expectations passed.\n"
        )
    rows = [
        f"| `{f.expectation_type}` | {_md_cell(f.column or '(table)')} | "
        f"{_md_cell(f.observed)} | {_md_cell(f.describe())} |"
        for f in outcome.failures
    ]
    return "\n".join(
        [
            f"# Data validation failed: {source}",
            "",
            f"**{outcome.failed} of {outcome.evaluated} expectations failed.**",
            "",
            "| expectation | column | observed | details |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def expectation_rows(outcome: ValidationOutcome) -> list[dict[str, str]]:
    """One row per expectation of the suite, failed ones first, for a Prefect table artifact:
    ``expectation``, ``column`` (``(table)`` for table-level ones), ``rule`` (its bounds in
    words), ``result`` (``pass`` / ``FAIL``) and ``details`` (why it failed, else empty)."""
    why = {(f.expectation_type, f.column): f.describe() for f in outcome.failures}
    missing = {f.column for f in outcome.failures if f.expectation_type == "expect_column_to_exist"}
    rows = []
    for item in outcome.result.get("results", []):
        config = item.get("expectation_config") or {}
        kwargs = config.get("kwargs") or {}
        column = kwargs.get("column")
        column = None if column is None else str(column)
        type_ = str(config.get("type"))
        passed = bool(item.get("success"))
        details = ""
        if not passed:
            details = why.get((type_, column)) or (
                f"column '{column}' is missing" if column in missing else "failed"
            )
        rows.append(
            {
                "expectation": type_,
                "column": column or "(table)",
                "rule": expectation_rule(kwargs, config.get("meta") or {}),
                "result": "pass" if passed else "FAIL",
                "details": details,
            }
        )
    return sorted(rows, key=lambda row: row["result"] != "FAIL")


def expectation_rule(kwargs: dict[str, Any], meta: dict[str, Any]) -> str:
    """An expectation's bounds in a few words: ``in [0, 79.2] (mostly 99%)``, ``3 known
    values``, ``numeric family``, ``at least 1 row``."""
    parts: list[str] = []
    if "type_list" in kwargs:
        family = meta.get("family")
        parts.append(f"{family} family" if family else f"{len(kwargs['type_list'])} types")
    if "value_set" in kwargs:
        parts.append(f"{len(kwargs['value_set'])} known values")
    if "min_value" in kwargs or "max_value" in kwargs:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if "column" not in kwargs and high is None:
            parts.append(f"at least {low} row{'s' if low != 1 else ''}")
        else:
            parts.append(f"in [{_bound(low)}, {_bound(high)}]")
    if kwargs.get("mostly") is not None:
        parts.append(f"mostly {100 * float(kwargs['mostly']):.4g}%")
    return ", ".join(parts) or "-"


def _bound(value: Any) -> str:
    if value is None:
        return "unbounded"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
