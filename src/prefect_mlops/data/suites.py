"""Expectation suites: which one a training run validates with, learned or read from a file.

TFX's SchemaGen on Great Expectations 1.x (a suite is a JSON-able dict, the shape of GX's
``ExpectationSuite.to_json_dict()``):

* :func:`infer_suite` learns a suite from reference data: row count, columns, dtype family,
  nullability, numeric ranges and categorical domains, each with a configured tolerance;
* :func:`load_suite` reads a user-supplied suite file instead (GX 0.x files are converted);
* :func:`reference_snapshot` and :func:`choose_suite` decide, for one training run, which
  reference the suite is learned from and whether the user's suite replaces it.

Running a suite against data is :mod:`prefect_mlops.data.validation`; nothing here imports GX.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.config import TrainingConfig, ValidationConfig
from prefect_mlops.errors import ConfigError

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


# --------------------------------------------------------------------------- a run's suite


def validated_columns(reference: pd.DataFrame, config: TrainingConfig) -> list[str]:
    """Columns an inferred suite covers: the reference's features and target (configured
    features if given), plus the timestamp; never the entity id (new ids are expected)."""
    if config.features is not None:
        wanted = [*config.features, config.target, config.data.timestamp_column]
        return [c for c in wanted if c and c in reference.columns]
    skipped = {config.id_column, *config.drop_columns}
    return [c for c in reference.columns if c not in skipped]


def reference_snapshot(reference: str | None, champion_snapshot: str | None) -> str | None:
    """The snapshot path a run's suite is learned from, or None for the run's own data.

    ``reference`` is ``ValidationConfig.reference``: None (the current data), ``"champion"``
    (``champion_snapshot``, the champion's training snapshot, when it still exists on disk)
    or a path, returned as given.
    """
    if reference != "champion":
        return reference
    if champion_snapshot and Path(champion_snapshot).exists():
        return champion_snapshot
    return None


def choose_suite(
    config: TrainingConfig, data: pd.DataFrame, reference: pd.DataFrame | None
) -> dict[str, Any]:
    """The suite a training run validates ``data`` with: the user's ``validation.suite_path``
    if set, else one inferred from ``reference`` (``data`` itself when None) over
    :func:`validated_columns`.

    Raises ConfigError when the suite file is missing or malformed.
    """
    if config.validation.suite_path:
        return load_suite(config.validation.suite_path)
    learned_from = data if reference is None else reference
    return infer_suite(
        learned_from,
        config.validation,
        name=f"{config.model_name}-suite",
        columns=validated_columns(learned_from, config),
    )
