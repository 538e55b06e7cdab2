"""Our drift verdicts against Evidently's: ``Report([DataDriftPreset()])`` on the raw frames
versus ``detect_drift`` on a reference profile and window statistics, over many scenarios."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.data.demo import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate_churn
from prefect_mlops.monitoring.drift import detect_drift
from prefect_mlops.monitoring.profile import build_profile
from prefect_mlops.monitoring.window import window_stats

#: Evidently's display names of its tests.
EVIDENTLY_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "PSI": "psi",
}


@dataclass
class Scenario:
    name: str
    reference: pd.DataFrame
    current: pd.DataFrame
    numeric: list[str]
    categorical: list[str]


def _demo(name: str, ref_rows: int, cur_rows: int, **kwargs: Any) -> Scenario:
    return Scenario(
        name,
        generate_churn(ref_rows, 10),
        generate_churn(cur_rows, 11, **kwargs),
        list(NUMERIC_FEATURES),
        list(CATEGORICAL_FEATURES),
    )


def _numeric_shifts(name: str, ref_rows: int, cur_rows: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    shifts = np.linspace(0.0, 0.25, 11) if ref_rows > 1000 else np.linspace(0.0, 0.4, 11)
    ref, cur = {}, {}
    for i, shift in enumerate(shifts):
        ref[f"normal_{i}"] = rng.normal(0, 1, ref_rows)
        cur[f"normal_{i}"] = rng.normal(shift, 1, cur_rows)
        ref[f"skewed_{i}"] = rng.lognormal(0, 0.7, ref_rows)
        cur[f"skewed_{i}"] = rng.lognormal(shift, 0.7, cur_rows)
        ref[f"integer_{i}"] = np.rint(rng.exponential(14, ref_rows))
        cur[f"integer_{i}"] = np.rint(rng.exponential(14 * (1 + shift), cur_rows))
    names = list(ref)
    return Scenario(name, pd.DataFrame(ref), pd.DataFrame(cur), names, [])


def _categorical_changes(name: str, ref_rows: int, cur_rows: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    base = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    labels = np.array(["a", "b", "c", "d", "e", "new1", "new2"], dtype=object)
    ref, cur = {}, {}
    for i, change in enumerate(np.linspace(0.0, 0.3, 9)):
        target = np.array([0.1, 0.2, 0.2, 0.25, 0.25])
        p = base + change * (target - base)
        ref[f"freq_{i}"] = labels[rng.choice(5, ref_rows, p=base)]
        cur[f"freq_{i}"] = labels[rng.choice(5, cur_rows, p=p / p.sum())]
        new = np.append(base * (1 - change / 2), [change / 4, change / 4])
        ref[f"unseen_{i}"] = labels[rng.choice(5, ref_rows, p=base)]
        cur[f"unseen_{i}"] = labels[rng.choice(7, cur_rows, p=new / new.sum())]
        ref[f"binary_{i}"] = np.where(rng.random(ref_rows) < 0.3, "yes", "no").astype(object)
        cur[f"binary_{i}"] = np.where(rng.random(cur_rows) < 0.3 + change / 3, "yes", "no").astype(
            object
        )
    names = list(ref)
    return Scenario(name, pd.DataFrame(ref), pd.DataFrame(cur), [], names)


def _nulls(name: str, ref_rows: int, cur_rows: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, ref_rows),
            "y": rng.normal(0, 1, ref_rows),
            "k": rng.integers(0, 3, ref_rows).astype(float),
            "c": rng.choice(np.array(["p", "q", "r"], dtype=object), ref_rows),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.08, 1, cur_rows),
            "y": rng.normal(0.2, 1, cur_rows),
            "k": rng.integers(0, 3, cur_rows).astype(float),
            "c": rng.choice(np.array(["p", "q", "r"], dtype=object), cur_rows, p=[0.5, 0.3, 0.2]),
        }
    )
    for frame, share in ((ref, 0.1), (cur, 0.45)):
        for column in frame.columns:
            frame.loc[rng.random(len(frame)) < share, column] = np.nan if column != "c" else None
    cur.loc[: cur_rows // 20, "y"] = np.inf
    return Scenario(name, ref, cur, ["x", "y", "k"], ["c"])


def _low_cardinality(name: str, ref_rows: int, cur_rows: int, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i, (values, extra) in enumerate([(2, 0), (2, 1), (3, 0), (4, 1), (5, 0), (5, 1), (4, 3)]):
        ref[f"levels_{i}"] = rng.integers(0, values, ref_rows)
        p = np.ones(values + extra)
        p[0] += 0.3 * i / 7
        cur[f"levels_{i}"] = rng.choice(values + extra, cur_rows, p=p / p.sum())
    names = list(ref)
    return Scenario(name, pd.DataFrame(ref), pd.DataFrame(cur), names, [])


SCENARIOS: list[Callable[[], Scenario]] = [
    lambda: _demo("demo, no shift", 5000, 3000),
    lambda: _demo("demo, covariate shift 0.15", 5000, 3000, covariate_shift=0.15),
    lambda: _demo("demo, covariate shift 0.5", 5000, 3000, covariate_shift=0.5),
    lambda: _demo("demo, concept drift 1", 5000, 3000, concept_drift=1.0),
    lambda: _demo("demo, small reference, shift 0.3", 800, 700, covariate_shift=0.3),
    lambda: _numeric_shifts("numeric shifts, large reference", 4000, 3000, 1),
    lambda: _numeric_shifts("numeric shifts, small reference", 600, 500, 2),
    lambda: _categorical_changes("categorical changes, large reference", 4000, 3000, 3),
    lambda: _categorical_changes("categorical changes, small reference", 700, 600, 4),
    lambda: _nulls("nulls and infinities, large reference", 3000, 2000, 5),
    lambda: _nulls("nulls and infinities, small reference", 900, 700, 6),
    lambda: _low_cardinality("low cardinality, large reference", 3000, 2500, 7),
    lambda: _low_cardinality("low cardinality, small reference", 500, 400, 8),
]


def _drifted(method: str, score: float, threshold: float) -> bool:
    if method == "ks":
        return score <= threshold
    if method in ("chisquare", "z"):
        return score < threshold
    return score >= threshold


def _evidently(scenario: Scenario) -> tuple[dict[str, tuple[str, float, float]], float]:
    """Per column (method, score, threshold) and the drifted share, from the report's dict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=scenario.numeric, categorical_columns=scenario.categorical
    )
    columns = scenario.numeric + scenario.categorical
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(scenario.current[columns], data_definition=definition),
        Dataset.from_pandas(scenario.reference[columns], data_definition=definition),
    )
    results: dict[str, tuple[str, float, float]] = {}
    share = float("nan")
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method = EVIDENTLY_METHODS[config["method"]]
            results[config["column"]] = (method, float(metric["value"]), float(config["threshold"]))
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return results, share


