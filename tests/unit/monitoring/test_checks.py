"""The monitoring glue (``monitoring.checks``) on tiny frames: the window as the profile names
it, the checks' wiring (overrides, shadow rows, quality availability), the result folded from
real check results, and the words, tables and keys the flow shows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.config import DriftOverride, MonitoringConfig
from prefect_mlops.errors import ConfigError
from prefect_mlops.monitoring import checks
from prefect_mlops.monitoring.profile import ReferenceProfile, build_profile
from prefect_mlops.monitoring.reference import Reference
from prefect_mlops.monitoring.runner import MonitoringResult, MonitoringTarget
from prefect_mlops.monitoring.skew import check_skew
from prefect_mlops.serving.log import RequestRecord, typed_frame

START = datetime(2026, 6, 1, tzinfo=UTC)
END = START + timedelta(hours=1)
TARGET = MonitoringTarget("churn", "2", "run-1", {"mlops.task": "classification"}, None)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    """60 reference rows: ``age`` numeric, ``plan`` categorical, predictions and probabilities."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 60), "plan": ["a", "b", "c"] * 20})
    p1 = rng.uniform(0, 1, 60)
    return build_profile(
        frame,
        numeric=["age"],
        categorical=["plan"],
        predictions=pd.Series((p1 > 0.5).astype(int)),
        probabilities=pd.DataFrame({"0": 1 - p1, "1": p1}),
        task="classification",
    )


def _request(
    ages: list[Any],
    plans: list[str],
    *,
    variant: str = "champion",
    at: datetime = START,
    status: str = "ok",
) -> RequestRecord:
    scored = status == "ok"
    p1 = np.linspace(0.1, 0.9, len(ages))
    return RequestRecord(
        request_id=uuid.uuid4().hex,
        timestamp=at,
        model_name="churn",
        model_version="2",
        variant=variant,
        latency_ms=10.0,
        status=status,
        features=pd.DataFrame({"age": ages, "plan": plans}) if scored else None,
        predictions=(p1 > 0.5).astype(int).tolist() if scored else None,
        probabilities=np.c_[1 - p1, p1].tolist() if scored else None,
        classes=[0, 1],
    )


def _window(records: list[RequestRecord]) -> checks.Window:
    return checks.Window("churn", "2", START, END, typed_frame(records))


def _traffic(n: int = 60, shift: float = 0.0, **kwargs: Any) -> RequestRecord:
    rng = np.random.default_rng(1)
    ages = (rng.normal(40, 10, n) + shift).tolist()
    return _request(ages, (["a", "b", "c"] * n)[:n], **kwargs)


# -- the window ---------------------------------------------------------------------------------


def test_window_rows_are_the_scored_ones() -> None:
    window = _window([_traffic(5), _request([], [], status="server_error")])
    assert len(window.frame) == 6
    assert window.rows == 5 and set(window.scored["status"]) == {"ok"}


def test_monitored_frame_names_columns_as_the_profile_does() -> None:
    frame = checks.monitored_frame(_window([_traffic(4), _request([], [], status="bad_request")]))
    assert list(frame.columns) == ["age", "plan", "prediction", "proba_0", "proba_1"]
    assert len(frame) == 4 and list(frame.index) == [0, 1, 2, 3]


def test_monitored_frame_reads_an_untyped_all_null_column_as_null_floats() -> None:
    frame = checks.monitored_frame(_window([_request([None, None], ["a", "b"])]))
    assert frame["age"].dtype == np.float64 and frame["age"].isna().all()
    assert frame["plan"].tolist() == ["a", "b"]  # a column with values is left as it is


def test_an_all_null_column_is_reported_as_null_by_feature_drift(
    profile: ReferenceProfile,
) -> None:
    from prefect_mlops.monitoring.window import window_stats

    window = _window([_request([None] * 60, (["a", "b", "c"] * 20))])
    stats = window_stats(checks.monitored_frame(window), profile)
    result = checks.feature_drift(profile, stats, MonitoringConfig())
    errors = result.errors
    assert errors == {"age": "all 60 window rows are null"}
    assert result.tested_columns == 1  # plan was tested


# -- overrides -------------------------------------------------------------------------------


def test_an_override_of_an_unknown_column_names_monitoring_columns_and_it(
    profile: ReferenceProfile,
) -> None:
    config = MonitoringConfig(columns={"salary": DriftOverride(method="ks")})
    with pytest.raises(ConfigError, match=r"monitoring\.columns: \['salary'\]") as caught:
        checks.check_overrides(profile, config)
    assert "'age'" in str(caught.value) and "'prediction'" in str(caught.value)


def test_overrides_of_a_feature_and_a_prediction_column_reach_their_tests(
    profile: ReferenceProfile,
) -> None:
    from prefect_mlops.monitoring.window import window_stats

    config = MonitoringConfig(
        columns={
            "age": DriftOverride(method="ks"),
            "prediction": DriftOverride(threshold=0.3),
        }
    )
    checks.check_overrides(profile, config)  # known columns: no error
    stats = window_stats(checks.monitored_frame(_window([_traffic()])), profile)
    features = {c.column: c for c in checks.feature_drift(profile, stats, config).columns}
    predictions = {c.column: c for c in checks.prediction_drift(profile, stats, config).columns}
    assert features["age"].method == "ks" and features["age"].threshold == 0.05
    assert predictions["prediction"].threshold == 0.3
    assert predictions["proba_1"].threshold != 0.3


