"""Request parsing against a real MLflow signature: the three body shapes, the value checks,
and every body that cannot become rows answering 400 naming ``body``, never a server error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_cases import ROW

from prefect_mlops.errors import MLOpsError, RequestValidationError
from prefect_mlops.serving.schema import InputSchema, read_body


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _error(schema: InputSchema, body: bytes | str, max_rows: int = 100) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        schema.parse_body(body, max_rows)
    assert isinstance(info.value, MLOpsError)
    return info.value


def test_signature_columns(schema: InputSchema) -> None:
    kinds = {c.name: (c.type, c.required) for c in schema.columns}
    assert kinds == {
        "tenure": ("double", True),
        "charges": ("double", False),
        "contract": ("string", True),
        "calls": ("long", True),
    }
    assert schema.names == ["tenure", "charges", "contract", "calls"]


def test_records_columns_and_bare_list_parse_alike(schema: InputSchema) -> None:
    rows = [ROW, {**ROW, "charges": None, "extra": "ignored"}]
    a = schema.parse_body(_body({"records": rows}), 100)
    b = schema.parse_body(_body(rows), 100)
    c = schema.parse_body(_body({"columns": {k: [r.get(k) for r in rows] for k in ROW}}), 100)
    d = schema.parse_body(_body({"records": rows}).decode(), 100)  # str bodies too
    for frame in (b, c, d):
        pd.testing.assert_frame_equal(a, frame)
    assert list(a.columns) == ["tenure", "charges", "contract", "calls"]
    assert a["tenure"].dtype == "float64"  # an integer for a double column is fine
    assert np.isnan(a.loc[1, "charges"])  # null = missing value
    assert a["calls"].dtype == "int64"


def test_optional_field_may_be_absent(schema: InputSchema) -> None:
    frame = schema.parse_body(_body([{k: v for k, v in ROW.items() if k != "charges"}]), 10)
    assert np.isnan(frame.loc[0, "charges"])


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        ([{**ROW, "tenure": "3"}], "records[0].tenure", "expected a number"),
        ([ROW, {**ROW, "contract": 5}], "records[1].contract", "expected a string"),
        ([ROW, {k: v for k, v in ROW.items() if k != "tenure"}], "records[1].tenure", "missing"),
        ([{**ROW, "contract": None}], "records[0].contract", "null is not allowed"),
        ([{**ROW, "calls": 2.5}], "records[0].calls", "expected an integer"),
        ([{**ROW, "tenure": True}], "records[0].tenure", "expected a number"),
        ([ROW, 7], "records[1]", "expected an object"),
        ({"records": []}, "records", "empty"),
        ([], "records", "empty"),
        ({"columns": {}}, "columns", "empty"),
        ({"records": {"a": 1}}, "records", "expected a list"),
        ({"columns": {"tenure": [1, 2], "charges": [1]}}, "columns.charges", "has 1 values"),
        ({"columns": {"tenure": [1], "charges": [1], "calls": [1]}}, "columns.contract", "missing"),
        ({"rows": []}, "body", "'records'"),
        ("text", "body", "got a string"),
        ({"records": [ROW], "columns": {}}, "body", "not both"),
    ],
)
def test_bad_requests_name_the_field(
    schema: InputSchema, payload: Any, field: str, problem: str
) -> None:
    err = _error(schema, _body(payload))
    assert err.field == field
    assert problem in err.problem
    assert err.status == 422
    assert field in str(err) and err.to_dict()["field"] == field


def test_unparseable_body_and_oversized_batch(schema: InputSchema) -> None:
    err = _error(schema, b'{"records": [')
    assert (err.field, err.status) == ("body", 400)
    assert "malformed JSON" in err.problem
    assert _error(schema, b"  ").status == 400
    assert _error(schema, b"").status == 400
    big = _error(schema, _body([ROW] * 11), max_rows=10)
    assert (big.field, big.status) == ("records", 413)
    assert "limit of 10" in big.problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'[{"tenure": ' + b"1" * 5000 + b"}]", "digits"),  # Python's int-digit limit
        (b"\xff\xfe\x00garbage", "body"),
        (b'[{"tenure": 1}]\xff', "body"),
    ],
    ids=["nested", "nested-records", "digits", "not-utf8", "trailing-byte"],
)
def test_bodies_that_cannot_become_rows_are_400_naming_body(
    schema: InputSchema, body: bytes, problem: str
) -> None:
    err = _error(schema, body)
    assert (err.field, err.status) == ("body", 400), err
    assert problem in str(err)


def test_nan_is_a_missing_value_like_null(schema: InputSchema) -> None:
    """``json.dumps`` of a pandas frame writes NaN for a missing value: text or number."""
    frame = pd.DataFrame(
        {
            "tenure": [1.0, np.nan],
            "charges": [np.nan, 2.0],
            "contract": ["one-year", "two-year"],
            "calls": [1, 2],
        }
    )
    text = json.dumps(frame.to_dict("records"))
    assert "NaN" in text
    parsed = schema.parse_body(text, 10)
    as_null = schema.parse_body(text.replace("NaN", "null"), 10)
    pd.testing.assert_frame_equal(parsed, as_null)
    assert np.isnan(parsed.loc[1, "tenure"]) and np.isnan(parsed.loc[0, "charges"])
    columns = schema.parse_body(json.dumps({"columns": frame.to_dict("list")}), 10)
    pd.testing.assert_frame_equal(parsed, columns)
    # Missing text: optional text behaves as null; required text refuses both alike.
    nan_text = _error(schema, json.dumps([{**ROW, "contract": float("nan")}]))
    null_text = _error(schema, json.dumps([{**ROW, "contract": None}]))
    assert nan_text.to_dict() == null_text.to_dict()
    assert "null is not allowed" in nan_text.problem


def test_missing_text_in_an_optional_column_is_nan() -> None:
    """A pandas ``to_dict("records")`` body with a missing text value (NaN) is a missing value
    where the signature allows one, not 'expected a string, got a number'."""
    from mlflow.models import infer_signature

    frame = pd.DataFrame({"plan": ["basic", np.nan, "plus"], "age": [1.0, 2.0, 3.0]})
    schema = InputSchema.from_signature(infer_signature(frame))
    assert [(c.name, c.required) for c in schema.columns] == [("plan", False), ("age", True)]
    text = json.dumps(frame.to_dict("records"))
    assert '"plan": NaN' in text
    parsed = schema.parse_body(text, 10)
    assert parsed.loc[0, "plan"] == "basic" and np.isnan(parsed.loc[1, "plan"])
    pd.testing.assert_frame_equal(parsed, schema.parse_body(text.replace("NaN", "null"), 10))


@pytest.mark.parametrize(
    ("value", "column", "problem"),
    [
        ("Infinity", "tenure", "finite number"),
        ("-Infinity", "tenure", "finite number"),
        ("1e400", "tenure", "finite number"),  # overflows to inf
        ("-1e400", "charges", "finite number"),
        ("Infinity", "calls", "finite number"),
        ("1" + "0" * 400, "tenure", "finite number"),  # an integer beyond float64
        ("1" + "0" * 30, "calls", "2**63"),  # an integer beyond int64
        ("1e30", "calls", "2**63"),  # an integral float beyond int64
    ],
)
@pytest.mark.parametrize("first", ["2", "null"], ids=["fast-path", "general-path"])
@pytest.mark.parametrize("shape", ["records", "columns"])
def test_non_finite_and_out_of_range_numbers_are_422_naming_the_field(
    schema: InputSchema, value: str, column: str, problem: str, first: str, shape: str
) -> None:
    """Row 0 holds ``first`` in ``column``: a number keeps the whole column on the fast path, a
    null sends it down the per-value checks. Either way row 1's ``value`` is refused by name."""
    rows = [{**ROW, column: "@first@"}, {**ROW, column: "@value@"}]
    if shape == "records":
        payload: Any = {"records": rows}
        field = f"records[1].{column}"
    else:
        payload = {"columns": {k: [r[k] for r in rows] for k in ROW}}
        field = f"columns.{column}[1]"
    body = json.dumps(payload).replace('"@first@"', first).replace('"@value@"', value)
    err = _error(schema, body)
    assert (err.field, err.status) == (field, 422), err
    assert problem in err.problem


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        ({"tenure": "3"}, "tenure", "expected a number (double), got a string"),
        ({"tenure": True}, "tenure", "expected a number (double), got a boolean"),
        ({"tenure": [1]}, "tenure", "expected a number (double), got a list"),
        ({"tenure": {"a": 1}}, "tenure", "expected a number (double), got an object"),
        ({"calls": 2.5}, "calls", "expected an integer (long), got a number"),
        ({"calls": True}, "calls", "expected an integer (long), got a boolean"),
        ({"calls": "2"}, "calls", "expected an integer (long), got a string"),
        (
            {"calls": 2**70},
            "calls",
            "expected an integer (long) from -2**63 to 2**63-1, got a larger one",
        ),
        (
            {"tenure": 10**400},
            "tenure",
            "expected a finite number (double), got an integer beyond its range",
        ),
        ({"contract": 5}, "contract", "expected a string, got a number"),
        ({"contract": False}, "contract", "expected a string, got a boolean"),
        ({"contract": ["a"]}, "contract", "expected a string, got a list"),
        ({"contract": None}, "contract", "null is not allowed (string required)"),
    ],
)
def test_each_bad_value_is_named_with_what_was_expected_and_what_came(
    schema: InputSchema, row: dict[str, Any], field: str, problem: str
) -> None:
    """The whole problem text, on both the records and the columns shape: a client reads it."""
    for body, where in (
        ({"records": [ROW, {**ROW, **row}]}, f"records[1].{field}"),
        ({"columns": {k: [ROW[k], {**ROW, **row}[k]] for k in ROW}}, f"columns.{field}[1]"),
    ):
        err = _error(schema, json.dumps(body).encode())
        assert (err.field, err.problem, err.status) == (where, problem, 422)
        assert str(err) == f"{where}: {problem}"


