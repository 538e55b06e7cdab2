"""Schema skew (``monitoring.skew``): the window's columns against the model's features, and
the version's expectation suite (run with real GX) over the features it has."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from prefect_mlops.monitoring.skew import SkewFinding, SkewResult, check_skew, serving_suite

FEATURES = ["age", "plan"]


def _expectation(kind: str, column: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": {**({"column": column} if column else {}), **kwargs}}


SUITE: dict[str, Any] = {
    "name": "churn-suite",
    "expectations": [
        _expectation("expect_table_row_count_to_be_between", min_value=1),
        _expectation("expect_column_values_to_not_be_null", "age", mostly=0.9),
        _expectation("expect_column_values_to_be_in_set", "plan", value_set=["a", "b"]),
        _expectation("expect_column_values_to_not_be_null", "churned"),  # the target
        _expectation("expect_column_values_to_not_be_null", "event_ts"),  # the timestamp
    ],
}


def _window(**columns: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(columns)


# -- serving_suite --------------------------------------------------------------------------


def test_serving_suite_keeps_the_features_and_table_expectations_only() -> None:
    kept = serving_suite(SUITE, FEATURES)
    assert kept["name"] == "churn-suite"
    assert [(e["type"], e["kwargs"].get("column")) for e in kept["expectations"]] == [
        ("expect_table_row_count_to_be_between", None),
        ("expect_column_values_to_not_be_null", "age"),
        ("expect_column_values_to_be_in_set", "plan"),
    ]
    assert len(SUITE["expectations"]) == 5  # the given suite is left as it was


def test_serving_suite_of_one_column_and_of_none() -> None:
    assert [e["kwargs"].get("column") for e in serving_suite(SUITE, ["plan"])["expectations"]] == [
        None,
        "plan",
    ]
    assert serving_suite({"name": "s"}, FEATURES) == {"name": "s", "expectations": []}


# -- check_skew: columns --------------------------------------------------------------------


def test_a_missing_and_an_unexpected_column_are_skew_without_a_suite() -> None:
    result = check_skew(_window(age=[30, 40], coupon=["x", "y"]), None, FEATURES)
    assert result.missing_columns == ["plan"]
    assert result.unexpected_columns == ["coupon"]
    assert result.skewed and result.findings == [] and result.evaluated == 0
    assert result.error is not None and "no expectation suite" in result.error


def test_matching_columns_without_a_suite_are_no_skew_but_say_why_not_checked() -> None:
    result = check_skew(_window(age=[30], plan=["a"]), None, FEATURES)
    assert not result.skewed
    assert result.error == "the version has no expectation suite: only the columns were compared"


# -- check_skew: with a suite (real GX) -----------------------------------------------------


def test_clean_window_passes_the_suite_over_the_features() -> None:
    result = check_skew(_window(age=[30, 41, 52], plan=["a", "b", "a"]), SUITE, FEATURES)
    assert not result.skewed, [f.describe() for f in result.findings]
    assert result.evaluated == 3  # target and timestamp expectations left out
    assert result.error is None


def test_a_null_rate_above_the_suite_is_a_finding_naming_the_column() -> None:
    window = _window(age=[30.0, None, None, 41.0], plan=["a", "b", "a", "b"])
    result = check_skew(window, SUITE, FEATURES, data_name="serving window of m v1")
    (finding,) = result.findings
    assert finding.column == "age"
    assert finding.check == "expect_column_values_to_not_be_null"
    assert "50.0%" in finding.details
    assert finding.describe().startswith("column 'age': expect_column_values_to_not_be_null — ")
    assert result.skewed and result.missing_columns == [] and result.unexpected_columns == []


def test_a_missing_column_skips_its_expectations_and_the_rest_run() -> None:
    result = check_skew(_window(plan=["a", "z"]), SUITE, FEATURES)
    assert result.missing_columns == ["age"]
    assert [(f.column, f.check) for f in result.findings] == [
        ("plan", "expect_column_values_to_be_in_set")
    ]
    assert result.evaluated == 2  # the row count and the plan domain


def test_a_suite_gx_refuses_is_reported_not_raised() -> None:
    bad = {"name": "s", "expectations": [_expectation("expect_no_such_thing", "age")]}
    result = check_skew(_window(age=[1], plan=["a"]), bad, FEATURES)
    assert result.error is not None and result.error.startswith(
        "the version's expectation suite cannot be run: "
    )
    assert "expect_no_such_thing" in result.error
    assert not result.skewed and result.evaluated == 0


# -- the result -----------------------------------------------------------------------------


def test_skew_result_to_dict_carries_the_verdict() -> None:
    result = SkewResult(
        evaluated=2,
        findings=[SkewFinding(None, "expect_table_row_count_to_be_between", "0", "no rows")],
    )
    data = result.to_dict()
    assert data["skewed"] is True and data["evaluated"] == 2
    assert data["findings"][0]["check"] == "expect_table_row_count_to_be_between"
    assert result.findings[0].describe() == "table: expect_table_row_count_to_be_between — no rows"
    assert SkewResult(evaluated=1).to_dict()["skewed"] is False


@pytest.mark.parametrize(
    ("missing", "unexpected"), [(["a"], []), ([], ["b"])], ids=["missing", "unexpected"]
)
def test_a_column_difference_alone_is_skew(missing: list[str], unexpected: list[str]) -> None:
    assert SkewResult(0, missing_columns=missing, unexpected_columns=unexpected).skewed
