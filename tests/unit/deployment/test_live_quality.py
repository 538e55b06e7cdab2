"""Late labels joined to the serving log, and the canary's quality verdict (pure functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from prefect_mlops.deployment.canary import judge_canary
from prefect_mlops.deployment.labels import join_labels, prepare_labels, resolve_label_spec
from prefect_mlops.deployment.live_quality import (
    QualityReading,
    bootstrap_metric,
    live_metric,
    read_quality,
)
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import ConfigError, DataIngestError


def _served(variant: str, version: str, predictions: list, *, rows_per_request: int = 1):
    """Serving-log rows: ``predictions`` answered in requests of ``rows_per_request`` rows."""
    records = []
    for i, value in enumerate(predictions):
        records.append(
            {
                "request_id": f"{variant}-{i // rows_per_request}",
                "row_index": i % rows_per_request,
                "variant": variant,
                "model_version": version,
                "prediction": value,
                "status": "ok",
                "latency_ms": 5.0,
            }
        )
    return pd.DataFrame.from_records(records)


def _labels(variant: str, truths: list, *, rows_per_request: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"{variant}-{i // rows_per_request}" for i in range(len(truths))],
            "row_index": [i % rows_per_request for i in range(len(truths))],
            "churned": truths,
        }
    )


def test_missing_label_columns_are_named() -> None:
    with pytest.raises(DataIngestError, match=r"labels l\.csv: missing column\(s\) \['churned'\]"):
        prepare_labels(pd.DataFrame({"request_id": ["a"], "y": [1]}), "churned", "l.csv")
    with pytest.raises(DataIngestError, match="'row_index' must hold whole numbers"):
        prepare_labels(
            pd.DataFrame({"request_id": ["a"], "row_index": ["first"], "churned": [1]}),
            "churned",
            "l.csv",
        )


def test_labels_drop_missing_values_and_the_last_correction_wins() -> None:
    raw = pd.DataFrame(
        {"request_id": ["a", "b", "a", "c"], "row_index": [0, 0, 0, 0], "churned": [0, None, 1, 1]}
    )
    labels = prepare_labels(raw, "churned", "l.csv")
    assert labels.set_index("request_id")["label"].to_dict() == {"a": 1, "c": 1}


def test_join_by_request_and_row_and_score_string_classes() -> None:
    log = pd.concat(
        [
            _served("champion", "1", ["yes", "no", "no", "yes"], rows_per_request=2),
            _served("challenger", "2", ["no", "no", "no", "no"], rows_per_request=2),
        ]
    )
    labels = pd.concat(
        [
            _labels("champion", ["yes", "no", "no", "yes"], rows_per_request=2),
            _labels("challenger", ["yes", "no", "no", "yes"], rows_per_request=2).head(3),
        ]
    )
    joined = join_labels(log, prepare_labels(labels, "churned", "l.csv"), "l.csv")
    assert live_metric(joined, "classification", "accuracy", variant="champion") == (4, 1.0)
    n, accuracy = live_metric(
        joined, "classification", "accuracy", variant="challenger", version="2"
    )
    assert (n, accuracy) == (3, pytest.approx(2 / 3))


def test_labels_read_as_numbers_match_typed_predictions_and_failed_rows_are_left_out() -> None:
    log = _served("challenger", "2", [1, 0, 1, 1])
    log.loc[3, "status"] = "500"
    labels = _labels("challenger", [1.0, 0.0, 0.0, 1.0])  # a CSV column with a gap reads as float
    joined = join_labels(log, prepare_labels(labels, "churned", "l.csv"), "l.csv")
    assert live_metric(joined, "classification", "accuracy", variant="challenger") == (
        3,
        pytest.approx(2 / 3),
    )
    regression = join_labels(
        _served("challenger", "2", [1.5, 2.5]),
        prepare_labels(_labels("challenger", [1.0, 3.0]), "churned", "l.csv"),
        "l.csv",
    )
    assert live_metric(regression, "regression", "rmse", variant="challenger") == (2, 0.5)


def test_labels_without_row_index_need_single_row_requests() -> None:
    single = _labels("challenger", [1, 0]).drop(columns="row_index")
    joined = join_labels(
        _served("challenger", "2", [1, 1]), prepare_labels(single, "churned", "l.csv"), "l.csv"
    )
    assert len(joined) == 2
    several = _served("challenger", "2", [1, 1, 0, 0], rows_per_request=2)
    with pytest.raises(DataIngestError, match="add a `row_index` column"):
        join_labels(several, prepare_labels(single, "churned", "l.csv"), "l.csv")


def test_baseline_is_the_champion_live_else_the_offline_metric() -> None:
    log = pd.concat([_served("champion", "1", [1] * 6), _served("challenger", "2", [0] * 6)])
    labels = pd.concat([_labels("champion", [1] * 6), _labels("challenger", [1] * 6)])
    joined = join_labels(log, prepare_labels(labels, "churned", "l.csv"), "l.csv")
    live = read_quality(
        joined, version="2", task="classification", metric="accuracy", min_rows=5,
        offline_baseline=0.8,
    )  # fmt: skip
    assert (live.challenger, live.baseline, live.baseline_source) == (
        0.0, 1.0, "champion live, 6 rows",
    )  # fmt: skip
    assert live.shortfall() == pytest.approx(1.0)
    offline = read_quality(
        joined, version="2", task="classification", metric="accuracy", min_rows=10,
        offline_baseline=0.8,
    )  # fmt: skip
    assert (offline.baseline, offline.baseline_source) == (0.8, "challenger offline test")


def test_label_spec_defaults_from_the_version_lineage() -> None:
    tags = {"mlops.target": "churned", "mlops.task": "classification", "mlops.metric.f1": "0.7"}
    labels = _labels("challenger", [1, 0])
    spec = resolve_label_spec(
        labels, where="l.csv", label_column=None, metric="f1", version_tags=tags
    )
    assert (spec.label_column, spec.task, spec.metric, spec.offline_baseline) == (
        "churned", "classification", "f1", 0.7,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="set label_column"):
        resolve_label_spec(labels, where="l.csv", label_column=None, metric=None, version_tags={})
    with pytest.raises(ConfigError, match="quality_metric 'rmse' cannot be computed"):
        resolve_label_spec(
            labels, where="l.csv", label_column=None, metric="rmse", version_tags=tags
        )
    with pytest.raises(DataIngestError, match=r"missing column\(s\) \['label'\]"):
        resolve_label_spec(
            labels, where="l.csv", label_column="label", metric=None, version_tags=tags
        )


def _config(**kwargs: object) -> DeploymentConfig:
    base: dict[str, object] = {
        "model_name": "m", "strategy": "canary", "min_requests": 10, "min_labelled_rows": 20,
        "labels": {"path": "labels.csv"},
    }  # fmt: skip
    return DeploymentConfig.model_validate({**base, **kwargs})


def _quality(rows: int, value: float, baseline: float = 0.8) -> QualityReading:
    """A reading whose drop is certain (its lower bound is the drop itself)."""
    return QualityReading(
        "accuracy", rows, value, baseline, "champion live, 40 rows", drop_bound=baseline - value
    )


def test_canary_waits_for_labels_then_promotes_or_rolls_back_on_quality() -> None:
    log = _served("challenger", "2", [1] * 30)
    config = _config()
    waiting = judge_canary(log, "2", config, timed_out=False, quality=_quality(5, 0.1))
    assert waiting.decision == "wait"  # a low value over too few labelled rows proves nothing
    good = judge_canary(log, "2", config, timed_out=False, quality=_quality(25, 0.79))
    assert good.decision == "promote" and "live accuracy 0.79 over 25 rows" in good.reason
    bad = judge_canary(log, "2", config, timed_out=False, quality=_quality(25, 0.7))
    assert bad.decision == "rollback"
    assert "live accuracy 0.7 is 0.1 worse than 0.8 (champion live, 40 rows)" in bad.reason
    assert "at least 0.1 worse at 95% confidence, allowed 0.02" in bad.reason
    late = judge_canary(log, "2", config, timed_out=True, quality=_quality(5, 0.8))
    assert late.decision == "rollback"
    assert "only 5 of 20 labelled challenger rows" in late.reason


def test_labels_belong_to_the_canary_and_metrics_are_checked() -> None:
    with pytest.raises(ValidationError, match="canary strategy only"):
        _config(strategy="shadow")
    with pytest.raises(ValidationError, match="quality_metric 'auc' is not a live metric"):
        _config(quality_metric="auc")


def _noisy_log(accuracy_by_variant: dict[str, float], n: int, seed: int) -> pd.DataFrame:
    """Labelled serving-log rows where each variant is right with the given probability."""
    rng = np.random.default_rng(seed)
    frames = []
    for variant, accuracy in accuracy_by_variant.items():
        truth = rng.integers(0, 2, n)
        right = rng.random(n) < accuracy
        served = _served(
            variant,
            "2" if variant == "challenger" else "1",
            list(np.where(right, truth, 1 - truth).tolist()),
        )
        frames.append(served.assign(label=truth.tolist()))
    log = pd.concat(frames, ignore_index=True)
    return log


def test_a_gap_within_sampling_noise_is_not_a_breach_but_a_real_one_is() -> None:
    # Same true accuracy, 150 rows each: the observed gap is noise; the bound stays low.
    same = read_quality(
        _noisy_log({"champion": 0.75, "challenger": 0.75}, 150, seed=3), version="2",
        task="classification", metric="accuracy", min_rows=30, offline_baseline=None,
    )  # fmt: skip
    assert same.drop_bound is not None and same.drop_bound < 0.02
    worse = read_quality(
        _noisy_log({"champion": 0.75, "challenger": 0.3}, 150, seed=3), version="2",
        task="classification", metric="accuracy", min_rows=30, offline_baseline=None,
    )  # fmt: skip
    assert worse.shortfall() == pytest.approx(0.45, abs=0.1)
    assert worse.drop_bound is not None and 0.3 < worse.drop_bound < worse.shortfall()


def test_bootstrap_of_a_metric_without_a_vectorised_form() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    samples = bootstrap_metric("classification", "f1", truth, truth, resamples=20)
    assert samples.shape == (20,) and np.allclose(samples, 1.0)
