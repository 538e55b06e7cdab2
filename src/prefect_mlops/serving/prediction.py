"""One ``predict`` call on a validated frame: predictions, and class probabilities for
classifiers, as JSON-ready lists; and a merged prediction cut back into per-request pieces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.serving.loading import LoadedModel


@dataclass
class Prediction:
    """Predictions of one request's rows."""

    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None


def predict_frame(model: LoadedModel, frame: pd.DataFrame) -> Prediction:
    """Predictions (and class probabilities for classifiers) of ``model`` on ``frame``; raises
    what the estimator raises."""
    import sklearn

    est = model.model
    classes = model.classes
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        if classes is not None:
            proba = np.asarray(est.predict_proba(frame))
            if argmax_is_predict(est):  # one call instead of two (the per-call cost dominates)
                preds = np.asarray(est.classes_)[proba.argmax(axis=1)]
            else:
                preds = np.asarray(est.predict(frame))
            return Prediction(preds.tolist(), proba.tolist(), classes)
        return Prediction(np.asarray(est.predict(frame)).tolist(), None, None)


# Classifiers whose ``predict`` is exactly ``classes_[argmax(predict_proba)]``.
_ARGMAX_CLASSIFIERS = {
    "HistGradientBoostingClassifier",
    "GradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "LogisticRegression",
    "LogisticRegressionCV",
    "DummyClassifier",
}


def argmax_is_predict(estimator: Any) -> bool:
    """Whether ``estimator`` (or a Pipeline's last step) predicts the most probable class."""
    final = estimator
    while hasattr(final, "steps"):
        final = final.steps[-1][1]
    return type(final).__name__ in _ARGMAX_CLASSIFIERS and type(final).__module__.startswith(
        "sklearn."
    )


def split_prediction(pred: Prediction, sizes: Sequence[int]) -> list[Prediction]:
    """Cut a merged prediction back into per-request pieces of ``sizes`` rows."""
    out, start = [], 0
    for n in sizes:
        stop = start + n
        out.append(
            Prediction(
                pred.predictions[start:stop],
                pred.probabilities[start:stop] if pred.probabilities is not None else None,
                pred.classes,
            )
        )
        start = stop
    return out