@pytest.mark.parametrize(
    ("columns", "field", "problem", "status"),
    [
        ([1, 2], "columns", "expected an object of lists, got a list", 422),
        ("tenure", "columns", "expected an object of lists, got a string", 422),
        ({"tenure": 3}, "columns.tenure", "expected a list, got a number", 422),
        (
            {"tenure": [1], "charges": {"a": 1}},
            "columns.charges",
            "expected a list, got an object",
            422,
        ),
        (
            {"tenure": [1, 2], "charges": [1, 2, 3]},
            "columns.charges",
            "has 3 values, other columns have 2",
            422,
        ),
        (
            {"tenure": [1, 2], "charges": [1, 2], "contract": ["a", "b"]},
            "columns.calls",
            "missing required field",
            422,
        ),
    ],
)
def test_a_bad_columns_body_is_named_exactly(
    schema: InputSchema, columns: Any, field: str, problem: str, status: int
) -> None:
    err = _error(schema, _body({"columns": columns}))
    assert (err.field, err.problem, err.status) == (field, problem, status)


def test_an_optional_column_left_out_of_the_columns_shape_is_missing_for_every_row(
    schema: InputSchema,
) -> None:
    frame = schema.parse_body(
        _body({"columns": {"tenure": [1, 2], "contract": ["a", "b"], "calls": [1, 2]}}), 10
    )
    assert frame["charges"].isna().tolist() == [True, True]
    assert list(frame.columns) == ["tenure", "charges", "contract", "calls"]
    assert len(frame) == 2