# -- the checks' wiring ---------------------------------------------------------------------


def test_efficiency_leaves_shadow_rows_out() -> None:
    window = _window(
        [_traffic(3), _traffic(3, variant="shadow"), _traffic(2, variant="challenger")]
    )
    (figures,) = checks.efficiency_figures(window, MonitoringConfig())
    assert figures.requests == 2 and figures.rows == 5


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ("regression", "regressors have no class probabilities"),
        ("classification", "the version's reference has no calibration"),
    ],
)
def test_estimated_quality_says_why_it_is_not_available(task: str, reason: str) -> None:
    profile = build_profile(
        pd.DataFrame({"x": [1.0, 2.0, 3.0]}), numeric=["x"], categorical=[], task=task
    )
    estimate = checks.estimated_quality(profile, _window([_traffic(3)]))
    assert estimate.available is False and estimate.reason.startswith(reason)
    assert estimate.n_rows == 3


def test_live_quality_without_labels_is_none(profile: ReferenceProfile) -> None:
    assert checks.live_quality(TARGET, _window([_traffic(3)]), MonitoringConfig(), profile) is None


@pytest.mark.parametrize("records", [[], None], ids=["empty-window", "no-sample"])
def test_evidently_report_says_why_there_is_none(
    profile: ReferenceProfile, records: list[RequestRecord] | None
) -> None:
    sample = pd.DataFrame({"age": [1.0], "plan": ["a"]}) if records is not None else pd.DataFrame()
    window = _window(records if records is not None else [_traffic(3)])
    html, why = checks.evidently_report(
        TARGET, Reference(profile, sample), window, MonitoringConfig()
    )
    assert html is None
    assert why is not None
    assert ("no scored rows" if records is not None else "no reference sample") in why


# -- the result -----------------------------------------------------------------------------


def _assembled(profile: ReferenceProfile, shift: float, served: pd.DataFrame) -> MonitoringResult:
    from prefect_mlops.monitoring.window import window_stats

    config = MonitoringConfig(drift_share=0.5)
    window = _window([_traffic(60, shift=shift)])
    stats = window_stats(checks.monitored_frame(window), profile)
    skew = check_skew(served, None, checks.profile_features(profile))
    return checks.assemble(
        TARGET,
        window,
        config,
        False,
        skew=skew,
        drift=checks.feature_drift(profile, stats, config),
        prediction=checks.prediction_drift(profile, stats, config),
        live=None,
        estimate=checks.estimated_quality(profile, window),
        efficiency=checks.efficiency_figures(window, config),
    )


def test_assemble_folds_the_checks_into_the_result_and_its_message(
    profile: ReferenceProfile,
) -> None:
    result = _assembled(profile, 40.0, pd.DataFrame({"age": [1.0], "coupon": ["x"]}))
    assert result.status == "monitored" and result.rows == 60
    assert result.skewed and result.skew is not None
    assert result.skew["missing_columns"] == ["plan"]
    assert result.skew["unexpected_columns"] == ["coupon"]
    assert result.drifted_columns == ["age"] and result.dataset_drift  # 1 of 2 >= 0.5
    assert result.quality_degraded is None and result.quality_source is None
    assert result.efficiency[0]["requests"] == 1
    assert result.message.startswith("churn v2, 60 rows: schema skew, dataset drift (1 columns)")
    assert "quality of accuracy unknown" in result.message
    assert checks.alarming(result)


def test_a_quiet_window_says_so_and_is_not_alarming(profile: ReferenceProfile) -> None:
    result = _assembled(profile, 0.0, pd.DataFrame({"age": [1.0], "plan": ["a"]}))
    assert not result.skewed and result.drifted_columns == [] and not result.dataset_drift
    assert not result.prediction_drift and not result.failing
    assert result.message.startswith(
        "churn v2, 60 rows: no skew, no drift, quality and efficiency in bounds"
    )
    assert not checks.alarming(result)
    assert checks.alarming(result.model_copy(update={"skipped_files": ["part-x: unreadable"]}))


def test_nothing_to_monitor_has_no_verdict() -> None:
    window = _window([_traffic(3)])
    result = checks.nothing_to_monitor(TARGET, window, MonitoringConfig(min_rows=50), True)
    assert result.status == "nothing_to_monitor" and result.rows == 3
    assert result.reference_computed is True
    assert "fewer than min_rows=50" in result.message
    assert not checks.alarming(result)
    assert checks.drift_rows(result) == []


def _result(**fields: Any) -> MonitoringResult:
    base: dict[str, Any] = {
        "model_name": "churn",
        "version": "2",
        "status": "monitored",
        "message": "churn v2, 60 rows: something",
        "window_start": START,
        "window_end": END,
        "rows": 60,
    }
    return MonitoringResult(**{**base, **fields})