@pytest.fixture(scope="module")
def comparisons() -> list[tuple[str, list[dict[str, Any]], float, float]]:
    rows = []
    for make in SCENARIOS:
        scenario = make()
        evidently, evidently_share = _evidently(scenario)
        profile = build_profile(
            scenario.reference, numeric=scenario.numeric, categorical=scenario.categorical
        )
        ours = detect_drift(profile, window_stats(scenario.current, profile))
        table = []
        for column in ours.columns:
            method, score, threshold = evidently[column.column]
            table.append(
                {
                    "column": column.column,
                    "evidently": (method, score, _drifted(method, score, threshold), threshold),
                    "ours": (column.method, column.score, column.drifted, column.threshold),
                    "error": column.error,
                }
            )
        rows.append((scenario.name, table, evidently_share, ours.drifted_share))
    return rows


def test_verdicts_agree_with_evidently(
    comparisons: list[tuple[str, list[dict[str, Any]], float, float]],
) -> None:
    total = agree = 0
    worst = 0.0
    print(f"\n{'scenario / column':58} {'method':>13} {'evidently':>12} {'ours':>12} verdicts")
    for name, table, evidently_share, our_share in comparisons:
        print(f"{name}: drifted share evidently {evidently_share:.3f}, ours {our_share:.3f}")
        for row in table:
            e_method, e_score, e_drifted, threshold = row["evidently"]
            o_method, o_score, o_drifted, _ = row["ours"]
            assert row["error"] is None, (name, row)
            assert o_method == e_method, (name, row)
            total += 1
            same = o_drifted == e_drifted
            agree += same
            if not same:
                distance_to_threshold = abs(e_score - threshold) / threshold
                worst = max(worst, distance_to_threshold)
                assert distance_to_threshold <= 0.05, (name, row)
            print(
                f"  {row['column']:56} {e_method:>13} {e_score:12.6g} {o_score:12.6g} "
                f"{'same' if same else 'DIFFER'}"
            )
            if e_method == "wasserstein":
                # from the sketch: within 1 % or 2 % of the threshold (small distances)
                assert o_score == pytest.approx(e_score, rel=0.01, abs=0.002), (name, row)
            else:
                assert o_score == pytest.approx(e_score, rel=1e-6, abs=1e-9), (name, row)
    print(
        f"agreement: {agree}/{total} columns over {len(comparisons)} scenarios; worst "
        f"disagreement {worst:.2%} of its threshold"
    )
    assert len(comparisons) >= 10
    assert agree / total >= 0.99


def test_dataset_drift_agrees_with_evidently(
    comparisons: list[tuple[str, list[dict[str, Any]], float, float]],
) -> None:
    for name, table, evidently_share, our_share in comparisons:
        disagreements = sum(row["ours"][2] != row["evidently"][2] for row in table)
        assert our_share == pytest.approx(
            evidently_share, abs=disagreements / len(table) + 1e-12
        ), name
        if disagreements == 0:
            assert (our_share >= 0.5) == (evidently_share >= 0.5), name
