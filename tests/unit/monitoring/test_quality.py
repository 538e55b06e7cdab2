"""Quality: the reference kept at training, the CBPE estimate, realised quality on late labels
and the degraded verdict; plus CBPE tracking realised accuracy of a real model under shift."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefect_mlops.errors import ConfigError, DataIngestError, MonitoringError
from prefect_mlops.modeling.evaluation import compute_metrics
from prefect_mlops.monitoring.quality import (
    REFERENCE_FORMAT,
    EstimatedQuality,
    RealisedQuality,
    estimate_quality,
    labels_by_entity,
    quality_verdict,
    realised_quality,
    reference_quality,
)

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _proba(p1: list[float] | np.ndarray, classes: tuple[str, str] = ("0", "1")) -> pd.DataFrame:
    p = np.asarray(p1, dtype=float)
    return pd.DataFrame({f"proba.{classes[0]}": 1 - p, f"proba.{classes[1]}": p})


def _binary_reference(n: int = 400, seed: int = 0, power: float = 1.0) -> dict:
    """A test set whose true P(1) is ``p``; the model says ``p ** power`` (1: honest)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    y = (rng.random(n) < p).astype(int)
    said = p**power
    return reference_quality("classification", y, (said > 0.5).astype(int), _proba(said), [0, 1])


def _window(
    predictions: list, *, version: str = "1", variant: str = "champion", prefix: str = "r"
) -> pd.DataFrame:
    """One single-row request per prediction, answered by ``version``."""
    n = len(predictions)
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}{i}" for i in range(n)],
            "row_index": 0,
            "timestamp": [T0 + pd.Timedelta(minutes=i) for i in range(n)],
            "model_version": version,
            "variant": variant,
            "status": "ok",
            "latency_ms": 5.0,
            "error": None,
            "prediction": predictions,
        }
    )


def _labels(values: list, prefix: str = "r") -> pd.DataFrame:
    return pd.DataFrame(
        {"request_id": [f"{prefix}{i}" for i in range(len(values))], "churned": values}
    )


# --------------------------------------------------------------------------------------------
# reference_quality
# --------------------------------------------------------------------------------------------


def test_reference_is_compact_json_with_the_test_metrics() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 1000)
    y = (rng.random(1000) < p).astype(int)
    pred = (p > 0.5).astype(int)
    ref = reference_quality("classification", y, pred, _proba(p), [np.int64(0), np.int64(1)])
    text = json.dumps(ref)  # plain lists and floats, numpy scalars made plain
    assert len(text) < 5000
    assert ref["format"] == REFERENCE_FORMAT
    assert (ref["classes"], ref["class_keys"], ref["n_rows"]) == ([0, 1], ["0", "1"], 1000)
    assert ref["metrics"] == compute_metrics(
        "classification", y, pred, np.column_stack([1 - p, p]), [0, 1]
    )
    assert list(ref["calibration"]["maps"]) == ["1"]  # binary: the positive class only


def test_an_honest_model_keeps_its_probabilities_a_miscalibrated_one_gets_a_map() -> None:
    honest = _binary_reference(power=1.0)["calibration"]["maps"]["1"]
    skewed = _binary_reference(power=3.0)["calibration"]["maps"]["1"]
    assert honest == {"x": [0.0, 1.0], "y": [0.0, 1.0], "applied": False}
    assert skewed["applied"] is True
    assert np.all(np.diff(skewed["x"]) > 0) and np.all(np.diff(skewed["y"]) >= 0)
    # p ** 3 = 0.125 means a true P(1) of 0.5: the map moves it up
    assert np.interp(0.125, skewed["x"], skewed["y"]) == pytest.approx(0.5, abs=0.12)


def test_labels_read_as_floats_are_the_integer_classes() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, 300) ** 3
    y = (rng.random(300) < p ** (1 / 3)).astype(int)
    pred = (p > 0.5).astype(int)
    as_int = reference_quality("classification", y, pred, _proba(p), [0, 1])
    as_float = reference_quality("classification", y.astype(float), pred, _proba(p), [0, 1])
    assert as_float["calibration"] == as_int["calibration"]
    assert as_int["calibration"]["maps"]["1"]["applied"] is True


