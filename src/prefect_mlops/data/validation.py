"""Data validation with Great Expectations 1.x: TFX's ExampleValidator.

:func:`validate_frame` checks a DataFrame against a suite dict (see
:mod:`prefect_mlops.data.suites`) with a real, ephemeral GX context and returns a
:class:`ValidationOutcome` whose failures name the column, the observed value and why. Turning
an outcome into an error or a report for people is :mod:`prefect_mlops.data.validation_report`.

Great Expectations is imported lazily (its import takes seconds) and its context is built once per
process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefect_mlops.data.suites import TYPE_FAMILIES, normalize_suite
from prefect_mlops.errors import ConfigError
from prefect_mlops.secrets import mask_text

_MISSING = "column missing"
_ERROR = "error"
# BASIC gives the counts and example values the messages need; SUMMARY adds value counts and
# row indices at ~30 % more cost on a 1M-row failure re-run.
_DETAIL_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
_INDEX_KEY = "prefect_mlops_index"
_EXAMPLES = 5

# --------------------------------------------------------------------------- outcomes


@dataclass
class ExpectationFailure:
    """One failed expectation: its type, column (None for table-level), observed value, why."""

    expectation_type: str
    column: str | None
    observed: str
    details: str

    def describe(self) -> str:
        """A one-line description naming the column, what was observed and what was expected."""
        if self.observed == _MISSING and self.column is not None:
            return f"column '{self.column}' is missing from the data"
        verb = "could not be evaluated" if self.observed == _ERROR else "failed"
        where = "table" if self.column is None else f"column '{self.column}'"
        return f"{where}: {self.expectation_type} {verb} — {self.details}"


@dataclass
class ValidationOutcome:
    """The verdict of :func:`validate_frame`.

    ``evaluated`` counts the suite's expectations, ``failed`` the failing ones (several failing
    expectations on one missing column make one entry of ``failures``), ``result`` is GX's
    validation result JSON (``.to_json_dict()``) to keep as an artifact.
    """

    success: bool
    failures: list[ExpectationFailure]
    evaluated: int
    result: dict[str, Any]
    failed: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.failed < 0:
            self.failed = len(self.failures)


# --------------------------------------------------------------------------- validation


class _GX:
    """The process-wide Great Expectations module, ephemeral context and pandas data source."""

    lock = threading.RLock()
    _state: tuple[Any, Any, Any, dict[str, Any]] | None = None

    @classmethod
    def get(cls) -> tuple[Any, Any, Any, dict[str, Any]]:
        """``(gx, context, datasource, batch definitions by data name)``, built on first use."""
        with cls.lock:
            if cls._state is None:
                os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
                import great_expectations as gx
                from great_expectations.data_context.types.base import ProgressBarsConfig

                context = gx.get_context(mode="ephemeral")
                context.variables.progress_bars = ProgressBarsConfig(globally=False)
                datasource = context.data_sources.add_pandas("prefect_mlops")
                cls._state = (gx, context, datasource, {})
            return cls._state

    @classmethod
    def batch_definition(cls, data_name: str) -> Any:
        """The whole-DataFrame batch definition of the asset ``data_name`` (created once)."""
        _, _, datasource, definitions = cls.get()
        if data_name not in definitions:
            asset = datasource.add_dataframe_asset(data_name)
            definitions[data_name] = asset.add_batch_definition_whole_dataframe(data_name)
        return definitions[data_name]


def _build_suite(gx: Any, suite: dict[str, Any], indices: list[int]) -> Any:
    """A fresh, unsaved ``gx.ExpectationSuite`` of the expectations at ``indices``.

    Each expectation's meta carries its index so results map back. Raises ConfigError naming
    the expectation GX refuses (unknown type, bad kwargs).
    """
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for i in indices:
        item = suite["expectations"][i]
        try:
            config = ExpectationConfiguration(
                type=item["type"],
                kwargs=dict(item["kwargs"]),
                meta={**(item.get("meta") or {}), _INDEX_KEY: i},
                notes=item.get("notes"),
                description=item.get("description"),
            )
            expectations.append(config.to_domain_obj())
        except Exception as exc:
            raise ConfigError(
                f"suite {suite.get('name')!r}: expectation #{i} ({item.get('type')!r}, kwargs "
                f"{item.get('kwargs')!r:.200}) is not a valid GX expectation: {exc}"
            ) from exc
    return gx.ExpectationSuite(name=str(suite.get("name") or "suite"), expectations=expectations)


def _raised(result: dict[str, Any]) -> str | None:
    """The exception message of a GX expectation result that raised, else None."""
    info = result.get("exception_info") or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _pct(share: float) -> str:
    """``share`` (0..1) as a percentage with one decimal."""
    return f"{100 * share:.1f}%"


def _num(value: Any) -> str:
    """A bound for a message: 6 significant digits, or 'unbounded' for None."""
    if value is None:
        return "unbounded"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _examples(result: dict[str, Any]) -> list[Any]:
    """Up to five distinct unexpected values from a BASIC/SUMMARY result."""
    seen: list[Any] = []
    for value in result.get("partial_unexpected_list") or []:
        if value not in seen:
            seen.append(value)
        if len(seen) == _EXAMPLES:
            break
    return seen


def _unexpected(result: dict[str, Any]) -> tuple[int, str]:
    """``(count, "x% of rows (n)")`` of the unexpected values of a BASIC/SUMMARY map result."""
    count = int(result.get("unexpected_count") or 0)
    total = int(result.get("element_count") or 0)
    missing = int(result.get("missing_count") or 0)
    base = total - missing
    scope = "rows" if not missing else "non-null rows"
    share = count / base if base else 0.0
    return count, f"{_pct(share)} of {scope} ({count})"


def _short_types(type_list: list[str]) -> str:
    """A type list named by family when it is one, else its first entries."""
    for family, names in TYPE_FAMILIES.items():
        if list(type_list) == names:
            return f"the {family} family ({', '.join(names[:4])}, ...)"
    shown = ", ".join(map(str, type_list[:6]))
    return f"one of [{shown}{', ...' if len(type_list) > 6 else ''}]"


def describe_failure(
    exp_type: str, kwargs: dict[str, Any], result: dict[str, Any], df: pd.DataFrame
) -> ExpectationFailure:
    """An :class:`ExpectationFailure` for a failed GX result (BASIC or SUMMARY format)."""
    column = kwargs.get("column")
    column = None if column is None else str(column)
    error = _raised({"exception_info": result.get("exception_info") or {}})
    res = result.get("result") or {}
    if error is not None:
        return ExpectationFailure(exp_type, column, _ERROR, error.strip().splitlines()[0][:300])
    count, rows = _unexpected(res)
    examples = _examples(res)
    example_text = f", e.g. {examples!r}" if examples else ""
    mostly = kwargs.get("mostly")
    allowed = f" (allowed: {_pct(1 - float(mostly))})" if mostly is not None else ""
    if exp_type in (
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_of_type",
    ):
        expected = kwargs.get("type_list") or [kwargs.get("type_")]
        dtype = str(df[column].dtype) if column in df.columns else str(res.get("observed_value"))
        details = f"dtype {dtype} is not in {_short_types(expected)}"
        if count:
            kinds = sorted({type(v).__name__ for v in examples})
            details += f"; {rows} hold {'/'.join(kinds) or 'other'} values{example_text}"
        details += "; cast the column to the expected dtype or re-infer the suite"
        return ExpectationFailure(exp_type, column, dtype, details)
    if exp_type == "expect_column_values_to_not_be_null":
        total = int(res.get("element_count") or 0)
        share = count / total if total else 0.0
        details = f"{_pct(share)} of rows ({count}) are null{allowed}"
        return ExpectationFailure(exp_type, column, f"{_pct(share)} null", details)
    if exp_type == "expect_column_values_to_be_in_set":
        details = f"{rows} outside the known set{example_text}{allowed}"
        return ExpectationFailure(exp_type, column, f"{rows} unseen", details)
    if exp_type == "expect_column_values_to_be_between":
        bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
        details = f"{rows} outside {bounds}{example_text}{allowed}"
        return ExpectationFailure(exp_type, column, f"{rows} out of range", details)
    if "observed_value" in res:
        observed = str(res["observed_value"])
        shown = {k: v for k, v in kwargs.items() if k not in ("batch_id", "column")}
        details = f"observed {observed}, expected {shown}"
        return ExpectationFailure(exp_type, column, observed, details)
    if "unexpected_count" in res:
        return ExpectationFailure(exp_type, column, rows, f"{rows} unexpected{example_text}")
    return ExpectationFailure(exp_type, column, "failed", f"kwargs {kwargs}")


def validate_frame(
    df: pd.DataFrame, suite: dict[str, Any], *, data_name: str = "data"
) -> ValidationOutcome:
    """Validate ``df`` against ``suite`` (a suite dict) with an ephemeral GX context.

    The whole suite runs with ``result_format="BOOLEAN_ONLY"``; only failed expectations are
    re-run with ``"BASIC"`` for the observed values (their detail replaces the bare entries of
    ``result``). A column the data lacks becomes one failure naming it. Returns a
    :class:`ValidationOutcome`; raises ConfigError if the suite is malformed or holds an
    expectation GX does not accept. ``data_name`` (GX's asset name, in ``result``) is masked
    (``secrets.mask_text``).
    """
    data_name = mask_text(data_name)
    suite = normalize_suite(suite, default_name="suite")
    count = len(suite["expectations"])
    with _GX.lock:
        gx, _, _, _ = _GX.get()
        gx_suite = _build_suite(gx, suite, list(range(count)))
        batch = _GX.batch_definition(data_name).get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(gx_suite, result_format="BOOLEAN_ONLY").to_json_dict()
        if result["success"]:
            return ValidationOutcome(True, [], count, _strip_index(result), 0)

        columns = {str(c) for c in df.columns}
        failed = [r for r in result["results"] if not r["success"]]
        missing: dict[str, list[str]] = {}
        rerun: list[int] = []
        for item in failed:
            config = item["expectation_config"]
            column = config["kwargs"].get("column")
            if column is not None and str(column) not in columns:
                missing.setdefault(str(column), []).append(config["type"])
            else:
                rerun.append(config["meta"][_INDEX_KEY])
        details: dict[int, dict[str, Any]] = {}
        if rerun:
            summary = batch.validate(
                _build_suite(gx, suite, sorted(rerun)), result_format=_DETAIL_FORMAT
            ).to_json_dict()
            details = {r["expectation_config"]["meta"][_INDEX_KEY]: r for r in summary["results"]}
    result["results"] = [
        details.get(r["expectation_config"]["meta"][_INDEX_KEY], r) for r in result["results"]
    ]
    failures = [
        ExpectationFailure(
            "expect_column_to_exist",
            column,
            _MISSING,
            f"the data has no column '{column}' ({len(types)} expectations on it failed: "
            f"{', '.join(sorted(set(types)))}); add it or re-infer the suite",
        )
        for column, types in missing.items()
    ]
    for index in sorted(details):
        item = details[index]
        config = item["expectation_config"]
        failures.append(describe_failure(config["type"], config["kwargs"], item, df))
    return ValidationOutcome(False, failures, count, _strip_index(result), len(failed))


def _strip_index(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the private index key in each expectation's meta."""
    for item in result.get("results", []):
        item.get("expectation_config", {}).get("meta", {}).pop(_INDEX_KEY, None)
    return result
