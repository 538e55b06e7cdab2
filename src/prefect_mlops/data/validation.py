"""Data validation with Great Expectations: TFX's SchemaGen + ExampleValidator, on GX 1.x.

* :func:`infer_suite` learns an expectation suite (a JSON-able dict, the shape of GX's
  ``ExpectationSuite.to_json_dict()``) from reference data: row count, columns, dtype family,
  nullability, numeric ranges and categorical domains, each with a configured tolerance.
* :func:`load_suite` reads a user-supplied suite file instead.
* :func:`validate_frame` checks a DataFrame against a suite with a real (ephemeral) GX context and
  returns a :class:`ValidationOutcome` whose failures name the column, the observed value and why.
* :func:`raise_for_failures` and :func:`failures_markdown` turn an outcome into a
  :class:`~prefect_mlops.errors.DataValidationError` or a Prefect markdown artifact.

Great Expectations is imported lazily (its import takes seconds) and its context is built once per
process.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.config import ValidationConfig
from prefect_mlops.errors import ConfigError, DataValidationError

__all__ = [
    "ExpectationFailure",
    "ValidationOutcome",
    "dtype_type_list",
    "failures_markdown",
    "infer_suite",
    "load_suite",
    "raise_for_failures",
    "validate_frame",
]

# Type names understood by GX's pandas type check (numpy names, pandas extension dtype class
# names, and native Python names for the value-by-value check GX runs on object columns).
_INT_TYPES = [f"{u}int{n}" for u in ("", "u") for n in (8, 16, 32, 64)]
_NULLABLE_INT_TYPES = [f"{u}Int{n}Dtype" for u in ("", "U") for n in (8, 16, 32, 64)]
TYPE_FAMILIES: dict[str, list[str]] = {
    # An integer column read back with NaNs becomes float: numeric covers both.
    "numeric": [
        *_INT_TYPES,
        "float16",
        "float32",
        "float64",
        *_NULLABLE_INT_TYPES,
        "Float32Dtype",
        "Float64Dtype",
        "int",
        "float",
    ],
    "bool": ["bool", "BooleanDtype"],
    "string": ["str", "StringDtype", "object"],
    "datetime": [
        "datetime64[ns]",
        "datetime64[us]",
        "datetime64[ms]",
        "datetime64[s]",
        "Timestamp",
    ],
}

_TYPE_EXPECTATIONS = (
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
)
_MISSING = "column missing"
_ERROR = "error"
# BASIC gives the counts and example values the messages need; SUMMARY adds value counts and
# row indices at ~30 % more cost on a 1M-row failure re-run.
_DETAIL_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
_INDEX_KEY = "prefect_mlops_index"
_EXAMPLES = 5


# --------------------------------------------------------------------------- suite inference


def dtype_family(series: pd.Series) -> str | None:
    """The dtype family of ``series``: 'bool', 'numeric', 'datetime', 'string' or None (other).

    Object columns go by their values: all strings is 'string', all booleans (a boolean column
    read back with nulls) is 'bool', all numbers is 'numeric'; mixed or empty is None.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype):
        return _OBJECT_FAMILIES.get(pd.api.types.infer_dtype(series, skipna=True))
    if _is_categorical(series):
        return "string"
    return None


_OBJECT_FAMILIES = {
    "string": "string",
    "boolean": "bool",
    "integer": "numeric",
    "floating": "numeric",
    "mixed-integer-float": "numeric",
}


def _is_categorical(series: pd.Series) -> bool:
    """Whether ``series`` is an object, category or string column (domain-check candidate)."""
    dtype = series.dtype
    return bool(
        pd.api.types.is_object_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or (pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))
    )


def dtype_type_list(series: pd.Series) -> list[str] | None:
    """The GX ``type_list`` accepting ``series``'s dtype family, or None if GX cannot check it.

    GX compares pandas dtypes by equality with types it can construct from a name, so
    categorical, timezone-aware and Arrow-backed dtypes get no type expectation.
    """
    family = dtype_family(series)
    dtype = series.dtype
    if family is None or isinstance(dtype, pd.CategoricalDtype | pd.DatetimeTZDtype):
        return None
    if isinstance(dtype, pd.ArrowDtype) or getattr(dtype, "storage", None) == "pyarrow":
        return None
    return list(TYPE_FAMILIES[family])