def test_probabilities_without_class_names_are_taken_in_class_order() -> None:
    frame = pd.DataFrame(np.column_stack([[0.8, 0.3, 0.6], [0.2, 0.7, 0.4]]))
    ref = reference_quality("classification", ["no", "yes", "no"], ["no", "yes", "no"], frame,
                            ["no", "yes"])  # fmt: skip
    assert ref["metrics"]["roc_auc"] == 1.0


def test_multiclass_string_labels_get_one_map_per_class() -> None:
    classes = ["bronze", "gold", "silver"]
    rng = np.random.default_rng(2)
    raw = rng.dirichlet([1, 1, 1], 300)
    truth = np.array([rng.choice(classes, p=row) for row in raw])
    proba = pd.DataFrame(raw, columns=[f"proba.{c}" for c in classes])
    predicted = np.array(classes)[raw.argmax(axis=1)]
    ref = reference_quality("classification", truth, predicted, proba, classes)
    assert sorted(ref["calibration"]["maps"]) == classes
    assert ref["class_keys"] == classes
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= set(ref["metrics"])


def test_regression_reference_has_metrics_and_no_calibration() -> None:
    ref = reference_quality("regression", [1.0, 2.0, 4.0], [1.5, 2.0, 3.0], None, [])
    assert ref["metrics"]["mae"] == pytest.approx(0.5)
    assert "calibration" not in ref


def test_one_class_only_in_the_test_set_still_gives_a_reference() -> None:
    ref = reference_quality("classification", [0, 0, 0], [0, 0, 1], _proba([0.1, 0.2, 0.6]),
                            [0, 1])  # fmt: skip
    assert "roc_auc" not in ref["metrics"]  # undefined on one class
    assert ref["calibration"]["maps"]["1"]["applied"] is True
    assert estimate_quality(ref, _proba([0.1, 0.6])).metrics["accuracy"] == pytest.approx(0.5)


def test_reference_bad_task_is_named() -> None:
    with pytest.raises(MonitoringError, match=r"task must be .* got 'ranking'"):
        reference_quality("ranking", [1], [1], None, [])


def test_reference_empty_test_set_is_refused() -> None:
    with pytest.raises(MonitoringError, match="the test set has no rows"):
        reference_quality("classification", [], [], None, [0, 1])


def test_reference_unequal_lengths_are_named() -> None:
    with pytest.raises(MonitoringError, match="y_true has 2 rows but y_pred has 1"):
        reference_quality("classification", [0, 1], [0], None, [0, 1])
    with pytest.raises(MonitoringError, match="y_true has 2 rows but probabilities has 3"):
        reference_quality("classification", [0, 1], [0, 1], _proba([0.1, 0.2, 0.3]), [0, 1])


def test_reference_missing_probability_column_is_named() -> None:
    with pytest.raises(MonitoringError, match=r"\['proba.no', 'proba.yes'\].*found \['proba.0'"):
        reference_quality("classification", ["no"], ["no"], _proba([0.2]), ["no", "yes"])


def test_reference_missing_probability_values_are_refused() -> None:
    with pytest.raises(MonitoringError, match="probabilities hold missing or infinite values"):
        reference_quality("classification", [0, 1], [0, 1], _proba([0.2, np.nan]), [0, 1])


# --------------------------------------------------------------------------------------------
# estimate_quality
# --------------------------------------------------------------------------------------------


def test_cbpe_by_hand_on_honest_probabilities() -> None:
    ref = _binary_reference(power=1.0)  # identity map: calibrated = served probabilities
    est = estimate_quality(ref, _proba([0.9, 0.2]))
    assert isinstance(est, EstimatedQuality) and est.estimated and est.available
    assert est.n_rows == 2
    assert est.metrics["accuracy"] == pytest.approx((0.9 + 0.8) / 2)
    # pairs (positive weight x negative weight): right 0.9*0.8, wrong 0.2*0.1, ties half credit
    assert est.metrics["roc_auc"] == pytest.approx((0.72 + 0.5 * (0.09 + 0.16)) / (1.1 * 0.9))
    # expected TP 0.9, FP 0.1, FN 0.2
    assert est.metrics["f1"] == pytest.approx(1.8 / (1.8 + 0.1 + 0.2))
    assert est.reference == ref["metrics"]


