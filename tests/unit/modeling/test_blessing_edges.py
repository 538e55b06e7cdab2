"""Blessing at its edges: the float tolerance, a champion value of 0, the exact wording of
reasons, errors and reports people read (summary, to_dict, Markdown)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from prefect_mlops.config import MetricThreshold
from prefect_mlops.errors import ConfigError
from prefect_mlops.modeling.blessing import (
    TOLERANCE,
    bless_candidate,
    check_thresholds,
    metrics_rows,
)
from prefect_mlops.modeling.evaluation import EvaluationResult


def result(task: str = "classification", slices: Any = None, **overall: float) -> EvaluationResult:
    slices = slices or {}
    return EvaluationResult(
        task=task,
        overall=overall,
        slices=slices,
        slice_sizes={k: 10 for k in slices},
        n_rows=100,
    )


def T(metric: str, **rules: Any) -> MetricThreshold:
    return MetricThreshold(metric=metric, **rules)


# ------------------------------------------------------------------------------ tolerance


@pytest.mark.parametrize(
    ("metric", "rule", "bound", "candidate", "passed"),
    [
        ("roc_auc", "min_value", 0.5, 0.5, True),  # exactly at the minimum
        ("roc_auc", "min_value", 0.5, 0.5 - TOLERANCE, True),  # the tolerance below it
        ("roc_auc", "min_value", 0.5, 0.5 - 1e-9, False),
        ("rmse", "max_value", 2.0, 2.0, True),  # exactly at the maximum
        ("rmse", "max_value", 2.0, 2.0 + TOLERANCE, True),
        ("rmse", "max_value", 2.0, 2.0 + 1e-9, False),
    ],
)
def test_value_check_passes_at_the_bound_and_within_the_tolerance(
    metric: str, rule: str, bound: float, candidate: float, passed: bool
) -> None:
    task = "classification" if metric == "roc_auc" else "regression"
    decision = bless_candidate(
        result(task, **{metric: candidate}), None, [T(metric, **{rule: bound})]
    )
    assert decision.blessed is passed, decision.summary()


@pytest.mark.parametrize(
    ("rule", "bound", "candidate", "passed"),
    [
        ("min_improvement", 0.01, 0.81, True),  # improvement exactly the required 0.01
        ("min_improvement", 0.0, 0.8 - TOLERANCE, True),  # a loss within the tolerance
        ("min_improvement", 0.0, 0.8 - 1e-9, False),
        ("min_relative_improvement", 0.0, 0.8 - TOLERANCE / 2, True),  # -0.6e-12 relative
        ("min_relative_improvement", 0.0, 0.8 - 1e-9, False),
        ("min_relative_improvement", 0.25, 1.0, True),  # (1.0 - 0.8) / 0.8 is exactly 0.25
    ],
)
def test_change_check_passes_at_the_required_improvement(
    rule: str, bound: float, candidate: float, passed: bool
) -> None:
    champion = result(roc_auc=0.8)
    decision = bless_candidate(result(roc_auc=candidate), champion, [T("roc_auc", **{rule: bound})])
    assert decision.blessed is passed, decision.summary()


def test_a_bound_exactly_the_tolerance_away_still_passes() -> None:
    """``candidate >= bound - TOLERANCE``: the very float at the edge of the slack passes."""
    edge = 0.5 - TOLERANCE
    assert bless_candidate(result(roc_auc=edge), None, [T("roc_auc", min_value=0.5)]).blessed
    edge = 2.0 + TOLERANCE
    assert bless_candidate(
        result("regression", rmse=edge), None, [T("rmse", max_value=2.0)]
    ).blessed
    # A tie (improvement 0.0) against a required improvement of TOLERANCE: on the edge.
    gain = [T("roc_auc", min_improvement=TOLERANCE)]
    assert bless_candidate(result(roc_auc=0.8), result(roc_auc=0.8), gain).blessed
    rel = [T("roc_auc", min_relative_improvement=TOLERANCE)]
    assert bless_candidate(result(roc_auc=0.8), result(roc_auc=0.8), rel).blessed


# ------------------------------------------------------------------ a champion value of 0


@pytest.mark.parametrize(
    ("candidate", "bound", "passed"),
    [
        (0.1, 1000.0, True),  # any gain over 0 is +inf relative: passes any bound
        (-0.1, -1000.0, False),  # any loss is -inf: fails even a huge allowed loss
        (0.0, 0.0, True),  # a tie is 0 relative
        (0.0, 0.01, False),
        (TOLERANCE, 0.0, True),  # within the tolerance: a tie, not +inf ...
        (TOLERANCE, 0.5, False),  # ... so it does not pass a required gain
        (-TOLERANCE, 0.0, True),  # nor is a loss within the tolerance -inf
    ],
)
def test_relative_change_against_a_champion_of_zero(
    candidate: float, bound: float, passed: bool
) -> None:
    decision = bless_candidate(
        result("regression", r2=candidate),
        result("regression", r2=0.0),
        [T("r2", min_relative_improvement=bound)],
    )
    assert decision.blessed is passed, decision.summary()


def test_relative_reason_against_a_champion_of_zero() -> None:
    decision = bless_candidate(
        result("regression", r2=-0.1),
        result("regression", r2=0.0),
        [T("r2", min_relative_improvement=-0.5)],
    )
    assert decision.reasons == [
        "r2 -0.100 is inf% below champion 0.000 (required relative improvement ≥ -50.0%)"
    ]


# ------------------------------------------------------------------------------ wording


def test_every_threshold_problem_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        check_thresholds(
            [
                T("rmse", min_value=1.0),
                T("roc_auc", max_value=0.9),
                T("f1"),
                T("mae"),
                T("accuracy", min_value=0.5),  # fine
            ]
        )
    assert str(info.value) == (
        "invalid blessing thresholds:\n"
        "  threshold on rmse: min_value=1.0 is not allowed, rmse is lower-is-better; "
        "use max_value\n"
        "  threshold on roc_auc: max_value=0.9 is not allowed, roc_auc is higher-is-better; "
        "use min_value\n"
        "  threshold on f1 sets no rule; give min_value, min_improvement or "
        "min_relative_improvement\n"
        "  threshold on mae sets no rule; give max_value, min_improvement or "
        "min_relative_improvement"
    )


def test_a_task_mismatch_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError) as info:
        bless_candidate(result(roc_auc=0.8), result("regression", rmse=1.0), [])
    assert str(info.value) == (
        "the candidate is a classification model but the champion is a regression model; "
        "their metrics cannot be compared (register it under a new model name)"
    )


def test_reasons_of_passed_checks_name_value_and_bound() -> None:
    thresholds = [T("roc_auc", min_value=0.5, min_improvement=0.0), T("log_loss", max_value=0.6)]
    decision = bless_candidate(
        result(roc_auc=0.7, log_loss=0.5), result(roc_auc=0.7, log_loss=0.4), thresholds
    )
    assert [c.reason for c in decision.checks] == [
        "roc_auc 0.700 ≥ 0.500",
        "roc_auc 0.700 equals champion 0.700 (required improvement ≥ 0.000)",
        "log_loss 0.500 ≤ 0.600",
    ]


def test_a_tie_that_misses_a_required_gain_says_equals() -> None:
    decision = bless_candidate(
        result(roc_auc=0.0 + 1e-12), result(roc_auc=0.0), [T("roc_auc", min_improvement=0.01)]
    )
    assert decision.reasons == [
        "roc_auc 1e-12 equals champion 0.000 (required improvement ≥ 0.010)"
    ]


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "bound", "reason"),
    [
        (
            "rmse",
            2.5,
            2.0,
            0.0,
            "rmse 2.500 is 25.0% above champion 2.000 "
            "(lower is better; required relative improvement ≥ +0.0%)",
        ),
        (
            "roc_auc",
            0.6,
            0.8,
            -0.125,
            "roc_auc 0.600 is 25.0% below champion 0.800 (required relative improvement ≥ -12.5%)",
        ),
        (
            "roc_auc",
            0.7,
            0.8,
            0.5,
            "roc_auc 0.700 is 0.100 below champion 0.800 (required improvement ≥ 0.500)",
        ),
    ],
)
def test_failed_change_reasons_give_the_gap_and_the_requirement(
    metric: str, candidate: float, champion: float, bound: float, reason: str
) -> None:
    task = "regression" if metric == "rmse" else "classification"
    rule = "min_improvement" if "relative" not in reason else "min_relative_improvement"
    decision = bless_candidate(
        result(task, **{metric: candidate}),
        result(task, **{metric: champion}),
        [T(metric, **{rule: bound})],
    )
    assert decision.reasons == [reason]


def test_a_missing_metric_is_a_failed_check_that_says_so() -> None:
    thresholds = [T("roc_auc", min_value=0.5, min_improvement=0.0, min_relative_improvement=0.0)]
    decision = bless_candidate(result(f1=0.7), result(roc_auc=0.8), thresholds)
    assert [c.to_dict() for c in decision.checks] == [
        {
            "metric": "roc_auc",
            "slice": None,
            "kind": "value",
            "passed": False,
            "candidate": None,
            "champion": None,
            "bound": 0.5,
            "reason": "roc_auc is missing from the candidate's evaluation, so it cannot be "
            "checked against the minimum 0.500",
            "relative": False,
        },
        {
            "metric": "roc_auc",
            "slice": None,
            "kind": "change",
            "passed": False,
            "candidate": None,
            "champion": 0.8,
            "bound": 0.0,
            "reason": "roc_auc is missing from the candidate's evaluation, so it cannot be "
            "compared with the champion (required improvement ≥ 0.000)",
            "relative": False,
        },
        {
            "metric": "roc_auc",
            "slice": None,
            "kind": "change",
            "passed": False,
            "candidate": None,
            "champion": 0.8,
            "bound": 0.0,
            "reason": "roc_auc is missing from the candidate's evaluation, so it cannot be "
            "compared with the champion (required relative improvement ≥ +0.0%)",
            "relative": True,
        },
    ]
    regression = bless_candidate(result("regression", mae=1.0), None, [T("rmse", max_value=2)])
    assert regression.reasons == [
        "rmse is missing from the candidate's evaluation, so it cannot be checked against the "
        "maximum 2.000"
    ]


def test_a_champion_without_the_metric_skips_the_change_check_on_record() -> None:
    thresholds = [T("roc_auc", min_improvement=0.0, min_relative_improvement=0.0)]
    decision = bless_candidate(result(roc_auc=0.7), result(f1=0.6), thresholds)
    assert decision.blessed
    skipped = {
        "metric": "roc_auc",
        "slice": None,
        "kind": "change",
        "passed": True,
        "candidate": 0.7,
        "champion": None,
        "bound": 0.0,
        "reason": "roc_auc: the champion has no roc_auc, change check skipped",
    }
    assert [c.to_dict() for c in decision.checks] == [
        {**skipped, "relative": False},
        {**skipped, "relative": True},
    ]
    assert decision.summary() == (
        "blessed: roc_auc 0.700 (champion has no roc_auc); roc_auc 0.700 (champion has no roc_auc)"
    )


def test_an_absolute_change_check_is_recorded_as_not_relative() -> None:
    decision = bless_candidate(
        result(roc_auc=0.9), result(roc_auc=0.8), [T("roc_auc", min_improvement=0.0)]
    )
    (check,) = decision.checks
    assert check.to_dict()["relative"] is False
    assert check.to_dict()["kind"] == "change"


# ------------------------------------------------------------------ values as people read them


@pytest.mark.parametrize(
    ("rmse", "shown"),
    [
        (0.0, "0.000"),
        (0.001, "0.001"),
        (0.5, "0.500"),
        (0.0001234, "0.000123"),
        (999999.0, "999999.000"),
        (1e6, "1e+06"),
        (2.5e7, "2.5e+07"),
        (math.inf, "inf"),
    ],
)
def test_values_are_shown_with_three_decimals_or_significant_digits(
    rmse: float, shown: str
) -> None:
    decision = bless_candidate(result("regression", rmse=rmse), None, [T("rmse", max_value=1e9)])
    assert decision.checks[0].reason.startswith(f"rmse {shown} ")


# ------------------------------------------------------------------------------ summary


def _failing(n: int) -> list[MetricThreshold]:
    return [T(m, min_value=0.99) for m in ("roc_auc", "f1", "accuracy", "r2")[:n]]


@pytest.mark.parametrize(("n", "suffix"), [(2, ""), (3, ""), (4, " (+1 more failed checks)")])
def test_summary_lists_three_failed_checks_then_counts_the_rest(n: int, suffix: str) -> None:
    candidate = result(roc_auc=0.5, f1=0.5, accuracy=0.5, r2=0.5)
    decision = bless_candidate(candidate, None, _failing(n))
    shown = "; ".join(decision.reasons[:3])
    assert decision.summary() == f"not blessed: {shown}{suffix}"
    assert len(decision.reasons) == n


def test_blessed_summary_counts_slice_checks_and_signs_the_change() -> None:
    thresholds = [
        T("roc_auc", min_improvement=-0.01, per_slice=True),
        T("mae", max_value=2.0),
    ]
    slices = {"a": {"roc_auc": 0.8}, "b": {"roc_auc": 0.81}}
    candidate = result(roc_auc=0.795, mae=1.5, slices=slices)
    champion = result(roc_auc=0.8, slices={"a": {"roc_auc": 0.8}, "b": {"roc_auc": 0.8}})
    decision = bless_candidate(candidate, champion, thresholds)
    assert decision.summary() == (
        "blessed: roc_auc 0.795 vs champion 0.800 (-0.005); mae 1.500 ≤ 2.000; "
        "2 slice checks passed"
    )
    tie = bless_candidate(result(roc_auc=0.8), result(roc_auc=0.8), thresholds[:1])
    assert tie.summary() == "blessed: roc_auc 0.800 vs champion 0.800 (+0.000)"


def test_to_dict_carries_summary_and_reasons() -> None:
    decision = bless_candidate(result(roc_auc=0.4), None, [T("roc_auc", min_value=0.5)])
    payload = decision.to_dict()
    assert payload["summary"] == "not blessed: roc_auc 0.400 is 0.100 below the minimum 0.500"
    assert payload["reasons"] == ["roc_auc 0.400 is 0.100 below the minimum 0.500"]
    blessed = bless_candidate(result(roc_auc=0.6), None, [T("roc_auc", min_value=0.5)]).to_dict()
    assert (
        blessed["reasons"]
        == [blessed["summary"]]
        == ["blessed (no champion yet): roc_auc 0.600 ≥ 0.500"]
    )


# ------------------------------------------------------------------------------ Markdown


def test_markdown_of_a_first_run() -> None:
    thresholds = [T("rmse", max_value=2.0, min_relative_improvement=0.05)]
    decision = bless_candidate(result("regression", rmse=1.5), None, thresholds)
    assert decision.markdown() == (
        "✅ **Blessed**: rmse 1.500 ≤ 2.000\n"
        "\n"
        "No champion yet: value checks only.\n"
        "\n"
        "| metric | slice | check | candidate | champion | bound | result |\n"
        "|---|---|---|---|---|---|---|\n"
        "| rmse | (overall) | value ≤ | 1.500 | n/a | 2.000 | pass |\n"
    )


def test_markdown_without_checks() -> None:
    assert bless_candidate(result(roc_auc=0.4), None, []).markdown() == (
        "✅ **Blessed**: no thresholds configured\n\nNo champion yet: value checks only.\n"
    )
    with_champion = bless_candidate(result(roc_auc=0.4), result(roc_auc=0.5), [])
    assert with_champion.markdown() == "✅ **Blessed**: no thresholds configured\n"


def test_markdown_labels_relative_checks_and_keeps_colons_in_slice_names() -> None:
    thresholds = [T("roc_auc", min_relative_improvement=0.05, per_slice=True)]
    decision = bless_candidate(
        result(roc_auc=0.9, slices={"plan: pro": {"roc_auc": 0.7}}),
        result(roc_auc=0.8, slices={"plan: pro": {"roc_auc": 0.8}}),
        thresholds,
    )
    assert decision.markdown() == (
        "❌ **Not blessed**: roc_auc on slice 'plan: pro' 0.700 is 12.5% below champion 0.800 "
        "(required relative improvement ≥ +5.0%)\n"
        "\n"
        "| metric | slice | check | candidate | champion | bound | result |\n"
        "|---|---|---|---|---|---|---|\n"
        "| roc_auc | (overall) | relative improvement ≥ | 0.900 | 0.800 | +5.0% | pass |\n"
        "| roc_auc | plan: pro | relative improvement ≥ | 0.700 | 0.800 | +5.0% | **FAIL** |\n"
    )


# ------------------------------------------------------------------------------ slices


def test_per_slice_thresholds_after_an_overall_only_one_still_run() -> None:
    thresholds = [T("f1", min_value=0.5), T("roc_auc", min_value=0.6, per_slice=True)]
    slices = {"x": {"f1": 0.9}, "y": {"roc_auc": 0.55}, "z": {"roc_auc": 0.7}}
    decision = bless_candidate(result(roc_auc=0.9, f1=0.9, slices=slices), None, thresholds)
    # slice x lacks roc_auc and is skipped; y and z after it are still checked
    assert [(c.metric, c.slice, c.passed) for c in decision.checks] == [
        ("f1", None, True),
        ("roc_auc", None, True),
        ("roc_auc", "y", False),
        ("roc_auc", "z", True),
    ]
    assert decision.reasons == ["roc_auc on slice 'y' 0.550 is 0.050 below the minimum 0.600"]


def test_relative_slice_check_names_the_slice() -> None:
    thresholds = [T("roc_auc", min_relative_improvement=0.0, per_slice=True)]
    decision = bless_candidate(
        result(roc_auc=0.9, slices={"s": {"roc_auc": 0.9}}),
        result(roc_auc=0.8, slices={"s": {"roc_auc": 0.8}}),
        thresholds,
    )
    assert [c.slice for c in decision.checks] == [None, "s"]
    assert decision.checks[1].reason.startswith("roc_auc on slice 's' 0.900 is 12.5% above")


def test_metrics_rows_of_a_slice_the_champion_lacks_or_without_a_size() -> None:
    candidate = EvaluationResult(
        task="classification",
        overall={"roc_auc": 0.9},
        slices={"new": {"roc_auc": 0.7}, "unsized": {"roc_auc": 0.6}},
        slice_sizes={"new": 12},
        n_rows=100,
    )
    champion = result(roc_auc=0.8)
    rows = metrics_rows(candidate, champion)
    assert rows[1:] == [
        {
            "metric": "roc_auc",
            "slice": "new",
            "rows": 12,
            "candidate": 0.7,
            "champion": None,
            "change": None,
        },
        {
            "metric": "roc_auc",
            "slice": "unsized",
            "rows": 0,
            "candidate": 0.6,
            "champion": None,
            "change": None,
        },
    ]
