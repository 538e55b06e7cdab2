"""The reference a version is monitored against, made at training and kept with the version.

At training (and, for a version trained before monitoring existed, once from its snapshot) the
reference rows (training or validation part of the snapshot) and the test set's predictions
and probabilities are summarised into a :class:`~prefect_mlops.monitoring.profile.ReferenceProfile`
(drift and skew need nothing else) with the test set's calibration (``quality``: what the
estimated quality needs), plus a bounded sample of reference rows for Evidently's HTML report.
Both are artifacts of the version's training run (``monitoring/reference_profile.json``,
``monitoring/reference_sample.parquet``), named by the lineage tag ``mlops.monitoring.profile``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import MonitoringError
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.data.splitting import SplitIndices
    from prefect_mlops.modeling.training import FeatureSpec
    from prefect_mlops.monitoring.profile import ReferenceProfile

SAMPLE_ARTIFACT = "monitoring/reference_sample.parquet"
#: Reference rows kept for Evidently's report (its verdicts never come from this sample).
SAMPLE_ROWS = 5_000


@dataclass
class Reference:
    """A version's reference profile and the reference sample shown in reports."""

    profile: ReferenceProfile
    sample: pd.DataFrame


def class_labels(model: Any) -> list[Any] | None:
    """The fitted classifier's classes (``classes_``, the last step's for a pipeline), or None."""
    classes = getattr(model, "classes_", None)
    if classes is None and hasattr(model, "steps"):
        classes = getattr(model.steps[-1][1], "classes_", None)
    return None if classes is None else list(np.asarray(classes).tolist())


def probability_frame(model: Any, X: pd.DataFrame) -> pd.DataFrame | None:
    """``model.predict_proba(X)`` as a frame with one column per class (named ``str(class)``),
    or None for a model without probabilities."""
    classes = class_labels(model)
    if classes is None or not hasattr(model, "predict_proba"):
        return None
    proba = np.asarray(model.predict_proba(X), dtype=float)
    return pd.DataFrame(proba, columns=[str(c) for c in classes], index=X.index)


def reference_rows(df: pd.DataFrame, indices: SplitIndices, which: str = "train") -> pd.DataFrame:
    """The rows of ``df`` that are the drift reference: the training (default) or validation
    part; the training part when the split has no validation rows."""
    use_validation = which == "validation" and len(indices.validation) > 0
    rows = indices.validation if use_validation else indices.train
    return df.iloc[rows]


def compute_reference(
    df: pd.DataFrame,
    indices: SplitIndices,
    features: FeatureSpec,
    *,
    task: str,
    target: str,
    model: Any,
    which: str = "train",
    test_predictions: Any = None,
) -> Reference:
    """The reference of a version trained on ``df`` split by ``indices``: the profile of the
    reference rows' features, the test set's predictions (``test_predictions`` when already
    made, else predicted) and probabilities, and its calibration for the quality estimate."""
    from prefect_mlops.monitoring.profile import build_profile
    from prefect_mlops.monitoring.quality import reference_quality

    rows = reference_rows(df, indices, which)
    test = df.iloc[indices.test]
    X_test = test[features.columns]
    predictions = (
        np.asarray(test_predictions) if test_predictions is not None else model.predict(X_test)
    )
    probabilities = probability_frame(model, X_test) if task == "classification" else None
    classes = class_labels(model) if task == "classification" else None
    quality = reference_quality(
        task,
        test[target].to_numpy(),
        np.asarray(predictions),
        probabilities.reset_index(drop=True) if probabilities is not None else None,
        classes or [],
    )
    profile = build_profile(
        rows[features.columns],
        numeric=list(features.numeric),
        categorical=list(features.categorical),
        task=task,
        quality=quality,
    )
    served = build_profile(  # the test set's predictions: what served ones are compared with
        test[[]].reset_index(drop=True),
        numeric=[],
        categorical=[],
        predictions=pd.Series(np.asarray(predictions), name="prediction"),
        probabilities=probabilities.reset_index(drop=True) if probabilities is not None else None,
        task=task,
    )
    profile.columns.update(served.columns)
    sample = rows[features.columns]
    if len(sample) > SAMPLE_ROWS:
        sample = sample.sample(n=SAMPLE_ROWS, random_state=0).sort_index()
    return Reference(profile=profile, sample=sample.reset_index(drop=True))


def log_reference(client: MlflowClient, run_id: str, reference: Reference) -> str:
    """Keep ``reference`` as artifacts of the training run ``run_id`` and tag the run with
    ``mlops.monitoring.profile``; returns the profile's artifact path (the tag's value)."""
    from prefect_mlops.registry.tracking import log_frame_artifact, log_json_artifact

    log_json_artifact(
        client, run_id, reference.profile.to_dict(), lineage.REFERENCE_PROFILE_ARTIFACT
    )
    log_frame_artifact(client, run_id, reference.sample, SAMPLE_ARTIFACT)
    client.set_tag(run_id, lineage.REFERENCE_PROFILE, lineage.REFERENCE_PROFILE_ARTIFACT)
    return lineage.REFERENCE_PROFILE_ARTIFACT


def keep_reference(
    client: MlflowClient,
    run_id: str,
    df: pd.DataFrame,
    indices: SplitIndices,
    features: FeatureSpec,
    *,
    task: str,
    target: str,
    model: Any,
    which: str = "train",
    test_predictions: Any = None,
) -> tuple[Reference, str]:
    """:func:`compute_reference` kept on the training run ``run_id`` (:func:`log_reference`):
    at training, and once for a version trained before profiles existed. Returns the
    reference and the profile's artifact path (the value of ``mlops.monitoring.profile``)."""
    reference = compute_reference(
        df,
        indices,
        features,
        task=task,
        target=target,
        model=model,
        which=which,
        test_predictions=test_predictions,
    )
    return reference, log_reference(client, run_id, reference)


def download_reference(client: MlflowClient, run_id: str, artifact: str) -> Reference:
    """The reference kept on run ``run_id`` (profile at ``artifact``, and the sample beside it).

    Raises MonitoringError naming the run and the artifact when it cannot be read.
    """
    from prefect_mlops.monitoring.profile import ReferenceProfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
            profile = ReferenceProfile.from_dict(json.loads(Path(path).read_text()))
        except Exception as exc:
            raise MonitoringError(
                f"run {run_id}: the reference profile {artifact!r} cannot be read: {exc}"
            ) from exc
        try:
            sample = pd.read_parquet(client.download_artifacts(run_id, SAMPLE_ARTIFACT, tmp))
        except Exception:
            sample = pd.DataFrame()
    return Reference(profile=profile, sample=sample)