def test_cbpe_uses_the_served_prediction_when_logged() -> None:
    ref = _binary_reference(power=1.0)
    window = _proba([0.9, 0.2]).assign(prediction=[0, 0])  # a threshold above 0.9
    assert estimate_quality(ref, window).metrics["accuracy"] == pytest.approx((0.1 + 0.8) / 2)


def test_cbpe_calibration_corrects_an_overconfident_model() -> None:
    ref = _binary_reference(n=2000, power=3.0)
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 2000)
    y = (rng.random(2000) < p).astype(int)
    said = p**3
    pred = (said > 0.5).astype(int)
    est = estimate_quality(ref, _proba(said).assign(prediction=pred))
    realised = float((pred == y).mean())
    naive = float(np.where(pred == 1, said, 1 - said).mean())
    assert abs(est.metrics["accuracy"] - realised) < 0.03
    assert abs(naive - realised) > 0.05  # the raw probabilities would have misled


def test_cbpe_skips_refused_rows_and_other_versions() -> None:
    ref = _binary_reference()
    window = pd.concat(
        [
            _proba([0.9, 0.2]).assign(model_version="1"),
            _proba([np.nan]).assign(model_version="1"),  # a refused request: no probabilities
            _proba([0.5, 0.5, 0.5]).assign(model_version="2"),
        ],
        ignore_index=True,
    )
    est = estimate_quality(ref, window, version="1")
    assert (est.n_rows, est.version) == (2, "1")
    assert est.metrics["accuracy"] == pytest.approx(0.85)


def test_cbpe_multiclass_string_labels() -> None:
    classes = ["bronze", "gold", "silver"]
    rng = np.random.default_rng(3)
    raw = rng.dirichlet([2, 2, 2], 600)
    truth = np.array([rng.choice(classes, p=row) for row in raw])
    frame = pd.DataFrame(raw, columns=[f"proba.{c}" for c in classes])
    predicted = np.array(classes)[raw.argmax(axis=1)]
    ref = reference_quality("classification", truth[:300], predicted[:300], frame[:300], classes)
    window = frame[300:].assign(prediction=predicted[300:])
    est = estimate_quality(ref, window)
    assert est.n_rows == 300
    realised = compute_metrics("classification", truth[300:], predicted[300:],
                               raw[300:], classes)  # fmt: skip
    assert est.metrics["accuracy"] == pytest.approx(realised["accuracy"], abs=0.07)
    assert est.metrics["roc_auc"] == pytest.approx(realised["roc_auc"], abs=0.07)
    assert 0 < est.metrics["f1"] <= 1


def test_cbpe_is_not_available_for_regression() -> None:
    ref = reference_quality("regression", [1.0, 2.0], [1.0, 2.5], None, [])
    est = estimate_quality(ref, pd.DataFrame({"prediction": [1.0]}))
    assert (est.available, est.metrics, est.estimated) == (False, {}, True)
    assert "not available for regression" in str(est.reason)
    assert est.to_dict()["reference"] == ref["metrics"]


def test_cbpe_without_test_probabilities_says_so() -> None:
    ref = reference_quality("classification", [0, 1], [0, 1], None, [0, 1])
    est = estimate_quality(ref, _proba([0.3]))
    assert not est.available
    assert "no calibration maps" in str(est.reason)


def test_cbpe_on_an_empty_window() -> None:
    est = estimate_quality(_binary_reference(), _proba([]), version="7")
    assert (est.available, est.n_rows) == (False, 0)
    assert est.reason == "no scored rows with class probabilities in the window for version 7"


def test_cbpe_window_missing_a_class_column_is_named() -> None:
    with pytest.raises(MonitoringError, match=r"estimate quality: window: .*'proba.1'"):
        estimate_quality(_binary_reference(), pd.DataFrame({"proba.0": [0.3]}))


def test_cbpe_refuses_a_dict_that_is_not_a_reference() -> None:
    with pytest.raises(MonitoringError, match=r"missing \['format', 'task'\]"):
        estimate_quality({"metrics": {}}, _proba([0.3]))


def test_estimate_to_dict_is_json() -> None:
    data = json.loads(json.dumps(estimate_quality(_binary_reference(), _proba([0.7])).to_dict()))
    assert data["estimated"] is True
    assert data["metrics"]["roc_auc"] == 0.5  # one row: its positive and negative parts tie
    assert data["metrics"]["accuracy"] == pytest.approx(0.7)


