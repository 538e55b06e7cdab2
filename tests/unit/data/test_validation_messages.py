"""What people read of a failed validation (the one-line description of every kind of
failure) and what the run keeps (the GX result artifact), against the real GX context."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from prefect_mlops.data.validation import ValidationOutcome, validate_frame


def _exp(kind: str, /, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


FRAME = pd.DataFrame({"n": [1.0, 2.0, None, 50.0], "s": ["a", "b", None, "zz"], "k": [1, 2, 3, 4]})


def _only(expectation: dict[str, Any]) -> str:
    outcome = validate_frame(FRAME, {"name": "probe", "expectations": [expectation]})
    assert outcome.success is False and outcome.failed == 1
    (failure,) = outcome.failures
    return failure.describe()


@pytest.mark.parametrize(
    ("expectation", "line"),
    [
        (
            _exp("expect_column_values_to_be_between", column="n", min_value=0.5, max_value=10),
            "column 'n': expect_column_values_to_be_between failed — 33.3% of non-null rows (1) "
            "outside [0.5, 10], e.g. [50.0]",
        ),
        (
            _exp("expect_column_values_to_be_between", column="n", min_value=None, max_value=1.5),
            "column 'n': expect_column_values_to_be_between failed — 66.7% of non-null rows (2) "
            "outside [unbounded, 1.5], e.g. [2.0, 50.0]",
        ),
        (
            _exp("expect_column_values_to_be_between", column="k", min_value=2, mostly=0.9),
            "column 'k': expect_column_values_to_be_between failed — 25.0% of rows (1) "
            "outside [2, unbounded], e.g. [1] (allowed: 10.0%)",
        ),
        (
            _exp("expect_column_values_to_be_in_set", column="s", value_set=["a", "b"], mostly=0.9),
            "column 's': expect_column_values_to_be_in_set failed — 33.3% of non-null rows (1) "
            "outside the known set, e.g. ['zz'] (allowed: 10.0%)",
        ),
        (
            _exp("expect_column_values_to_not_be_null", column="s", mostly=0.95),
            "column 's': expect_column_values_to_not_be_null failed — 25.0% of rows (1) are null "
            "(allowed: 5.0%)",
        ),
        (
            _exp("expect_column_values_to_not_be_null", column="n"),
            "column 'n': expect_column_values_to_not_be_null failed — 25.0% of rows (1) are null",
        ),
        (
            _exp("expect_column_values_to_be_of_type", column="k", type_="float64"),
            "column 'k': expect_column_values_to_be_of_type failed — dtype int64 is not in one of "
            "[float64]; cast the column to the expected dtype or re-infer the suite",
        ),
        (
            _exp(
                "expect_column_values_to_be_in_type_list", column="s", type_list=["int64", "bool"]
            ),
            "column 's': expect_column_values_to_be_in_type_list failed — dtype object is not in "
            "one of [int64, bool]; 100.0% of non-null rows (3) hold str values, "
            "e.g. ['a', 'b', 'zz']; cast the column to the expected dtype or re-infer the suite",
        ),
        (
            _exp(
                "expect_column_values_to_be_in_type_list",
                column="s",
                type_list=["int8", "int16", "int32", "int64", "float32", "float64", "bool"],
            ),
            "column 's': expect_column_values_to_be_in_type_list failed — dtype object is not in "
            "one of [int8, int16, int32, int64, float32, float64, ...]; "
            "100.0% of non-null rows (3) hold str values, "
            "e.g. ['a', 'b', 'zz']; cast the column to the expected dtype or re-infer the suite",
        ),
        (
            _exp("expect_table_row_count_to_be_between", min_value=10),
            "table: expect_table_row_count_to_be_between failed — observed 4, "
            "expected {'min_value': 10}",
        ),
        (
            _exp("expect_column_values_to_match_regex", column="s", regex="^a$"),
            "column 's': expect_column_values_to_match_regex failed — 66.7% of non-null rows (2) "
            "unexpected, e.g. ['b', 'zz']",
        ),
        (
            _exp("expect_column_values_to_be_between", column="s", min_value=0, max_value=1),
            "column 's': expect_column_values_to_be_between could not be evaluated — Column "
            "values, min_value, and max_value must either be None or of the same type.",
        ),
    ],
    ids=[
        "between",
        "between-no-min",
        "between-no-max-mostly",
        "in-set-mostly",
        "not-null-mostly",
        "not-null",
        "of-type",
        "type-list",
        "type-list-long",
        "table-row-count",
        "regex",
        "raised",
    ],
)
def test_each_failure_reads_as_one_line_naming_column_observation_and_rule(
    expectation: dict[str, Any], line: str
) -> None:
    assert _only(expectation) == line


def test_a_type_family_is_named_by_family() -> None:
    from prefect_mlops.data.suites import TYPE_FAMILIES

    numeric = TYPE_FAMILIES["numeric"]
    line = _only(_exp("expect_column_values_to_be_in_type_list", column="s", type_list=numeric))
    assert f"dtype object is not in the numeric family ({', '.join(numeric[:4])}, ...);" in line


def test_failures_name_the_column_the_observation_and_the_type() -> None:
    outcome = validate_frame(
        FRAME,
        {
            "expectations": [
                _exp("expect_column_values_to_be_between", column="n", min_value=0, max_value=10),
                _exp("expect_column_values_to_be_of_type", column="k", type_="float64"),
                _exp("expect_table_row_count_to_be_between", min_value=10),
                _exp("expect_column_values_to_match_regex", column="s", regex="^a$"),
                _exp("expect_column_values_to_be_between", column="s", min_value=0, max_value=1),
            ]
        },
    )
    assert [(f.expectation_type, f.column, f.observed) for f in outcome.failures] == [
        ("expect_column_values_to_be_between", "n", "33.3% of non-null rows (1) out of range"),
        ("expect_column_values_to_be_of_type", "k", "int64"),
        ("expect_table_row_count_to_be_between", None, "4"),
        ("expect_column_values_to_match_regex", "s", "66.7% of non-null rows (2)"),
        ("expect_column_values_to_be_between", "s", "error"),
    ]


def test_a_missing_column_is_one_failure_listing_the_expectations_on_it() -> None:
    outcome = validate_frame(
        FRAME,
        {
            "expectations": [
                _exp("expect_column_values_to_not_be_null", column="gone"),
                _exp("expect_column_values_to_be_in_set", column="gone", value_set=[1]),
                _exp("expect_column_values_to_not_be_null", column="n"),
            ]
        },
    )
    assert (outcome.success, outcome.failed, outcome.evaluated) == (False, 3, 3)
    missing = outcome.failures[0]
    assert (missing.expectation_type, missing.column, missing.observed) == (
        "expect_column_to_exist",
        "gone",
        "column missing",
    )
    assert missing.details == (
        "the data has no column 'gone' (2 expectations on it failed: "
        "expect_column_values_to_be_in_set, expect_column_values_to_not_be_null); "
        "add it or re-infer the suite"
    )
    assert [f.column for f in outcome.failures] == ["gone", "n"]


def test_the_result_artifact_keeps_the_suites_own_meta_and_only_failure_details() -> None:
    suite = {
        "expectations": [
            {
                **_exp("expect_column_values_to_be_between", column="k", min_value=0),
                "meta": {"owner": "data-team"},
                "notes": "k is a count",
                "description": "k is never negative",
            },
            _exp("expect_column_values_to_be_between", column="n", min_value=0, max_value=10),
        ]
    }
    outcome = validate_frame(FRAME, suite)
    assert outcome.result["suite_name"] == "suite"  # the default name of an unnamed suite
    batch = outcome.result["meta"]["active_batch_definition"]
    assert (batch["datasource_name"], batch["data_asset_name"]) == ("prefect_mlops", "data")
    by_column = {r["expectation_config"]["kwargs"]["column"]: r for r in outcome.result["results"]}
    kept = by_column["k"]["expectation_config"]
    assert kept["meta"] == {"owner": "data-team"}  # no private bookkeeping left in it
    assert (kept["notes"], kept["description"]) == ("k is a count", "k is never negative")
    assert by_column["n"]["expectation_config"]["meta"] == {}
    # The passing expectation was checked without details, the failing one has them.
    assert by_column["k"]["success"] is True and by_column["k"]["result"] == {}
    assert by_column["n"]["result"]["unexpected_count"] == 1
    assert by_column["n"]["result"]["partial_unexpected_list"] == [50.0]


def test_a_passing_outcome_counts_no_failures_and_keeps_its_name() -> None:
    suite = {"name": "counts", "expectations": [_exp("expect_column_to_exist", column="k")]}
    outcome = validate_frame(FRAME, suite, data_name="scoring-input")
    assert (outcome.success, outcome.failed, outcome.evaluated) == (True, 0, 1)
    assert outcome.result["suite_name"] == "counts"
    assert outcome.result["meta"]["active_batch_definition"]["data_asset_name"] == "scoring-input"
    assert outcome.result["results"][0]["expectation_config"]["meta"] == {}
    assert ValidationOutcome(False, [], 1, {}).failed == 0


def test_a_fresh_context_is_ephemeral_quiet_and_sends_no_analytics(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first validation of a process builds GX's context: in memory (no ``gx/`` folder
    written where the run happens), without progress bars in the logs, analytics off unless
    the user set ``GX_ANALYTICS_ENABLED``."""
    from prefect_mlops.data.validation import _GX

    monkeypatch.setattr(_GX, "_state", None)
    monkeypatch.delenv("GX_ANALYTICS_ENABLED", raising=False)
    monkeypatch.chdir(tmp_path)
    suite = {"expectations": [_exp("expect_column_to_exist", column="k")]}
    assert validate_frame(FRAME, suite, data_name="fresh").success
    assert validate_frame(FRAME, suite, data_name="fresh").success  # the asset is reused
    assert list(tmp_path.iterdir()) == []
    import os

    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert _GX._state is not None
    _, context, datasource, definitions = _GX._state
    assert context.variables.progress_bars.globally is False
    assert datasource.name == "prefect_mlops"
    assert list(definitions) == ["fresh"]
    assert [a.name for a in datasource.assets] == ["fresh"]


# --- an expectation that raised --------------------------------------------------------------


def _describe(exception_info: dict[str, Any]) -> Any:
    from prefect_mlops.data.validation import describe_failure

    frame = pd.DataFrame({"age": [1, 2]})
    result = {"exception_info": exception_info, "result": {}}
    return describe_failure("expect_column_values_to_be_between", {"column": "age"}, result, frame)


@pytest.mark.parametrize(
    "exception_info",
    [
        # GX's top-level form and its per-metric form
        {"raised_exception": True, "exception_message": "boom: bad metric\ntraceback lines"},
        {
            "('column.max', 'age')": {
                "raised_exception": True,
                "exception_message": "boom: bad metric",
            }
        },
    ],
)
def test_an_expectation_that_raised_shows_the_first_line_of_its_error(
    exception_info: dict[str, Any],
) -> None:
    failure = _describe(exception_info)
    assert (failure.column, failure.observed, failure.details) == (
        "age",
        "error",
        "boom: bad metric",
    )


def test_an_expectation_that_did_not_raise_is_described_by_its_result() -> None:
    failure = _describe({"raised_exception": False, "exception_message": "not an error"})
    assert failure.observed != "error"
    assert "not an error" not in failure.details
