"""Tests of prefect_mlops.modeling.blessing: direction-aware value and change checks."""

from __future__ import annotations

import json

import pytest

from prefect_mlops.config import MetricThreshold
from prefect_mlops.errors import ConfigError
from prefect_mlops.modeling.blessing import (
    BlessingDecision,
    bless_candidate,
    check_thresholds,
    default_thresholds,
    metrics_rows,
)
from prefect_mlops.modeling.evaluation import EvaluationResult


def clf(
    roc_auc: float, f1: float = 0.7, slices: dict[str, dict[str, float]] | None = None
) -> EvaluationResult:
    slices = slices or {}
    return EvaluationResult(
        task="classification",
        overall={"roc_auc": roc_auc, "f1": f1, "accuracy": 0.8, "log_loss": 0.4},
        slices=slices,
        slice_sizes={k: 50 for k in slices},
        n_rows=200,
    )


def reg(rmse: float, mae: float = 1.0) -> EvaluationResult:
    return EvaluationResult(
        task="regression",
        overall={"rmse": rmse, "mae": mae, "r2": 0.9},
        slices={},
        slice_sizes={},
        n_rows=100,
    )


def test_default_thresholds() -> None:
    (c,) = default_thresholds("classification")
    assert (c.metric, c.min_value, c.min_improvement) == ("roc_auc", 0.5, 0.0)
    (r,) = default_thresholds("regression")
    assert (r.metric, r.min_value, r.max_value, r.min_improvement) == ("rmse", None, None, 0.0)
    with pytest.raises(ConfigError, match="'auto'"):
        default_thresholds("auto")


def test_first_run_checks_values_only() -> None:
    decision = bless_candidate(clf(0.61), None, default_thresholds("classification"))
    assert decision.blessed
    assert not decision.has_champion
    assert [c.kind for c in decision.checks] == ["value"]
    assert decision.summary() == "blessed (no champion yet): roc_auc 0.610 ≥ 0.500"
    assert decision.reasons == [decision.summary()]


def test_first_run_fails_below_min_value() -> None:
    decision = bless_candidate(clf(0.45), None, default_thresholds("classification"))
    assert not decision.blessed
    assert decision.reasons == ["roc_auc 0.450 is 0.050 below the minimum 0.500"]


def test_worse_candidate_fails_naming_metric_and_delta() -> None:
    decision = bless_candidate(clf(0.712), clf(0.753), default_thresholds("classification"))
    assert not decision.blessed
    assert decision.has_champion
    assert decision.reasons == [
        "roc_auc 0.712 is 0.041 below champion 0.753 (required improvement ≥ 0.000)"
    ]
    assert decision.summary() == (
        "not blessed: roc_auc 0.712 is 0.041 below champion 0.753 (required improvement ≥ 0.000)"
    )
    failed = decision.failed[0]
    assert (failed.metric, failed.slice, failed.kind) == ("roc_auc", None, "change")
    assert (failed.candidate, failed.champion, failed.bound) == (0.712, 0.753, 0.0)


def test_better_candidate_is_blessed() -> None:
    thresholds = [
        MetricThreshold(metric="roc_auc", min_improvement=0.0),
        MetricThreshold(metric="f1", min_value=0.6),
    ]
    decision = bless_candidate(clf(0.861, f1=0.71), clf(0.853), thresholds)
    assert decision.blessed
    assert decision.summary() == (
        "blessed: roc_auc 0.861 vs champion 0.853 (+0.008); f1 0.710 ≥ 0.600"
    )


def test_tie_with_zero_min_improvement_is_blessed() -> None:
    decision = bless_candidate(clf(0.8), clf(0.8), default_thresholds("classification"))
    assert decision.blessed
    # float noise does not break a tie either
    noisy = bless_candidate(reg(0.1 + 0.2), reg(0.3), default_thresholds("regression"))
    assert noisy.blessed


def test_required_positive_improvement() -> None:
    thresholds = [MetricThreshold(metric="roc_auc", min_improvement=0.01)]
    decision = bless_candidate(clf(0.805), clf(0.8), thresholds)
    assert not decision.blessed
    assert "0.005 above champion 0.800 (required improvement ≥ 0.010)" in decision.reasons[0]