def _drift_column(column: str, score: float | None, drifted: bool, **extra: Any) -> dict[str, Any]:
    return {
        "column": column,
        "method": "wasserstein" if score is not None else None,
        "score": score,
        "threshold": 0.1,
        "drifted": drifted,
        "error": None,
        **extra,
    }


def test_drift_rows_lists_features_then_predictions_with_notes() -> None:
    result = _result(
        feature_drift={
            "columns": [
                _drift_column("age", 0.123456, True),
                _drift_column("plan", None, False, error="all 60 window rows are null"),
            ]
        },
        prediction={"columns": [_drift_column("prediction", 0.01, False)]},
    )
    assert checks.drift_rows(result) == [
        {
            "column": "age",
            "method": "wasserstein",
            "score": 0.1235,
            "threshold": 0.1,
            "drifted": True,
            "note": "",
        },
        {
            "column": "plan",
            "method": None,
            "score": None,
            "threshold": 0.1,
            "drifted": False,
            "note": "all 60 window rows are null",
        },
        {
            "column": "prediction",
            "method": "wasserstein",
            "score": 0.01,
            "threshold": 0.1,
            "drifted": False,
            "note": "",
        },
    ]


def test_summary_markdown_mentions_every_verdict() -> None:
    result = _result(
        skewed=True,
        skew={
            "missing_columns": ["plan"],
            "unexpected_columns": ["coupon"],
            "findings": [
                {"column": "age", "check": "expect_column_values_to_not_be_null", "details": "50%"}
            ],
        },
        dataset_drift=True,
        drifted_columns=["age"],
        feature_drift={"columns": [_drift_column("age", 0.4, True)], "drifted_share": 1.0},
        prediction_drift=True,
        quality_degraded=True,
        quality_source="realised",
        failing=True,
        failing_reasons=["p99 latency 900.0 ms above the SLO 500 ms"],
        efficiency=[
            {
                "model_version": "2",
                "requests": 10,
                "p50_ms": 10.0,
                "p95_ms": 20.0,
                "p99_ms": 900.0,
                "requests_per_second": 1.5,
                "error_rate": 0.1,
                "client_errors": 1,
                "server_errors": 1,
            }
        ],
        skipped_files=["part-x.parquet: not parquet"],
        report_sample="Evidently's report shows all 60 window rows",
    )
    text = checks.summary_markdown(result)
    assert text.startswith("# Monitoring of churn v2\n")
    assert f"**{result.message}**" in text
    assert "2026-06-01 00:00:00 → 2026-06-01 01:00:00 UTC, 60 scored rows" in text
    assert "| schema skew | **skewed** |" in text
    assert "| feature drift | **dataset drift**, 1 of 1 columns (100%) |" in text
    assert "| prediction drift | **drifted** |" in text
    assert "| quality | **degraded** (realised) |" in text
    assert "| efficiency | **failing**: p99 latency 900.0 ms above the SLO 500 ms |" in text
    assert "- missing column `plan`" in text and "- unexpected column `coupon`" in text
    assert "- column `age`: expect_column_values_to_not_be_null — 50%" in text
    assert "| 2 | 10 | 10.0 | 20.0 | 900.0 | 1.5 | 10.00% | 1 | 1 |" in text
    assert "- part-x.parquet: not parquet" in text
    assert text.endswith("Evidently's report shows all 60 window rows.")


def test_summary_markdown_of_a_quiet_run() -> None:
    text = checks.summary_markdown(
        _result(
            feature_drift={"columns": [_drift_column("age", 0.01, False)], "drifted_share": 0.0},
            quality_degraded=False,
            quality_source="estimated",
        )
    )
    assert "| schema skew | none |" in text
    assert "| feature drift | 0 of 1 columns (0%) |" in text
    assert "| prediction drift | none |" in text
    assert "| quality | holds (estimated) |" in text
    assert "| efficiency | in bounds |" in text
    assert "## Schema skew" not in text and "## Efficiency" not in text


def test_summary_markdown_of_nothing_to_monitor() -> None:
    text = checks.summary_markdown(_result(status="nothing_to_monitor", rows=0))
    assert "| feature drift | not computed |" in text
    assert "| quality | unknown (no labels matched and no estimate) |" in text


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("churn-demo", "churn-demo"),
        ("Churn_Demo v2", "churn-demo-v2"),
        ("--Fraud.Model--", "fraud-model"),
        ("___", "model"),
        ("ü", "model"),
    ],
)
def test_artifact_key(name: str, key: str) -> None:
    assert checks.artifact_key(name) == key


def test_describe_prefers_the_message_then_the_plain_fields() -> None:
    class WithMessage:
        message = "accuracy 0.9 on 40 rows"

    class Plain:
        message = None
        reason = None

        def to_dict(self) -> dict[str, Any]:
            return {"requests": 3, "nested": {"a": 1}, "p99_ms": 12.0}

    assert checks.describe(None) == "none"
    assert checks.describe(WithMessage()) == "accuracy 0.9 on 40 rows"
    assert checks.describe(Plain()) == "requests=3, p99_ms=12.0"