def test_the_columns_shape_counts_rows_against_the_limit(schema: InputSchema) -> None:
    columns = {k: [ROW[k]] * 11 for k in ROW}
    err = _error(schema, _body({"columns": columns}), max_rows=10)
    assert (err.field, err.status) == ("columns", 413)
    assert schema.parse_body(_body({"columns": {k: [ROW[k]] * 10 for k in ROW}}), 10).shape[0] == 10


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        (
            "text",
            "body",
            "expected a JSON object with 'records' or 'columns' (or a list of records), "
            "got a string",
        ),
        (
            None,
            "body",
            "expected a JSON object with 'records' or 'columns' (or a list of records), got null",
        ),
        ({"records": [ROW], "columns": {}}, "body", "give either 'records' or 'columns', not both"),
        (
            {"rows": [ROW]},
            "body",
            "expected a key 'records' (list of objects) or 'columns' (object of lists)",
        ),
        ({"records": None}, "records", "expected a list of objects, got null"),
        ({"records": {"tenure": 1}}, "records", "expected a list of objects, got an object"),
        ({"records": [ROW, 7]}, "records[1]", "expected an object, got a number"),
        ([ROW, None], "records[1]", "expected an object, got null"),
        ([ROW, [1, 2]], "records[1]", "expected an object, got a list"),
        ({"records": []}, "records", "is empty; send at least one row"),
        ({"columns": {}}, "columns", "is empty; send at least one row"),
        (
            [ROW, {k: v for k, v in ROW.items() if k != "tenure"}],
            "records[1].tenure",
            "missing required field",
        ),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_422_named_exactly(
    schema: InputSchema, payload: Any, field: str, problem: str
) -> None:
    """The JSON decodes but is not rows of the signature: the whole problem text, a client
    reads it (docs/serving.md, "Bodies that cannot become rows")."""
    err = _error(schema, _body(payload))
    assert (err.field, err.problem, err.status) == (field, problem, 422)


