"""Great Expectations validation: suite inference, suite files, corruptions, reports.

Runs the real GX ephemeral context; its import and construction are paid once per session.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import TrainingConfig, ValidationConfig
from prefect_mlops.data.suites import choose_suite, infer_suite, load_suite, reference_snapshot
from prefect_mlops.data.validation import ExpectationFailure, ValidationOutcome, validate_frame
from prefect_mlops.data.validation_report import (
    expectation_rows,
    failures_markdown,
    raise_for_failures,
)
from prefect_mlops.errors import ConfigError, DataValidationError

N = 200


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, N),
            "monthly_charges": rng.uniform(20, 120, N).round(2),
            "payment_method": rng.choice(["card", "bank", "check"], N),
            "senior": rng.random(N) < 0.2,
            "signup": pd.date_range("2024-01-01", periods=N, freq="D"),
            "customer_id": [f"c{i:04d}" for i in range(N)],
        }
    )


@pytest.fixture(scope="module")
def suite(reference: pd.DataFrame) -> dict:
    return infer_suite(reference, ValidationConfig(), "churn")


@pytest.fixture(scope="module", autouse=True)
def _warm_gx(reference: pd.DataFrame, suite: dict) -> None:
    """Pay the GX import + context cost once for the module."""
    validate_frame(reference.head(5), suite)


def _failed_columns(outcome: ValidationOutcome) -> set[str | None]:
    return {f.column for f in outcome.failures}


def _types(suite: dict) -> dict[tuple[str, str | None], dict]:
    return {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}


def test_inferred_suite_shape(suite: dict) -> None:
    kinds = _types(suite)
    assert suite["name"] == "churn"
    assert ("expect_table_row_count_to_be_between", None) in kinds
    assert kinds[("expect_column_values_to_be_in_set", "payment_method")]["value_set"] == [
        "bank",
        "card",
        "check",
    ]
    assert ("expect_column_values_to_be_in_set", "customer_id") not in kinds  # > max_categories
    between = kinds[("expect_column_values_to_be_between", "tenure")]
    assert between["min_value"] < 1 and between["max_value"] > 70
    assert ("expect_column_values_to_be_between", "senior") not in kinds  # bool: no range
    assert ("expect_column_values_to_be_between", "signup") not in kinds  # datetime: type only
    assert "float64" in kinds[("expect_column_values_to_be_in_type_list", "tenure")]["type_list"]
    assert kinds[("expect_column_values_to_not_be_null", "tenure")]["mostly"] == 0.95
    json.dumps(suite)  # JSON-able


def test_columns_limit_and_unknown_column(reference: pd.DataFrame) -> None:
    limited = infer_suite(reference, ValidationConfig(), "s", columns=["tenure"])
    assert {e["kwargs"].get("column") for e in limited["expectations"]} == {None, "tenure"}
    with pytest.raises(ConfigError, match="nope"):
        infer_suite(reference, ValidationConfig(), "s", columns=["nope"])


def test_nullability_skipped_when_mostly_not_positive() -> None:
    frame = pd.DataFrame({"x": [1.0, None, None, None]})
    suite = infer_suite(frame, ValidationConfig(null_tolerance=0.3), "s")
    assert ("expect_column_values_to_not_be_null", "x") not in _types(suite)


def test_clean_frame_passes(reference: pd.DataFrame, suite: dict) -> None:
    outcome = validate_frame(reference, suite, data_name="reference")
    assert outcome.success, [f.describe() for f in outcome.failures]
    assert outcome.failures == []
    assert outcome.evaluated == len(suite["expectations"])
    assert outcome.result["success"] is True
    json.dumps(outcome.result)
    raise_for_failures(outcome, "reference")  # no error
    assert f"All {outcome.evaluated} expectations passed" in failures_markdown(outcome, "ref")


def test_int_column_with_nans_reads_back_as_float(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.copy()
    frame["tenure"] = frame["tenure"].astype("float64")
    frame.loc[0, "tenure"] = np.nan
    assert validate_frame(frame, suite).success


def test_missing_column(reference: pd.DataFrame, suite: dict) -> None:
    outcome = validate_frame(reference.drop(columns=["monthly_charges"]), suite)
    assert not outcome.success
    assert _failed_columns(outcome) == {"monthly_charges"}
    assert outcome.failures[0].describe() == "column 'monthly_charges' is missing from the data"
    assert outcome.failed >= 2  # exists + type + nullability + range all fail on it


def test_numbers_as_strings(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.copy()
    frame["tenure"] = frame["tenure"].astype(str)
    outcome = validate_frame(frame, suite)
    assert "tenure" in _failed_columns(outcome)
    type_failure = next(f for f in outcome.failures if f.expectation_type.endswith("in_type_list"))
    assert type_failure.column == "tenure"
    assert type_failure.observed == "object"
    assert "numeric" in type_failure.describe()


def test_null_burst(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.copy()
    frame.loc[frame.index[: int(0.4 * N)], "monthly_charges"] = np.nan
    outcome = validate_frame(frame, suite)
    assert _failed_columns(outcome) == {"monthly_charges"}
    (failure,) = outcome.failures
    assert failure.expectation_type == "expect_column_values_to_not_be_null"
    assert "40.0% of rows (80) are null" in failure.describe()


def test_unseen_category_beyond_tolerance(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.copy()
    frame.loc[frame.index[:40], "payment_method"] = "crypto"
    outcome = validate_frame(frame, suite)
    assert _failed_columns(outcome) == {"payment_method"}
    line = outcome.failures[0].describe()
    assert line.startswith("column 'payment_method': expect_column_values_to_be_in_set failed")
    assert "20.0% of rows (40) outside the known set, e.g. ['crypto']" in line


def test_unseen_category_within_tolerance(reference: pd.DataFrame) -> None:
    loose = infer_suite(reference, ValidationConfig(unseen_category_tolerance=0.05), "loose")
    frame = reference.copy()
    frame.loc[frame.index[:2], "payment_method"] = "crypto"  # 1 % of rows
    assert validate_frame(frame, loose).success


def test_out_of_range(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.copy()
    frame.loc[frame.index[:3], "monthly_charges"] = 10_000.0
    outcome = validate_frame(frame, suite)
    assert _failed_columns(outcome) == {"monthly_charges"}
    assert "10000.0" in outcome.failures[0].describe()
    # The GX result keeps the SUMMARY detail of the failure for the artifact.
    failed = [r for r in outcome.result["results"] if not r["success"]]
    assert failed[0]["result"]["unexpected_count"] == 3
    json.dumps(outcome.result)


def test_raise_for_failures_names_every_column(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.drop(columns=["senior"])
    frame["tenure"] = frame["tenure"] + 1000
    frame.loc[frame.index[:100], "payment_method"] = "crypto"
    outcome = validate_frame(frame, suite)
    with pytest.raises(DataValidationError) as info:
        raise_for_failures(outcome, "data.csv")
    message = str(info.value)
    assert message.startswith(
        f"data validation failed for data.csv: {outcome.failed} of {outcome.evaluated} "
        "expectations failed"
    )
    for column in ("senior", "tenure", "payment_method"):
        assert f"'{column}'" in message
    assert len(info.value.failures) == len(outcome.failures) == 3
    report = failures_markdown(outcome, "data.csv")
    assert "| expectation | column | observed |" in report.replace(" details |", "")
    assert "payment_method" in report


def test_suite_round_trips_through_file(tmp_path, reference: pd.DataFrame, suite: dict) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    loaded = load_suite(path)
    assert loaded == suite
    assert validate_frame(reference, loaded).success


def test_load_suite_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.json"):
        load_suite(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json.*not valid JSON"):
        load_suite(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"foo": 1}))
    with pytest.raises(ConfigError, match=r"wrong\.json.*not a GX expectation suite"):
        load_suite(wrong)


def test_unknown_expectation_type_is_config_error(reference: pd.DataFrame) -> None:
    suite = {"name": "x", "expectations": [{"type": "expect_magic", "kwargs": {}}]}
    with pytest.raises(ConfigError, match="expect_magic"):
        validate_frame(reference, suite)


def test_describe_one_liners() -> None:
    failure = ExpectationFailure("expect_table_row_count_to_be_between", None, "0", "observed 0")
    assert failure.describe() == "table: expect_table_row_count_to_be_between failed — observed 0"


def _training_config(**validation: object) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {
            "model_name": "churn",
            "data": {"path": "unused.csv"},
            "target": "senior",
            "id_column": "customer_id",
            "validation": validation,
        }
    )


def test_choose_suite_infers_from_the_reference_without_the_id(reference: pd.DataFrame) -> None:
    current = reference.head(5).copy()
    suite = choose_suite(_training_config(), current, reference)
    columns = {e["kwargs"].get("column") for e in suite["expectations"]} - {None}
    assert columns == {"tenure", "monthly_charges", "payment_method", "senior", "signup"}
    assert suite["meta"]["prefect_mlops"]["inferred_from_rows"] == N
    # Without a reference the run's own data is the reference.
    assert (
        choose_suite(_training_config(), current, None)["meta"]["prefect_mlops"][
            "inferred_from_rows"
        ]
        == 5
    )


def test_choose_suite_prefers_the_users_file(tmp_path, reference: pd.DataFrame) -> None:
    path = tmp_path / "mine.json"
    mine = {
        "name": "mine",
        "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "tenure"}}],
    }
    path.write_text(json.dumps(mine))
    suite = choose_suite(_training_config(suite_path=str(path)), reference, reference)
    assert suite["name"] == "mine" and len(suite["expectations"]) == 1


def test_reference_snapshot_by_setting(tmp_path) -> None:
    existing = tmp_path / "snap.parquet"
    existing.write_bytes(b"")
    assert reference_snapshot(None, str(existing)) is None
    assert reference_snapshot("champion", str(existing)) == str(existing)
    assert reference_snapshot("champion", str(tmp_path / "gone.parquet")) is None
    assert reference_snapshot("champion", None) is None
    assert reference_snapshot("/data/ref.parquet", str(existing)) == "/data/ref.parquet"


def test_expectation_rows_list_every_expectation(reference: pd.DataFrame, suite: dict) -> None:
    frame = reference.drop(columns=["senior"])
    frame.loc[frame.index[:100], "payment_method"] = "crypto"
    outcome = validate_frame(frame, suite)
    rows = expectation_rows(outcome)
    assert len(rows) == outcome.evaluated == len(suite["expectations"])
    failed = [r for r in rows if r["result"] == "FAIL"]
    assert len(failed) == outcome.failed
    assert rows[: len(failed)] == failed  # failures first
    assert {r["column"] for r in failed} == {"senior", "payment_method"}
    in_set = next(r for r in failed if r["column"] == "payment_method")
    assert in_set["rule"] == "3 known values, mostly 99%"
    assert "outside the known set" in in_set["details"]
    table = next(r for r in rows if r["column"] == "(table)")
    assert table == {
        "expectation": "expect_table_row_count_to_be_between",
        "column": "(table)",
        "rule": "at least 1 row",
        "result": "pass",
        "details": "",
    }