def test_lower_is_better_direction() -> None:
    thresholds = default_thresholds("regression")
    worse = bless_candidate(reg(3.2), reg(3.05), thresholds)
    assert not worse.blessed
    assert worse.reasons == [
        "rmse 3.200 is 0.150 above champion 3.050 (lower is better; required improvement ≥ 0.000)"
    ]
    assert bless_candidate(reg(2.9), reg(3.05), thresholds).blessed

    with_max = [MetricThreshold(metric="mae", max_value=2.0)]
    assert bless_candidate(reg(3.0, mae=1.5), None, with_max).blessed
    failed = bless_candidate(reg(3.0, mae=2.5), None, with_max)
    assert failed.reasons == ["mae 2.500 is 0.500 above the maximum 2.000"]


def test_relative_threshold() -> None:
    allow_one_percent_loss = [MetricThreshold(metric="rmse", min_relative_improvement=-0.01)]
    # rmse 1.005 vs 1.0: 0.5 % worse, allowed
    assert bless_candidate(reg(1.005), reg(1.0), allow_one_percent_loss).blessed
    # rmse 1.02 vs 1.0: 2 % worse, refused
    decision = bless_candidate(reg(1.02), reg(1.0), allow_one_percent_loss)
    assert not decision.blessed
    (check,) = decision.checks
    assert check.relative and check.kind == "change" and check.bound == -0.01
    assert decision.reasons == [
        "rmse 1.020 is 2.0% above champion 1.000 "
        "(lower is better; required relative improvement ≥ -1.0%)"
    ]
    need_gain = [MetricThreshold(metric="roc_auc", min_relative_improvement=0.05)]
    assert not bless_candidate(clf(0.82), clf(0.8), need_gain).blessed  # +2.5 %
    assert bless_candidate(clf(0.85), clf(0.8), need_gain).blessed  # +6.25 %


def test_per_slice_failure_names_the_slice() -> None:
    thresholds = [MetricThreshold(metric="roc_auc", min_improvement=0.0, per_slice=True)]
    champion = clf(0.80, slices={"contract=one-year": {"roc_auc": 0.80}, "region=x": {}})
    candidate = clf(
        0.82,
        slices={
            "contract=one-year": {"roc_auc": 0.74},
            "contract=two-year": {"roc_auc": 0.9},  # champion has no such slice
            "region=x": {"accuracy": 1.0},  # roc_auc undefined on the slice: skipped
        },
    )
    decision = bless_candidate(candidate, champion, thresholds)
    assert not decision.blessed
    assert decision.reasons == [
        "roc_auc on slice 'contract=one-year' 0.740 is 0.060 below champion 0.800 "
        "(required improvement ≥ 0.000)"
    ]
    assert [(c.slice, c.passed) for c in decision.checks] == [
        (None, True),
        ("contract=one-year", False),
    ]


def test_per_slice_value_checks_on_first_run() -> None:
    thresholds = [MetricThreshold(metric="f1", min_value=0.5, per_slice=True)]
    candidate = clf(0.9, f1=0.8, slices={"plan=basic": {"f1": 0.4}, "plan=pro": {"f1": 0.9}})
    decision = bless_candidate(candidate, None, thresholds)
    assert decision.reasons == ["f1 on slice 'plan=basic' 0.400 is 0.100 below the minimum 0.500"]


def test_missing_metric_fails_with_reason() -> None:
    decision = bless_candidate(reg(1.0), None, default_thresholds("classification"))
    assert not decision.blessed
    assert "roc_auc is missing from the candidate's evaluation" in decision.reasons[0]
    no_proba = EvaluationResult("classification", {"f1": 0.7, "accuracy": 0.8}, {}, {}, 10)
    decision = bless_candidate(no_proba, clf(0.8), default_thresholds("classification"))
    assert [c.passed for c in decision.checks] == [False, False]


def test_champion_without_metric_skips_change_check() -> None:
    old = EvaluationResult("classification", {"f1": 0.7}, {}, {}, 10)
    decision = bless_candidate(clf(0.7), old, default_thresholds("classification"))
    assert decision.blessed
    assert "champion has no roc_auc" in decision.checks[1].reason