# --------------------------------------------------------------------------------------------
# realised_quality
# --------------------------------------------------------------------------------------------


def _realised(window: pd.DataFrame, labels: pd.DataFrame, **kw: object) -> RealisedQuality:
    options: dict = {"task": "classification", "metric": "accuracy", "where": "labels.csv",
                     "version": "1", "label_column": "churned"}  # fmt: skip
    options.update(kw)
    return realised_quality(window, labels, **options)


def test_realised_accuracy_with_an_interval_and_the_reference() -> None:
    window = _window([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
    labels = _labels([1, 0, 1, 0, 0, 0, 1, 1, 1, 1])
    ref = {"metrics": {"accuracy": 0.9}}
    result = _realised(window, labels, reference=ref)
    assert (result.status, result.value, result.n_labelled) == ("measured", 0.8, 10)
    assert result.low is not None and result.high is not None
    assert result.low <= 0.8 <= result.high and result.low < result.high
    assert (result.reference, result.estimated, result.key) == (
        0.9,
        False,
        "request_id + row_index",
    )
    assert json.loads(json.dumps(result.to_dict()))["value"] == 0.8


def test_realised_counts_only_the_version_asked_for() -> None:
    champion = _window([1, 1, 1, 1])
    shadow = _window([0, 0, 0, 0], version="2", variant="shadow")  # same requests, shadow rows
    window = pd.concat([champion, shadow], ignore_index=True)
    labels = _labels([1, 1, 1, 1])
    assert _realised(window, labels, version="1").value == 1.0
    assert _realised(window, labels, version="2").value == 0.0
    assert _realised(window, labels, version=None).n_labelled == 8


def test_realised_multiclass_string_labels() -> None:
    window = _window(["gold", "silver", "bronze", "gold"])
    labels = _labels(["gold", "silver", "gold", "gold"])
    assert _realised(window, labels).value == 0.75
    assert _realised(window, labels, metric="f1").status == "measured"


def test_realised_regression() -> None:
    result = _realised(_window([1.0, 2.0, 3.0]), _labels([1.0, 2.0, 5.0]), task="regression",
                       metric="mae")  # fmt: skip
    assert result.value == pytest.approx(2 / 3)


def test_labels_that_match_no_prediction_make_quality_unknown() -> None:
    result = _realised(_window([1, 0, 1]), _labels([1, 0], prefix="other-"))
    assert (result.status, result.value, result.n_labels, result.n_served) == ("unknown", None,
                                                                               2, 3)  # fmt: skip
    assert result.message == (
        "quality unknown: none of the 2 labels of labels.csv matches one of the 3 answered rows "
        "of version 1 in the window (joined on request_id + row_index)"
    )


def test_labels_all_missing_make_quality_unknown() -> None:
    result = _realised(_window([1, 0]), _labels([None, np.nan]))
    assert result.status == "unknown"
    assert result.message == (
        "quality unknown: labels labels.csv: none of its 2 rows is usable (a label or key is "
        "missing)"
    )


def test_labels_of_an_empty_window_make_quality_unknown() -> None:
    result = _realised(_window([]), _labels([1]))
    assert (result.status, result.n_served) == ("unknown", 0)
    assert "none of the 1 labels of labels.csv matches one of the 0 answered rows" in result.message


def test_one_class_only_is_measured_for_accuracy() -> None:
    result = _realised(_window([0, 0, 0]), _labels([0, 0, 0]))
    assert (result.status, result.value) == ("measured", 1.0)


def test_a_metric_undefined_on_the_labels_is_unknown() -> None:
    result = _realised(_window([1.0, 2.0]), _labels([3.0, 3.0]), task="regression", metric="r2")
    assert result.status == "unknown"
    assert "r2 is undefined on the 2 labelled rows of version 1" in result.message


def test_refused_requests_are_not_scored() -> None:
    window = _window([1, 1])
    window.loc[1, ["status", "prediction"]] = ["422", None]
    assert _realised(window, _labels([1, 0])).n_labelled == 1


def test_a_metric_that_needs_probabilities_is_refused() -> None:
    with pytest.raises(ConfigError, match="quality_metric 'roc_auc' cannot be computed"):
        _realised(_window([1]), _labels([1]), metric="roc_auc")


def test_a_multi_row_request_labelled_without_row_index_is_refused() -> None:
    window = pd.concat([_window([1]), _window([0]).assign(row_index=1)], ignore_index=True)
    with pytest.raises(DataIngestError, match="request 'r0' scored several rows"):
        _realised(window, _labels([1]))


def test_labels_without_the_label_column_are_named() -> None:
    with pytest.raises(
        DataIngestError, match=r"labels labels.csv: missing column\(s\) \['churned'\]"
    ):
        _realised(_window([1]), pd.DataFrame({"request_id": ["r0"], "label": [1]}))


# ---- labels keyed by entity and time -------------------------------------------------------


def _entity_window() -> pd.DataFrame:
    window = _window([1, 0, 1])  # r0 at T0, r1 at T0+1min, r2 at T0+2min
    return window.assign(**{"feature.customer_id": ["C1", "C2", "C1"]})


def test_entity_labels_go_to_the_latest_earlier_prediction() -> None:
    labels = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C2", "C2"],
            "timestamp": [
                "2026-01-01T00:01:30",  # after r0, before r2 -> r0 (naive: UTC)
                "2026-01-01T05:00:00Z",  # after r2 -> r2
                "2025-12-31T23:00:00Z",  # before any prediction of C2 -> unmatched
                "2026-01-09T00:00:00Z",  # past the 7 days tolerance -> unmatched
            ],
            "churned": [1, 0, 1, 1],
        }
    )
    keyed = labels_by_entity(_entity_window(), labels, entity="customer_id",
                             label_column="churned", where="crm")  # fmt: skip
    assert keyed.sort_values("request_id").to_dict("records") == [
        {"request_id": "r0", "row_index": 0, "churned": 1},
        {"request_id": "r2", "row_index": 0, "churned": 0},
    ]
    result = _realised(_entity_window(), labels, entity="customer_id")
    assert (result.value, result.n_labelled) == (0.5, 2)
    assert result.key == "customer_id + time (within 7D)"