@pytest.mark.parametrize(
    "body", [b"", b"  \n\t", "", " "], ids=["empty", "blank", "str", "str-blank"]
)
def test_an_empty_or_blank_body_is_a_400_saying_what_to_send(
    schema: InputSchema, body: bytes | str
) -> None:
    err = _error(schema, body)
    assert (err.field, err.problem, err.status) == (
        "body",
        "empty body; send a JSON object or list",
        400,
    )


def test_a_body_that_is_not_utf8_is_a_400_saying_so(schema: InputSchema) -> None:
    err = _error(schema, b'[{"contract": "caf\xe9"}]')  # Latin-1, not UTF-8
    assert (err.field, err.status) == ("body", 400)
    assert err.problem.startswith("not UTF-8 text: 'utf-8' codec can't decode byte 0xe9")


def test_a_body_nested_too_deeply_is_a_400_saying_what_to_send(schema: InputSchema) -> None:
    err = _error(schema, b"[" * 100_000)
    assert (err.field, err.problem, err.status) == (
        "body",
        "nested too deeply to decode; send records or columns of plain values",
        400,
    )


def test_an_optional_field_absent_from_some_records_is_missing_only_there(
    schema: InputSchema,
) -> None:
    no_charges = {k: v for k, v in ROW.items() if k != "charges"}
    frame = schema.parse_body(_body([no_charges, ROW, no_charges]), 10)
    assert frame["charges"].isna().tolist() == [True, False, True]
    assert frame.loc[1, "charges"] == ROW["charges"]
    assert frame["tenure"].tolist() == [3.0, 3.0, 3.0]


def test_a_whole_body_over_the_byte_limit_names_its_size_and_the_setting() -> None:
    """A body already read whole (no Content-Length to refuse it by) is measured itself."""
    with pytest.raises(RequestValidationError) as refused:
        asyncio.run(read_body(b"x" * 11, None, 10))
    err = refused.value
    assert (err.field, err.status) == ("body", 413)
    assert err.problem == (
        "has 11 bytes, more than the limit of 10 (MLOPS_SERVE_MAX_BODY_BYTES); "
        "send fewer rows per request"
    )
