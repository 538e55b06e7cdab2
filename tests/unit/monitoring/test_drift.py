"""Drift tests from a profile and window statistics, against scipy on the raw values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from scipy.spatial import distance

from prefect_mlops.errors import ConfigError, MonitoringError
from prefect_mlops.monitoring.drift import DriftOverride, detect_drift, prediction_drift
from prefect_mlops.monitoring.profile import build_profile
from prefect_mlops.monitoring.window import window_stats

RNG = np.random.default_rng(7)


def _one(reference: pd.Series, current: pd.Series, kind: str = "numeric", **kwargs: object):  # type: ignore[no-untyped-def]
    profile = build_profile(
        pd.DataFrame({"v": reference}),
        numeric=["v"] if kind == "numeric" else [],
        categorical=["v"] if kind == "categorical" else [],
    )
    result = detect_drift(profile, window_stats(pd.DataFrame({"v": current}), profile), **kwargs)
    return result.columns[0]


def test_wasserstein_matches_scipy_on_an_exact_sketch() -> None:
    reference = pd.Series(RNG.integers(0, 40, 3000).astype(float))
    current = pd.Series(np.concatenate([RNG.integers(5, 45, 2000), [-7.0, 60.0]]))
    drift = _one(reference, current)
    expected = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
    assert drift.method == "wasserstein"
    # Values outside the reference's support are the only approximation (41..45 spread in the
    # open cell above 39 is exact: it is the tail, summed).
    assert drift.score == pytest.approx(expected, rel=1e-9)
    assert drift.drifted == (expected >= 0.1)


def test_wasserstein_from_a_quantile_sketch_is_within_one_percent() -> None:
    reference = pd.Series(RNG.normal(0, 1, 20_000))
    for shift in (0.05, 0.1, 0.3):
        current = pd.Series(RNG.normal(shift, 1.1, 5000))
        drift = _one(reference, current)
        expected = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
        assert drift.score == pytest.approx(expected, rel=0.01)


def test_ks_on_a_small_reference_is_scipys() -> None:
    reference = pd.Series(RNG.normal(0, 1, 400))
    for rows in (300, 12_000):  # scipy's exact and asymptotic p-values
        current = pd.Series(RNG.normal(0.15, 1, rows))
        drift = _one(reference, current)
        assert drift.method == "ks"
        expected = scipy_stats.ks_2samp(reference, current).pvalue
        assert drift.score == pytest.approx(expected, rel=1e-6, abs=1e-12)
        assert drift.drifted == (expected <= 0.05)


def test_chisquare_on_a_small_reference_is_scipys() -> None:
    reference = pd.Series(RNG.choice(list("abc"), 600, p=[0.5, 0.3, 0.2]))
    current = pd.Series(RNG.choice(list("abc"), 900, p=[0.45, 0.3, 0.25]))
    drift = _one(reference, current, "categorical")
    ref_counts = reference.value_counts().reindex(list("abc"))
    cur_counts = current.value_counts().reindex(list("abc"))
    expected = scipy_stats.chisquare(cur_counts, ref_counts * 900 / 600).pvalue
    assert drift.method == "chisquare"
    assert drift.score == pytest.approx(expected)


def test_a_new_category_makes_chisquare_drift() -> None:
    drift = _one(pd.Series(list("aabbc") * 20), pd.Series(list("aabbcd") * 20), "categorical")
    assert (drift.method, drift.score, drift.drifted) == ("chisquare", 0.0, True)


def test_z_test_on_two_values() -> None:
    reference = pd.Series(RNG.choice(["n", "y"], 500, p=[0.7, 0.3]))
    current = pd.Series(RNG.choice(["n", "y"], 400, p=[0.6, 0.4]))
    drift = _one(reference, current, "categorical")
    p1, p2 = (reference == "y").mean(), (current == "y").mean()
    pooled = (p1 * 500 + p2 * 400) / 900
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 400))
    assert drift.method == "z"
    assert drift.score == pytest.approx(2 * (1 - scipy_stats.norm.cdf(abs(z))))


def test_z_test_of_one_and_the_same_value_is_one() -> None:
    drift = _one(pd.Series([1] * 50), pd.Series([1] * 30))
    assert (drift.method, drift.score, drift.drifted) == ("z", 1.0, False)


def test_jensenshannon_on_categories_is_scipys() -> None:
    reference = pd.Series(RNG.choice(list("abcd"), 3000, p=[0.4, 0.3, 0.2, 0.1]))
    current = pd.Series(RNG.choice(list("abcde"), 2000, p=[0.3, 0.3, 0.2, 0.1, 0.1]))
    drift = _one(reference, current, "categorical")
    keys = list("abcde")
    p = reference.value_counts().reindex(keys, fill_value=0) / 3000
    q = current.value_counts().reindex(keys, fill_value=0) / 2000
    assert drift.method == "jensenshannon"
    assert drift.score == pytest.approx(distance.jensenshannon(p, q))


def test_few_valued_numeric_column_on_a_large_reference_uses_jensenshannon() -> None:
    drift = _one(pd.Series(RNG.integers(0, 4, 2000)), pd.Series(RNG.integers(0, 5, 2000)))
    assert drift.method == "jensenshannon"
    assert drift.drifted


def test_few_valued_numeric_column_on_a_small_reference_uses_chisquare_or_z() -> None:
    assert _one(pd.Series([0, 1, 2] * 100), pd.Series([0, 1, 2] * 50)).method == "chisquare"
    assert _one(pd.Series([0, 1] * 100), pd.Series([0, 1] * 50)).method == "z"
    # Six values over reference and window together: K-S.
    assert _one(pd.Series([0, 1, 2] * 100), pd.Series([3, 4, 5] * 50)).method == "ks"


def test_psi_override_on_values() -> None:
    reference = pd.Series(list("aab") * 50)
    current = pd.Series(list("abb") * 50)
    drift = _one(reference, current, "categorical", overrides={"v": DriftOverride(method="psi")})
    p, q = np.array([2 / 3, 1 / 3]), np.array([1 / 3, 2 / 3])
    assert drift.method == "psi"
    assert drift.score == pytest.approx(np.sum((p - q) * np.log(p / q)))
    assert drift.drifted


def test_threshold_override_and_the_verdict_rules_at_the_threshold() -> None:
    reference = pd.Series(RNG.choice(list("abcd"), 3000))
    current = pd.Series(RNG.choice(list("abcd"), 2000, p=[0.4, 0.2, 0.2, 0.2]))
    score = _one(reference, current, "categorical").score
    at = _one(reference, current, "categorical", overrides={"v": DriftOverride(threshold=score)})
    assert at.threshold == score and at.drifted  # a distance drifts at >=
    small_ref = pd.Series(RNG.normal(size=300))
    small_cur = pd.Series(RNG.normal(0.1, size=300))
    p = _one(small_ref, small_cur).score
    assert _one(small_ref, small_cur, overrides={"v": DriftOverride(threshold=p)}).drifted
    chi_ref, chi_cur = pd.Series(list("aabbc") * 40), pd.Series(list("abbcc") * 40)
    chi_p = _one(chi_ref, chi_cur, "categorical").score
    at_chi = _one(chi_ref, chi_cur, "categorical", overrides={"v": DriftOverride(threshold=chi_p)})
    assert not at_chi.drifted  # chi-square drifts at p < threshold


def test_nulls_are_dropped_before_the_test() -> None:
    reference = pd.Series([1.0, 2.0, 3.0, np.nan] * 100)
    current = pd.Series([1.0, 2.0, 3.0, np.nan, np.nan, np.inf] * 50)
    drift = _one(reference, current)
    assert (drift.method, drift.score, drift.rows, drift.reference_rows) == (
        "chisquare",
        1.0,
        150,
        300,
    )


def _profile():  # type: ignore[no-untyped-def]
    reference = pd.DataFrame(
        {
            "a": RNG.normal(size=2000),
            "b": RNG.normal(size=2000),
            "c": RNG.choice(list("xyz"), 2000),
        }
    )
    return build_profile(reference, numeric=["a", "b"], categorical=["c"])


def test_all_null_window_column_is_an_error_left_out_of_the_share() -> None:
    profile = _profile()
    window = pd.DataFrame(
        {"a": RNG.normal(1.0, size=500), "b": np.nan, "c": RNG.choice(list("xyz"), 500)}
    )
    result = detect_drift(profile, window_stats(window, profile))
    b = result.column("b")
    assert (b.drifted, b.score, b.error) == (False, None, "all 500 window rows are null")
    assert result.errors == {"b": "all 500 window rows are null"}
    assert (result.tested_columns, result.drifted_columns) == (2, 1)
    assert result.drifted_share == 0.5 and result.dataset_drift  # 1 of 2 tested, >= 0.5


def test_missing_and_non_numeric_columns_are_errors() -> None:
    profile = _profile()
    window = pd.DataFrame({"a": ["1", "2"], "c": ["x", "y"]})
    result = detect_drift(profile, window_stats(window, profile))
    assert "window column 'a'" in (result.column("a").error or "")
    assert result.column("b").error == "the column is missing from the window (2 of 2 rows)"
    assert result.column("c").error is None
    assert result.tested_columns == 1


def test_empty_window_and_all_null_reference_are_errors() -> None:
    profile = _profile()
    result = detect_drift(profile, window_stats(profile_frame_empty(), profile))
    assert {c.error for c in result.columns} == {"the window has no rows"}
    assert not result.dataset_drift and result.drifted_share == 0.0
    null_ref = build_profile(pd.DataFrame({"v": [np.nan] * 5}), numeric=["v"], categorical=[])
    drift = detect_drift(null_ref, window_stats(pd.DataFrame({"v": [1.0]}), null_ref))
    assert drift.columns[0].error == "all 5 reference rows are null: the profile has no values"


def profile_frame_empty() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": pd.Series([], dtype=float), "b": [], "c": pd.Series([], dtype=object)}
    )


def test_constant_reference_is_tested_like_evidently() -> None:
    # Evidently floors the norm at 0.001 instead of refusing a constant reference.
    drift = _one(pd.Series([3.0] * 2000), pd.Series(np.arange(10.0)))
    assert drift.method == "wasserstein" and drift.error is None
    assert drift.score == pytest.approx(
        scipy_stats.wasserstein_distance([3.0] * 2000, np.arange(10.0)) / 0.001
    )


def test_result_is_json_able() -> None:
    profile = _profile()
    stats = window_stats(pd.DataFrame({"a": [1.0] * 10, "b": [0.0] * 10}), profile)
    data = json.loads(json.dumps(detect_drift(profile, stats).to_dict()))
    assert [c["column"] for c in data["columns"]] == ["a", "b", "c"]
    assert data["drift_share"] == 0.5


def test_prediction_drift_compares_the_prediction_columns() -> None:
    frame = pd.DataFrame({"a": RNG.normal(size=1500)})
    profile = build_profile(
        frame,
        numeric=["a"],
        categorical=[],
        predictions=pd.Series(RNG.choice(["no", "yes"], 1500, p=[0.8, 0.2])),
        probabilities=pd.DataFrame({"yes": RNG.beta(2, 6, 1500)}),
        task="classification",
    )
    served = pd.DataFrame(
        {
            "a": RNG.normal(size=800),
            "prediction": RNG.choice(["no", "yes"], 800, p=[0.5, 0.5]),
            "proba_yes": RNG.beta(4, 4, 800),
        }
    )
    result = prediction_drift(profile, window_stats(served, profile))
    assert [c.column for c in result.columns] == ["prediction", "proba_yes"]
    assert [c.method for c in result.columns] == ["jensenshannon", "wasserstein"]
    assert result.dataset_drift


def test_prediction_drift_needs_prediction_columns() -> None:
    profile = _profile()
    with pytest.raises(MonitoringError, match="no prediction columns"):
        prediction_drift(profile, window_stats(pd.DataFrame({"a": [1.0]}), profile))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": ["nope"]}, r"columns \['nope'\] are not in the reference profile"),
        ({"overrides": {"nope": DriftOverride(threshold=0.2)}}, "column 'nope' is not in"),
        ({"overrides": {"a": DriftOverride(method="kl")}}, "column 'a': method 'kl' is not"),
        ({"overrides": {"a": DriftOverride(method="z")}}, "'z' does not apply to a numeric"),
        ({"overrides": {"c": DriftOverride(method="ks")}}, "'ks' does not apply to a categ"),
        ({"overrides": {"a": DriftOverride(threshold=-1.0)}}, "column 'a': threshold -1.0"),
        (
            {"overrides": {"a": DriftOverride(method="ks", threshold=1.5)}},
            r"threshold 1.5 must be a positive number below 1 \(a p-value\)",
        ),
        ({"drift_share": 0.0}, r"drift_share must be within \(0, 1\], got 0.0"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    profile = _profile()
    stats = window_stats(pd.DataFrame({"a": [1.0]}), profile)
    with pytest.raises(ConfigError, match=message):
        detect_drift(profile, stats, **kwargs)  # type: ignore[arg-type]
