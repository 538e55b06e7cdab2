"""The request schema per signature type (docs/serving.md, "The body"): what a model's MLflow
signature turns into, and how ``boolean``, ``datetime`` and ``long`` columns accept and refuse
values, by name, on both the records and the columns shape."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

from prefect_mlops.errors import ModelLoadError, RequestValidationError
from prefect_mlops.serving.schema import InputSchema

# A customer: is the account active, when did it sign up (optional), how many calls.
TYPED = InputSchema.from_signature(
    ModelSignature(
        inputs=Schema(
            [
                ColSpec(DataType.boolean, "active"),
                ColSpec(DataType.datetime, "signed_up", required=False),
                ColSpec(DataType.long, "calls"),
            ]
        )
    )
)
ROW: dict[str, Any] = {"active": True, "signed_up": "2024-03-01T10:30:00", "calls": 2}


def _shapes(rows: list[dict[str, Any]]) -> list[Any]:
    """The same rows as records, as a bare list and as columns."""
    return [{"records": rows}, rows, {"columns": {k: [r.get(k) for r in rows] for k in ROW}}]


def _error(body: Any, schema: InputSchema = TYPED) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        schema.parse_body(json.dumps(body), 100)
    return info.value


# --- from_signature ----------------------------------------------------------------------------


def test_the_signature_columns_keep_their_names_types_and_optionality() -> None:
    assert [(c.name, c.type, c.required) for c in TYPED.columns] == [
        ("active", "boolean", True),
        ("signed_up", "datetime", False),
        ("calls", "long", True),
    ]


def test_a_list_column_keeps_mlflows_type_name() -> None:
    """MLflow's array types have no DataType name: the column's type is MLflow's text."""
    schema = InputSchema.from_signature(
        ModelSignature(inputs=Schema([ColSpec(Array(DataType.long), "basket")]))
    )
    assert schema.columns[0].type == "Array(long)"


@pytest.mark.parametrize(
    "signature",
    [None, ModelSignature(inputs=None, outputs=Schema([ColSpec(DataType.double, "y")]))],
    ids=["no-signature", "outputs-only"],
)
def test_a_model_without_an_input_signature_cannot_be_served(signature: Any) -> None:
    with pytest.raises(ModelLoadError) as info:
        InputSchema.from_signature(signature)
    assert str(info.value) == "the model has no input signature; log it with one"


def test_a_tensor_signature_cannot_be_served() -> None:
    tensors = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 3))]))
    with pytest.raises(ModelLoadError) as info:
        InputSchema.from_signature(tensors)
    assert str(info.value) == "the model signature is tensor-based; column names needed"


# --- boolean and datetime columns -------------------------------------------------------------


@pytest.mark.parametrize("shape", [0, 1, 2], ids=["records", "bare-list", "columns"])
def test_booleans_and_iso_datetimes_are_parsed(shape: int) -> None:
    rows = [ROW, {**ROW, "active": False, "signed_up": "2024-03-02T00:00:00"}]
    frame = TYPED.parse_body(json.dumps(_shapes(rows)[shape]), 10)
    assert frame["active"].tolist() == [True, False]
    assert frame["signed_up"].dtype == "datetime64[ns]"
    assert frame["signed_up"].tolist() == [
        pd.Timestamp("2024-03-01 10:30"),
        pd.Timestamp("2024-03-02"),
    ]


def test_an_optional_datetime_may_be_null_or_absent() -> None:
    rows = [{k: v for k, v in ROW.items() if k != "signed_up"}, {**ROW, "signed_up": None}, ROW]
    frame = TYPED.parse_body(json.dumps(rows), 10)
    assert frame["signed_up"].isna().tolist() == [True, True, False]
    assert frame["signed_up"].iloc[2] == pd.Timestamp("2024-03-01 10:30")


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"active": 1}, "active", "expected a boolean, got a number"),
        ({"active": "true"}, "active", "expected a boolean, got a string"),
        ({"active": None}, "active", "null is not allowed (boolean required)"),
        (
            {"signed_up": 20240301},
            "signed_up",
            "expected an ISO-8601 datetime string, got a number",
        ),
        ({"signed_up": True}, "signed_up", "expected an ISO-8601 datetime string, got a boolean"),
        ({"signed_up": "last tuesday"}, "signed_up", "unparseable datetime 'last tuesday'"),
    ],
)
def test_a_bad_boolean_or_datetime_is_named(row: dict[str, Any], field: str, problem: str) -> None:
    """Row 1 is the bad one, on the records and on the columns shape."""
    records, _, columns = _shapes([ROW, {**ROW, **row}])
    for body, where in ((records, f"records[1].{field}"), (columns, f"columns.{field}[1]")):
        err = _error(body)
        assert (err.field, err.problem, err.status) == (where, problem, 422)


def test_a_datetime_pandas_cannot_hold_is_a_400_naming_body_not_a_server_error() -> None:
    """Year 3000 is a valid ISO-8601 date beyond pandas' nanosecond datetimes: the body cannot
    become rows, and the answer says which exception."""
    err = _error([{**ROW, "signed_up": "3000-01-01"}])
    assert (err.field, err.status) == ("body", 400)
    assert err.problem.startswith("cannot be turned into rows: OutOfBoundsDatetime: ")
    assert "3000-01-01" in err.problem
    assert str(err) == f"body: {err.problem}"


# --- long columns: missing values and the int64 range -----------------------------------------


@pytest.mark.parametrize("shape", [0, 2], ids=["records", "columns"])
def test_a_missing_integer_makes_the_column_float_with_nan(shape: int) -> None:
    """A numeric column always allows null, required or not: the model's imputer sees NaN."""
    frame = TYPED.parse_body(json.dumps(_shapes([ROW, {**ROW, "calls": None}])[shape]), 10)
    assert frame["calls"].dtype == "float64"
    assert frame["calls"].iloc[0] == 2.0 and np.isnan(frame["calls"].iloc[1])


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63)], ids=["max", "min"])
@pytest.mark.parametrize("other", [2, None], ids=["fast-path", "general-path"])
def test_the_int64_bounds_are_accepted(value: int, other: int | None) -> None:
    """The documented range is inclusive, whether the column holds only integers or a null."""
    frame = TYPED.parse_body(json.dumps([{**ROW, "calls": other}, {**ROW, "calls": value}]), 10)
    assert frame["calls"].iloc[1] == value


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1], ids=["above", "below"])
@pytest.mark.parametrize("other", [2, None], ids=["fast-path", "general-path"])
def test_one_past_the_int64_bounds_is_refused(value: int, other: int | None) -> None:
    err = _error([{**ROW, "calls": other}, {**ROW, "calls": value}])
    assert (err.field, err.status) == ("records[1].calls", 422)
    assert err.problem == "expected an integer (long) from -2**63 to 2**63-1, got a larger one"


def test_iso_8601_datetimes_of_mixed_forms_are_accepted() -> None:
    """A date in one row and a date with a time in the next are both ISO 8601 (docs/serving.md);
    pandas guesses one format from the first value unless told ISO8601."""
    import numpy as np
    import pandas as pd

    from prefect_mlops.serving.schema import _array

    class Col:
        type = "datetime"

    values = ["2024-01-01", "2024-01-02T10:00", None, "2024-01-03T10:00:05.250"]
    out = _array(Col(), values)  # type: ignore[arg-type]
    assert list(out[:2]) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02 10:00")]
    assert out.isna().tolist() == [False, False, True, False]
    assert np.issubdtype(out.dtype, np.datetime64)
    assert out[3] == pd.Timestamp("2024-01-03 10:00:05.250")
