"""The request schema: a ``POST /predict`` body turned into a DataFrame of the model signature's
columns, every value checked before the row can join a batch.

Bodies, all JSON (``docs/serving.md`` is the contract for users):

* ``{"records": [{"col": value, ...}, ...]}`` — one object per row;
* ``{"columns": {"col": [v0, v1, ...], ...}}`` — one list per column, all of the same length;
* ``[{"col": value, ...}, ...]`` — a bare list of records.

A body of more than ``MLOPS_SERVE_MAX_BODY_BYTES`` bytes is a 413 naming ``body`` before any of
it is parsed (:func:`read_body`: by its ``Content-Length``, or while a chunked body is read).
A body that cannot be decoded into rows (empty, malformed, nested too deeply, a number with too
many digits) is a 400 naming ``body``; a row that breaks the signature is a 422 naming the field
(``records[3].age``, ``columns.age[3]``); too many rows a 413. Numbers (integers too) are
accepted for ``double``/``float`` columns and must be finite; ``null`` — and ``NaN``, which is
how ``json.dumps`` writes a missing value of a pandas frame — means a missing value for numeric
columns and for columns the signature marks optional; fields the signature does not know are
ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import ModelLoadError, RequestValidationError

_FLOATING = {"double", "float"}
_INTEGER = {"long", "integer"}
_NUMERIC = _FLOATING | _INTEGER
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# The Python types a whole column may hold to skip the per-value checks (``type(v) in``: a
# bool is not an int here). Numbers still get their range checked on the built array.
_FAST_TYPES: dict[str, tuple[type, ...]] = {
    "double": (float, int),
    "float": (float, int),
    "long": (int,),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
}


def _json_constant(name: str) -> float | None:
    # NaN is what json.dumps writes for a pandas missing value: a missing value, as null.
    # ±Infinity stays a float, to be refused by the value checks like 1e400 (which overflows).
    return None if name == "NaN" else float(name)


_DECODER = json.JSONDecoder(parse_constant=_json_constant)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model signature."""

    name: str
    type: str  # MLflow DataType name: double, float, long, integer, boolean, string, datetime
    required: bool = True

    @property
    def numeric(self) -> bool:
        """Whether the column holds numbers (where ``null`` always means missing)."""
        return self.type in _NUMERIC


