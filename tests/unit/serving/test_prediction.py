"""One predict call on a validated frame, and a merged prediction cut back per request."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from serving_cases import ROW, training_frame

from prefect_mlops.serving.loading import LoadedModel
from prefect_mlops.serving.prediction import (
    argmax_is_predict,
    predict_frame,
    split_prediction,
)
from prefect_mlops.serving.schema import InputSchema


def _loaded(schema: InputSchema, model: Any) -> LoadedModel:
    return LoadedModel("m", "1", model, schema, {}, {}, None, "src")


def test_classifier_predictions_equal_the_model(schema: InputSchema, pipeline: Any) -> None:
    frame = schema.parse_body(json.dumps([ROW, {**ROW, "tenure": 8, "calls": 7}]), 10)
    pred = predict_frame(_loaded(schema, pipeline), frame)
    assert argmax_is_predict(pipeline)
    assert pred.predictions == pipeline.predict(frame).tolist()
    np.testing.assert_allclose(pred.probabilities, pipeline.predict_proba(frame))
    assert pred.classes == [0, 1]


def test_regressor_has_no_probabilities(schema: InputSchema) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    numbers = ["tenure", "calls"]
    model = make_pipeline(make_column_transformer(("passthrough", numbers)), LinearRegression())
    frame = training_frame()
    model.fit(frame, frame["tenure"] * 2)
    pred = predict_frame(_loaded(schema, model), frame)
    np.testing.assert_allclose(pred.predictions, model.predict(frame))
    assert (pred.probabilities, pred.classes) == (None, None)


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("sklearn.ensemble.HistGradientBoostingClassifier", True),
        ("sklearn.linear_model.LogisticRegression", True),
        ("sklearn.svm.SVC", False),  # its predict and predict_proba may disagree
    ],
)
def test_argmax_is_predict_only_for_known_classifiers(estimator: str, expected: bool) -> None:
    import importlib

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    module, name = estimator.rsplit(".", 1)
    final = getattr(importlib.import_module(module), name)()
    assert argmax_is_predict(final) is expected
    assert argmax_is_predict(make_pipeline(StandardScaler(), final)) is expected


def test_split_prediction_cuts_per_request(schema: InputSchema, pipeline: Any) -> None:
    frame = training_frame()
    whole = predict_frame(_loaded(schema, pipeline), frame)
    parts = split_prediction(whole, [3, 1, 4])
    assert [len(p.predictions) for p in parts] == [3, 1, 4]
    assert [y for p in parts for y in p.predictions] == whole.predictions
    assert parts[1].probabilities == whole.probabilities[3:4]  # type: ignore[index]
    assert all(p.classes == whole.classes for p in parts)