def test_entity_labels_matching_nothing_make_quality_unknown() -> None:
    labels = pd.DataFrame({"customer_id": ["C9"], "timestamp": [T0], "churned": [1]})
    result = _realised(_entity_window(), labels, entity="customer_id", where="crm")
    assert result.status == "unknown"
    assert result.message == (
        "quality unknown: labels crm: none of its 1 rows is matching a served row (a label or "
        "key is missing)"
    )


def test_entity_label_times_must_be_times() -> None:
    labels = pd.DataFrame({"customer_id": ["C1"], "timestamp": ["yesterday"], "churned": [1]})
    with pytest.raises(DataIngestError, match="labels crm: column 'timestamp' must hold times"):
        _realised(_entity_window(), labels, entity="customer_id", where="crm")


def test_entity_labels_need_their_columns() -> None:
    labels = pd.DataFrame({"customer_id": ["C1"], "churned": [1]})
    with pytest.raises(DataIngestError, match=r"labels crm: missing column\(s\) \['timestamp'\]"):
        _realised(_entity_window(), labels, entity="customer_id", where="crm")


def test_entity_labels_need_the_entity_in_the_window() -> None:
    labels = pd.DataFrame({"customer_id": ["C1"], "timestamp": [T0], "churned": [1]})
    with pytest.raises(MonitoringError, match=r"no column 'feature\.customer_id'"):
        _realised(_window([1]), labels, entity="customer_id", where="crm")


# --------------------------------------------------------------------------------------------
# verdict
# --------------------------------------------------------------------------------------------


def _measured(
    value: float, n: int, reference: float = 0.8, metric: str = "accuracy"
) -> RealisedQuality:
    return RealisedQuality(metric, "1", "measured", "", n_labelled=n, value=value,
                           reference=reference)  # fmt: skip


def _estimate(accuracy: float, reference: float = 0.8) -> EstimatedQuality:
    return EstimatedQuality("classification", 100, {"accuracy": accuracy},
                            {"accuracy": reference})  # fmt: skip