@dataclass(frozen=True)
class InputSchema:
    """The columns a model takes, in signature order."""

    columns: tuple[ColumnSpec, ...]

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """From an ``mlflow.models.ModelSignature`` with a column-based input schema; raises
        ModelLoadError when there is none or it is tensor-based."""
        if signature is None or signature.inputs is None:
            raise ModelLoadError("the model has no input signature; log it with one")
        specs = []
        for col in signature.inputs.inputs:
            name = col.name  # a ColSpec's, or a TensorSpec's (None when unnamed)
            if name is None:
                raise ModelLoadError("the model signature is tensor-based; column names needed")
            dtype = getattr(col.type, "name", str(col.type))
            specs.append(ColumnSpec(name, str(dtype), bool(col.required)))
        return cls(tuple(specs))

    @property
    def names(self) -> list[str]:
        """The column names, in signature order."""
        return [c.name for c in self.columns]

    def parse_body(self, body: bytes | str, max_rows: int) -> pd.DataFrame:
        """A DataFrame of the signature's columns from a JSON request body.

        Raises RequestValidationError naming the field: status 400 (field ``body``) when the
        body cannot be decoded into rows, 413 for more than ``max_rows`` rows, 422 when a value
        breaks the signature.
        """
        payload = _decode(body)
        try:
            return self._parse(payload, max_rows)
        except RequestValidationError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # What the checks above did not foresee (e.g. datetimes pandas cannot put in one
            # column) is still the body's fault, never a server error.
            raise RequestValidationError(
                "body", f"cannot be turned into rows: {type(exc).__name__}: {exc}", 400
            ) from exc

    def _parse(self, payload: Any, max_rows: int) -> pd.DataFrame:
        if isinstance(payload, list):
            return self._parse_records(payload, "records", max_rows)
        if not isinstance(payload, dict):
            raise RequestValidationError(
                "body",
                f"expected a JSON object with 'records' or 'columns' (or a list of records), "
                f"got {_json_type(payload)}",
            )
        if "records" in payload and "columns" in payload:
            raise RequestValidationError("body", "give either 'records' or 'columns', not both")
        if "records" in payload:
            records = payload["records"]
            if not isinstance(records, list):
                raise RequestValidationError(
                    "records", f"expected a list of objects, got {_json_type(records)}"
                )
            return self._parse_records(records, "records", max_rows)
        if "columns" in payload:
            return self._parse_columns(payload["columns"], max_rows)
        raise RequestValidationError(
            "body", "expected a key 'records' (list of objects) or 'columns' (object of lists)"
        )

    def _parse_records(self, records: list[Any], where: str, max_rows: int) -> pd.DataFrame:
        _check_size(len(records), where, max_rows)
        for i, row in enumerate(records):
            if not isinstance(row, dict):
                raise RequestValidationError(
                    f"{where}[{i}]", f"expected an object, got {_json_type(row)}"
                )
        data: dict[str, Any] = {}
        for col in self.columns:
            values = [row.get(col.name, _MISSING) for row in records]
            data[col.name] = _column(col, values, (f"{where}[", f"].{col.name}"))
        return _frame(data)

    def _parse_columns(self, columns: Any, max_rows: int) -> pd.DataFrame:
        if not isinstance(columns, dict):
            raise RequestValidationError(
                "columns", f"expected an object of lists, got {_json_type(columns)}"
            )
        n_rows = 0
        for i, (name, values) in enumerate(columns.items()):
            if not isinstance(values, list):
                raise RequestValidationError(
                    f"columns.{name}", f"expected a list, got {_json_type(values)}"
                )
            if i == 0:
                n_rows = len(values)
            elif len(values) != n_rows:
                raise RequestValidationError(
                    f"columns.{name}", f"has {len(values)} values, other columns have {n_rows}"
                )
        _check_size(n_rows, "columns", max_rows)
        data: dict[str, Any] = {}
        for col in self.columns:
            if col.name not in columns:
                if col.required:
                    raise RequestValidationError(f"columns.{col.name}", "missing required field")
                values = [None] * n_rows
            else:
                values = columns[col.name]
            data[col.name] = _column(col, values, (f"columns.{col.name}[", "]"))
        return _frame(data)


def _frame(data: dict[str, Any]) -> pd.DataFrame:
    """The request's DataFrame of the column arrays in ``data``, not copied."""
    # Plain arrays, no per-column Series: this runs on the request path (~0.5 ms saved).
    return pd.DataFrame(data, copy=False)


def _too_large(size: int | None, max_bytes: int) -> RequestValidationError:
    """The 413 of a body of ``size`` bytes (None: a chunked body, not read to its end)."""
    seen = f"{size} bytes, more" if size is not None else "more bytes"
    return RequestValidationError(
        "body",
        f"has {seen} than the limit of {max_bytes} (MLOPS_SERVE_MAX_BODY_BYTES); "
        "send fewer rows per request",
        413,
    )


async def read_body(
    body: bytes | AsyncIterable[bytes], declared_length: str | None, max_bytes: int
) -> bytes:
    """The request body, refused before it is parsed when it has more than ``max_bytes``
    bytes: at once by its ``declared_length`` (the ``Content-Length`` header), else as soon as
    the chunks read pass the limit (a chunked body has no length). Raises
    RequestValidationError (413, field ``body``)."""
    if (
        declared_length is not None
        and declared_length.strip().isdigit()
        and int(declared_length) > max_bytes
    ):
        raise _too_large(int(declared_length), max_bytes)
    if isinstance(body, bytes):
        if len(body) > max_bytes:
            raise _too_large(len(body), max_bytes)
        return body
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(None, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes | str) -> Any:
    """The decoded JSON of ``body``; raises RequestValidationError (400, ``body``)."""
    if not body or not body.strip():
        raise RequestValidationError("body", "empty body; send a JSON object or list", 400)
    try:
        text = body.decode(json.detect_encoding(body)) if isinstance(body, bytes) else body
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RequestValidationError("body", f"malformed JSON: {exc}", 400) from exc
    except UnicodeDecodeError as exc:
        raise RequestValidationError("body", f"not UTF-8 text: {exc}", 400) from exc
    except RecursionError as exc:
        raise RequestValidationError(
            "body", "nested too deeply to decode; send records or columns of plain values", 400
        ) from exc
    except ValueError as exc:  # Python's limit on the digits of an integer
        raise RequestValidationError("body", f"cannot be decoded: {exc}", 400) from exc