def test_direction_conflicts_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"rmse: min_value=1\.0 is not allowed"):
        check_thresholds([MetricThreshold(metric="rmse", min_value=1.0)])
    with pytest.raises(ConfigError, match=r"roc_auc: max_value=0\.9 is not allowed"):
        bless_candidate(clf(0.8), None, [MetricThreshold(metric="roc_auc", max_value=0.9)])
    with pytest.raises(ConfigError, match="threshold on f1 sets no rule"):
        check_thresholds([MetricThreshold(metric="f1")])
    with pytest.raises(ConfigError, match="regression model but the champion"):
        bless_candidate(reg(1.0), clf(0.8), [MetricThreshold(metric="rmse", max_value=2.0)])


def test_to_dict_and_markdown() -> None:
    thresholds = [
        MetricThreshold(metric="roc_auc", min_value=0.5, min_improvement=0.0, per_slice=True)
    ]
    decision = bless_candidate(
        clf(0.7, slices={"a|b": {"roc_auc": 0.6}}),
        clf(0.75, slices={"a|b": {"roc_auc": 0.55}}),
        thresholds,
    )
    payload = json.loads(json.dumps(decision.to_dict()))
    assert payload["blessed"] is False
    assert payload["has_champion"] is True
    assert len(payload["checks"]) == 4
    assert payload["checks"][1]["reason"] == decision.reasons[0]
    md = decision.markdown()
    assert md.startswith("❌ **Not blessed**: roc_auc 0.700 is 0.050 below champion 0.750")
    assert "| metric | slice | check | candidate | champion | bound | result |" in md
    assert "| roc_auc | (overall) | improvement ≥ | 0.700 | 0.750 | 0.000 | **FAIL** |" in md
    assert "| roc_auc | a\\|b | value ≥ | 0.600 | n/a | 0.500 | pass |" in md


def test_no_thresholds_blesses() -> None:
    decision = bless_candidate(clf(0.4), None, [])
    assert isinstance(decision, BlessingDecision)
    assert decision.blessed
    assert decision.summary() == "blessed (no champion yet): no thresholds configured"


# A champion value far from 1, where a relative and an absolute change differ (at 1.0 they
# coincide): each case passes as a relative check and would flip as an absolute one.
@pytest.mark.parametrize(
    ("champion", "candidate", "bound", "blessed"),
    [
        # lower is better (rmse 40): 0.3 worse is 0.75 % worse, within a 1 % allowed loss ...
        (reg(40.0), reg(40.3), -0.01, True),
        # ... and 0.3 better is only 0.75 % better, short of a required 1 % gain.
        (reg(40.0), reg(39.7), 0.01, False),
        # higher is better (roc_auc 0.5): 0.004 worse is 0.8 % worse, beyond a 0.5 % allowance ...
        (clf(0.5), clf(0.496), -0.005, False),
        # ... and 0.008 better is 1.6 % better, past a required 1 % gain.
        (clf(0.5), clf(0.508), 0.01, True),
    ],
    ids=["rmse-loss-allowed", "rmse-gain-too-small", "auc-loss-too-big", "auc-gain-enough"],
)
def test_relative_change_is_relative_to_the_champion(
    champion: EvaluationResult, candidate: EvaluationResult, bound: float, blessed: bool
) -> None:
    metric = "rmse" if champion.task == "regression" else "roc_auc"
    thresholds = [MetricThreshold(metric=metric, min_relative_improvement=bound)]
    decision = bless_candidate(candidate, champion, thresholds)
    assert decision.blessed is blessed, decision.summary()
    (check,) = decision.checks
    assert check.relative and check.bound == bound


def test_metrics_rows_are_rounded_and_per_slice() -> None:
    slices = {"contract=one-year": {"roc_auc": 0.812345678}}
    candidate = clf(0.861234567, slices=slices)
    champion = clf(0.85, slices={"contract=one-year": {"roc_auc": 0.8}})
    rows = metrics_rows(candidate, champion)
    overall = next(r for r in rows if r["slice"] == "(overall)" and r["metric"] == "roc_auc")
    assert overall == {
        "metric": "roc_auc",
        "slice": "(overall)",
        "rows": 200,
        "candidate": 0.8612,
        "champion": 0.85,
        "change": 0.0112,
    }
    (one_year,) = [r for r in rows if r["slice"] == "contract=one-year"]
    assert (one_year["candidate"], one_year["champion"], one_year["rows"]) == (0.8123, 0.8, 50)
    assert len(rows) == 5  # four overall metrics, one slice metric
    first_run = metrics_rows(candidate, None)
    assert all(r["champion"] is None and r["change"] is None for r in first_run)
