"""Fixtures of the serving unit tests: the input schema of a real MLflow signature
and a small real scikit-learn pipeline that takes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from serving_cases import LABELS, training_frame

from prefect_mlops.registry.tracking import quiet_mlflow_hints
from prefect_mlops.serving.schema import InputSchema


@pytest.fixture(scope="session")
def schema() -> InputSchema:
    """The input schema MLflow infers for ``training_frame`` (``calls`` stays a long)."""
    from mlflow.models import infer_signature

    with quiet_mlflow_hints():  # the integer column is on purpose
        signature = infer_signature(training_frame(), np.array([0, 1] * 4))
    return InputSchema.from_signature(signature)


@pytest.fixture(scope="session")
def pipeline() -> Any:
    """A fitted classifier on ``training_frame``; an unseen ``contract`` makes it raise (its
    one-hot encoder refuses unknown categories): a valid request the model fails on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    features = ColumnTransformer(
        [
            ("contract", OneHotEncoder(handle_unknown="error"), ["contract"]),
            ("numbers", SimpleImputer(), ["tenure", "charges", "calls"]),
        ]
    )
    model = Pipeline([("features", features), ("model", LogisticRegression())])
    return model.fit(training_frame(), LABELS)