_MISSING: Any = object()  # a field absent from its record (unlike null, a value)


def _json_type(value: Any) -> str:
    """The JSON type of the decoded JSON ``value``, for a message ("a number", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"  # the one JSON type left


def _check_size(n_rows: int, where: str, max_rows: int) -> None:
    if n_rows == 0:
        raise RequestValidationError(where, "is empty; send at least one row")
    if n_rows > max_rows:
        raise RequestValidationError(
            where,
            f"has {n_rows} rows, more than the limit of {max_rows} (MLOPS_SERVE_MAX_ROWS)",
            413,
        )


def _column(col: ColumnSpec, values: list[Any], where: tuple[str, str]) -> Any:
    """The array of column ``col`` from its request ``values``; raises RequestValidationError
    naming the row (``where``: the text before and after the row index)."""
    fast = _FAST_TYPES.get(col.type)
    if fast is not None and all(type(v) in fast for v in values):
        try:
            array = _array(col, values)
        except OverflowError:  # an integer beyond float64 / int64: the checks name the row
            pass
        else:
            if col.type not in _FLOATING or np.isfinite(array).all():
                return array
    return _array(col, _check_values(col, values, where))


def _array(col: ColumnSpec, values: list[Any]) -> Any:
    if col.type in _FLOATING:
        return np.array(values, dtype="float64")
    if col.type in _INTEGER:
        return np.array(values, dtype="float64" if None in values else "int64")
    if col.type == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    if None in values:
        # Missing text as NaN, as training and batch scoring read it
        # (data.normalize_missing): scikit-learn's encoders tell None from NaN.
        return np.array([np.nan if v is None else v for v in values], dtype=object)
    return np.array(values, dtype=object)


def _check_values(col: ColumnSpec, values: list[Any], where: tuple[str, str]) -> list[Any]:
    """``values`` checked against ``col`` (missing → None where allowed)."""
    out: list[Any] = []
    for i, v in enumerate(values):
        if v is _MISSING:
            if col.required:
                raise RequestValidationError(f"{where[0]}{i}{where[1]}", "missing required field")
            out.append(None)
            continue
        if v is None:
            if col.required and not col.numeric:
                raise RequestValidationError(
                    f"{where[0]}{i}{where[1]}", f"null is not allowed ({col.type} required)"
                )
            out.append(None)
            continue
        out.append(_check_value(col.type, v, f"{where[0]}{i}{where[1]}"))
    return out


def _check_value(kind: str, v: Any, where: str) -> Any:
    if kind in _NUMERIC and isinstance(v, float) and not math.isfinite(v):
        raise RequestValidationError(where, f"expected a finite number ({kind}), got {v}")
    if kind in _FLOATING:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RequestValidationError(where, f"expected a number ({kind}), got {_json_type(v)}")
        if isinstance(v, int):
            try:
                float(v)
            except OverflowError:
                raise RequestValidationError(
                    where, f"expected a finite number ({kind}), got an integer beyond its range"
                ) from None
        return v
    if kind in _INTEGER:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise RequestValidationError(
                where, f"expected an integer ({kind}), got {_json_type(v)}"
            )
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise RequestValidationError(
                where, f"expected an integer ({kind}) from -2**63 to 2**63-1, got a larger one"
            )
        return v
    if kind == "boolean":
        if not isinstance(v, bool):
            raise RequestValidationError(where, f"expected a boolean, got {_json_type(v)}")
        return v
    if kind == "datetime":
        if not isinstance(v, str):
            raise RequestValidationError(
                where, f"expected an ISO-8601 datetime string, got {_json_type(v)}"
            )
        try:
            pd.Timestamp(v)
        except ValueError as exc:
            raise RequestValidationError(where, f"unparseable datetime {v!r}") from exc
        return v
    if kind == "string":
        if not isinstance(v, str):
            raise RequestValidationError(where, f"expected a string, got {_json_type(v)}")
        return v
    return v  # binary and other types: passed through