def test_realised_decides_when_there_are_enough_labels() -> None:
    verdict = quality_verdict(estimated=_estimate(0.8), realised=_measured(0.7, 50))
    assert (verdict.degraded, verdict.source) == (True, "realised")
    assert verdict.drop == pytest.approx(0.1)
    assert verdict.message.startswith("realised accuracy 0.7 vs test 0.8: degraded")


def test_too_few_labels_fall_back_to_the_estimate() -> None:
    verdict = quality_verdict(estimated=_estimate(0.78), realised=_measured(0.5, 5))
    assert (verdict.degraded, verdict.source, verdict.value) == (False, "estimated", 0.78)


def test_the_allowed_drop_is_configurable() -> None:
    verdict = quality_verdict(estimated=_estimate(0.78), max_drop=0.01)
    assert (verdict.degraded, verdict.source) == (True, "estimated")


def test_lower_is_better_metrics_degrade_upwards() -> None:
    up = quality_verdict(realised=_measured(1.4, 40, reference=1.0, metric="rmse"), max_drop=0.2)
    down = quality_verdict(realised=_measured(0.6, 40, reference=1.0, metric="rmse"), max_drop=0.2)
    assert (up.degraded, down.degraded) == (True, False)


def test_nothing_to_judge_is_unknown() -> None:
    unknown = RealisedQuality("accuracy", "1", "unknown", "quality unknown: no labels")
    regression = EstimatedQuality("regression", 0, available=False, reason="not available")
    verdict = quality_verdict(estimated=regression, realised=unknown)
    assert (verdict.degraded, verdict.source) == (None, None)
    assert "quality unknown: no labels" in verdict.message and "not available" in verdict.message
    assert json.loads(json.dumps(verdict.to_dict()))["degraded"] is None


def test_a_negative_drop_is_refused() -> None:
    with pytest.raises(MonitoringError, match="max_drop must be >= 0"):
        quality_verdict(max_drop=-0.1)


# --------------------------------------------------------------------------------------------
# statistics: CBPE tracks realised quality of a real model under covariate shift
# --------------------------------------------------------------------------------------------

CBPE_TOLERANCE = {"accuracy": 0.03, "roc_auc": 0.03}
"""Measured (LogisticRegression, 3,000 training / 1,000 test rows, 4,000 window rows), estimate
vs realised: shift 0: accuracy 0.8027 vs 0.8015, ROC AUC 0.8422 vs 0.8384; shift 1: 0.7424 vs
0.7378, 0.8069 vs 0.8068; shift 2: 0.8500 vs 0.8508, 0.7550 vs 0.7697."""


def test_cbpe_tracks_realised_quality_under_covariate_shift() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from prefect_mlops.data.demo import CATEGORICAL_FEATURES, NUMERIC_FEATURES, generate_churn

    features = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    data = generate_churn(4000, seed=0)
    train, test = data.iloc[:3000], data.iloc[3000:]
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             list(NUMERIC_FEATURES)),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ]
    )  # fmt: skip
    model = make_pipeline(preprocess, LogisticRegression(max_iter=1000))
    model.fit(train[features], train["churned"])

    def served(frame: pd.DataFrame) -> pd.DataFrame:
        proba = model.predict_proba(frame[features])
        columns = {f"proba.{c}": proba[:, i] for i, c in enumerate(model.classes_)}
        return pd.DataFrame(columns).assign(prediction=model.predict(frame[features]))

    on_test = served(test)
    reference = reference_quality(
        "classification", test["churned"], on_test["prediction"],
        on_test[["proba.0", "proba.1"]], list(model.classes_),
    )  # fmt: skip
    gaps = {}
    for shift in (0, 1, 2):
        window = generate_churn(4000, seed=1, covariate_shift=shift)
        scored = served(window)
        estimate = estimate_quality(reference, scored)
        realised = compute_metrics("classification", window["churned"], scored["prediction"],
                                   scored[["proba.0", "proba.1"]].to_numpy(), [0, 1])  # fmt: skip
        for metric, tolerance in CBPE_TOLERANCE.items():
            gaps[(shift, metric)] = estimate.metrics[metric] - realised[metric]
            assert abs(gaps[(shift, metric)]) < tolerance, (shift, metric, gaps)
    # the shift moved realised accuracy by more than the tolerance, so tracking is not trivial
    assert realised["accuracy"] - reference["metrics"]["accuracy"] > 0.04