def _expectation(type_: str, meta: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """One expectation in ``ExpectationConfiguration.to_json_dict()`` shape."""
    return {"type": type_, "kwargs": kwargs, "meta": meta or {}, "severity": "critical"}


def _plain(value: Any) -> Any:
    """``value`` as a JSON-able Python scalar (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _floor6(value: float) -> float:
    """``value`` rounded down to 6 decimals (a readable, never stricter ``mostly``)."""
    return math.floor(value * 1e6) / 1e6


def infer_column_expectations(series: pd.Series, config: ValidationConfig) -> list[dict[str, Any]]:
    """The expectations inferred for one reference column (see :func:`infer_suite`)."""
    column = str(series.name)
    out = [_expectation("expect_column_to_exist", column=column)]
    family = dtype_family(series)
    type_list = dtype_type_list(series)
    if type_list is not None:
        out.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                {"family": family, "reference_dtype": str(series.dtype)},
                column=column,
                type_list=type_list,
            )
        )
    n = len(series)
    if n:
        null_fraction = float(series.isna().mean())
        mostly = _floor6(min(1.0, max(0.0, 1.0 - (null_fraction + config.null_tolerance))))
        if mostly > 0:
            out.append(
                _expectation(
                    "expect_column_values_to_not_be_null",
                    {"reference_null_fraction": round(null_fraction, 6)},
                    column=column,
                    mostly=mostly,
                )
            )
    if family == "numeric" and dtype_is_numeric(series):
        out.extend(
            _range_expectation(
                series, column, config.range_tolerance, config.range_outlier_tolerance
            )
        )
    elif family != "bool" and _is_categorical(series):
        out.extend(_domain_expectation(series, column, config))
    return out


def dtype_is_numeric(series: pd.Series) -> bool:
    """Whether ``series`` has a real numeric (non-bool, non-object) dtype."""
    dtype = series.dtype
    return bool(
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def _range_expectation(
    series: pd.Series, column: str, tolerance: float, outlier_tolerance: float = 0.0
) -> list[dict[str, Any]]:
    """``expect_column_values_to_be_between`` over the widened finite reference range; up to
    ``outlier_tolerance`` of the rows may fall outside (one new extreme is not a broken feed)."""
    values = series.dropna().to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    low, high = float(finite.min()), float(finite.max())
    margin = tolerance * (high - low)
    min_value = None if np.isneginf(values).any() else low - margin
    max_value = None if np.isposinf(values).any() else high + margin
    if min_value is None and max_value is None:
        return []
    return [
        _expectation(
            "expect_column_values_to_be_between",
            {"reference_min": low, "reference_max": high},
            column=column,
            min_value=min_value,
            max_value=max_value,
            **({"mostly": 1 - outlier_tolerance} if outlier_tolerance > 0 else {}),
        )
    ]


def _domain_expectation(
    series: pd.Series, column: str, config: ValidationConfig
) -> list[dict[str, Any]]:
    """``expect_column_values_to_be_in_set`` over the reference categories, if few enough."""
    mostly = _floor6(1.0 - config.unseen_category_tolerance)
    if mostly <= 0:
        return []
    try:
        values = pd.unique(series.dropna().to_numpy(dtype=object))
    except TypeError:  # unhashable values (lists, dicts): no domain
        return []
    if not len(values) or len(values) > config.max_categories:
        return []
    value_set = sorted((_plain(v) for v in values), key=lambda v: (type(v).__name__, str(v)))
    return [
        _expectation(
            "expect_column_values_to_be_in_set",
            {"reference_categories": len(value_set)},
            column=column,
            value_set=value_set,
            mostly=mostly,
        )
    ]


def infer_suite(
    reference: pd.DataFrame,
    config: ValidationConfig,
    name: str,
    *,
    columns: list[str] | None = None,
) -> dict[str, Any]:
    """Infer an expectation suite from ``reference`` (GX 1.x ``ExpectationSuite`` JSON dict).

    Returns ``{"name", "id", "expectations", "meta", "notes"}`` — the shape of
    ``suite.to_json_dict()``, so it can be saved and passed back as ``suite_path``. Inferred:
    at least one row; every column exists; its dtype family (integer and float are one numeric
    family); nullability with ``mostly = 1 - (reference null share + null_tolerance)``; numeric
    ranges widened by ``range_tolerance`` of the reference range; categorical domains of
    string/object/category columns with at most ``max_categories`` values, allowing
    ``unseen_category_tolerance`` of rows outside them. ``columns`` limits the covered columns.

    Raises ConfigError if ``columns`` names a column the reference lacks.
    """
    selected = [str(c) for c in reference.columns] if columns is None else list(columns)
    unknown = [c for c in selected if c not in reference.columns]
    if unknown:
        raise ConfigError(
            f"suite {name!r}: columns {unknown} are not in the reference data "
            f"(it has {[str(c) for c in reference.columns]}); fix the column list"
        )
    expectations = [_expectation("expect_table_row_count_to_be_between", min_value=1)]
    for column in selected:
        expectations.extend(infer_column_expectations(reference[column], config))
    return {
        "name": name,
        "id": None,
        "expectations": expectations,
        "meta": {
            "great_expectations_version": _gx_version(),
            "prefect_mlops": {
                "inferred_from_rows": len(reference),
                "range_tolerance": config.range_tolerance,
                "null_tolerance": config.null_tolerance,
                "unseen_category_tolerance": config.unseen_category_tolerance,
                "max_categories": config.max_categories,
            },
        },
        "notes": None,
    }


def _gx_version() -> str:
    """The installed Great Expectations version, read without importing it."""
    from importlib.metadata import version

    return version("great_expectations")


# --------------------------------------------------------------------------- suite files


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read a GX expectation suite JSON file; return it as a dict in GX 1.x shape.

    GX 0.x files (``expectation_suite_name`` / ``expectation_type``) are converted. Raises
    ConfigError naming the file if it is missing, not valid JSON or not an expectation suite.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"expectation suite file {path} does not exist; fix validation.suite_path"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"expectation suite file {path} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expectation suite file {path} is not valid JSON: {exc}") from exc
    try:
        return normalize_suite(raw, default_name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"expectation suite file {path}: {exc}") from exc


def normalize_suite(raw: Any, default_name: str = "suite") -> dict[str, Any]:
    """``raw`` checked and converted to the GX 1.x suite dict shape.

    Raises ConfigError if ``raw`` is not a mapping with an ``expectations`` list of
    ``{"type": str, "kwargs": dict}`` entries.
    """
    hint = "expected a JSON object with an 'expectations' list, as suite.to_json_dict() writes"
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        got = type(raw).__name__ if not isinstance(raw, dict) else f"keys {sorted(raw)}"
        raise ConfigError(f"not a GX expectation suite (got {got}); {hint}")
    expectations = []
    for i, item in enumerate(raw["expectations"]):
        type_ = item.get("type", item.get("expectation_type")) if isinstance(item, dict) else None
        kwargs = item.get("kwargs", {}) if isinstance(item, dict) else None
        if not isinstance(type_, str) or not isinstance(kwargs, dict):
            raise ConfigError(
                f"expectation #{i} is not a {{'type': str, 'kwargs': dict}} object "
                f"(got {item!r:.200}); {hint}"
            )
        entry = {"type": type_, "kwargs": dict(kwargs), "meta": dict(item.get("meta") or {})}
        for key in ("notes", "description", "severity"):
            if item.get(key) is not None:
                entry[key] = item[key]
        expectations.append(entry)
    name = raw.get("name") or raw.get("expectation_suite_name") or default_name
    return {
        "name": str(name),
        "id": raw.get("id"),
        "expectations": expectations,
        "meta": dict(raw.get("meta") or {}),
        "notes": raw.get("notes"),
    }


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
    expectation GX does not accept.
    """
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
