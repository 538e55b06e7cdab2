"""MLflow run bookkeeping for the training flow: the run, dataset inputs, artifacts, the model.

All functions take an explicit ``run_id`` so they work from any Prefect task.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.data.snapshots import SnapshotRef

# MLflow keeps a dataset digest in 36 characters; the full digest goes to a dataset tag.
MLFLOW_DIGEST_CHARS = 32
SCHEMA_SAMPLE_ROWS = 10_000


@contextmanager
def quiet_mlflow_hints() -> Iterator[None]:
    """Silence MLflow's advisory warnings that do not apply here: the integer-column hint (the
    signature widens integer inputs; predictions are labels) and the ambiguous local source."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message=".*interpreted in multiple ways", category=UserWarning
        )
        yield


@contextmanager
def active_run(run_id: str) -> Iterator[Any]:
    """Make ``run_id`` the active MLflow run inside the block (for fluent-API calls)."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield active
        return
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def start_training_run(
    client: MlflowClient, experiment_id: str, run_name: str | None, tags: dict[str, str]
) -> str:
    """Create the MLflow run of one training flow run; returns its id."""
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return run.info.run_id


def log_snapshot_input(
    run_id: str, df: pd.DataFrame, snapshot: SnapshotRef, *, target: str | None, context: str
) -> None:
    """Log ``snapshot`` as an MLflow dataset input (source: snapshot file, digest: content hash)."""
    import mlflow
    from mlflow.types.utils import _infer_schema

    with quiet_mlflow_hints():
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            df,
            source=snapshot.path,
            targets=target if target in df.columns else None,
            name=f"snapshot-{snapshot.digest[:12]}",
            digest=snapshot.digest[:MLFLOW_DIGEST_CHARS],
        )
        # MLflow infers the dataset schema by checking every value of every text column in
        # Python (~40 s for 1M rows); the dtypes are the same in a sample. ``schema`` is a
        # cached property, so setting it first keeps the full profile (row count) exact.
        dataset.__dict__["schema"] = _infer_schema(df.head(SCHEMA_SAMPLE_ROWS))
    with active_run(run_id), quiet_mlflow_hints():
        mlflow.log_input(
            dataset,
            context=context,
            tags={
                lineage.DATASET_DIGEST: snapshot.digest,
                lineage.DATASET_SOURCE: snapshot.source[:500],
            },
        )


def log_json_artifact(client: MlflowClient, run_id: str, payload: Any, artifact_file: str) -> None:
    """Write ``payload`` as JSON into the run's artifacts at ``artifact_file``."""
    _log_file(client, run_id, artifact_file, json.dumps(payload, indent=2, default=str).encode())


def log_text_artifact(client: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
    """Write ``text`` into the run's artifacts at ``artifact_file``."""
    _log_file(client, run_id, artifact_file, text.encode())


def log_frame_artifact(
    client: MlflowClient, run_id: str, frame: pd.DataFrame, artifact_file: str
) -> None:
    """Write ``frame`` as Parquet into the run's artifacts at ``artifact_file``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(artifact_file).parent) or None)


def _log_file(client: MlflowClient, run_id: str, artifact_file: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        path.write_bytes(data)
        parent = str(Path(artifact_file).parent)
        client.log_artifact(run_id, str(path), None if parent == "." else parent)


def model_pip_requirements() -> list[str]:
    """Pinned requirements of a saved scikit-learn pipeline (skips MLflow's slow inference)."""
    return [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "scipy")]


def signature_frame(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` with integer columns as float64, so the signature admits missing values."""
    ints = [c for c in X.columns if pd.api.types.is_integer_dtype(X[c])]
    return X.astype(dict.fromkeys(ints, "float64")) if ints else X


def log_sklearn_model(run_id: str, model: Any, X_example: pd.DataFrame) -> str:
    """Log ``model`` with signature, input example and pinned requirements; returns its URI."""
    import mlflow
    from mlflow.models import infer_signature

    example = signature_frame(X_example.head(5))
    with quiet_mlflow_hints():
        sample = signature_frame(X_example.head(1000))
        signature = infer_signature(sample, model.predict(sample))
    # uv environments have no pip; the requirements are given, so MLflow's pip probe is noise.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    with active_run(run_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=model_pip_requirements(),
            skops_trusted_types=skops_types_of(model),
        )
    return info.model_uri


def skops_types_of(model: Any) -> list[str]:
    """The types skops would not load without being told to trust them.

    MLflow saves scikit-learn models with skops, which refuses any type it does not know (numpy
    dtypes, tree structures, user estimators). We trust exactly the types our own fitted model
    contains; MLflow stores the list in the model's flavor config for loading.
    """
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def load_model(model_uri: str) -> Any:
    """Load a scikit-learn model from an MLflow URI (``models:/name@champion``, ``runs:/...``)."""
    import mlflow

    return mlflow.sklearn.load_model(model_uri)
