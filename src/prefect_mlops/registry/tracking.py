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

from prefect_mlops.registry import lineage, model_format
from prefect_mlops.registry.model_format import LoadPolicy, save_options

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.models import ModelSignature

    from prefect_mlops.data.snapshots import SnapshotRef

# MLflow keeps a dataset digest in 36 characters; the full digest goes to a dataset tag.
MLFLOW_DIGEST_CHARS = 32
SCHEMA_SAMPLE_ROWS = 10_000
SIGNATURE_SAMPLE_ROWS = 1000


@contextmanager
def quiet_mlflow_hints() -> Iterator[None]:
    """Silence MLflow's advisory warnings that do not apply here: the integer-column hint (it
    warns that MLflow's pyfunc would refuse a missing value in an integer column; this package
    serves and scores through scikit-learn, which takes it as a float, and predictions are
    labels) and the ambiguous local source."""
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
    client: MlflowClient,
    run_id: str,
    df: pd.DataFrame,
    snapshot: SnapshotRef,
    *,
    target: str | None,
    context: str,
) -> None:
    """Log ``snapshot`` as an MLflow dataset input of ``run_id`` through ``client`` (source: the
    snapshot file, digest: its content hash, profile: every row of ``df``, schema: its first
    rows)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with quiet_mlflow_hints():
        entity = dataset_entity(
            df,
            source=snapshot.path,
            targets=target if target in df.columns else None,
            name=f"snapshot-{snapshot.digest[:12]}",
            digest=snapshot.digest[:MLFLOW_DIGEST_CHARS],
        )
    tags = {
        MLFLOW_DATASET_CONTEXT: context,
        lineage.DATASET_DIGEST: snapshot.digest,
        lineage.DATASET_SOURCE: snapshot.source[:500],
    }
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(entity, tags=[InputTag(key, value) for key, value in tags.items()])],
    )


def dataset_entity(
    df: pd.DataFrame, *, source: str, targets: str | None, name: str, digest: str
) -> DatasetEntity:
    """The MLflow dataset record of ``df``: what ``mlflow.log_input`` logs for
    ``mlflow.data.from_pandas(df, ...)``, the schema inferred on ``inference_sample`` of ``df``
    (``SCHEMA_SAMPLE_ROWS``) rather than on every row. The profile counts every row."""
    import mlflow
    from mlflow.entities import Dataset as DatasetEntity

    kwargs: dict[str, Any] = {"source": source, "targets": targets, "name": name, "digest": digest}
    sampled = mlflow.data.from_pandas(inference_sample(df, SCHEMA_SAMPLE_ROWS), **kwargs)  # type: ignore[attr-defined]
    record = sampled.to_dict()
    # ``profile`` counts rows without inferring anything; ``schema`` is never asked of ``df``.
    whole = mlflow.data.from_pandas(df, **kwargs)  # type: ignore[attr-defined]
    return DatasetEntity(
        name=record["name"],
        digest=record["digest"],
        source_type=record["source_type"],
        source=record["source"],
        schema=record.get("schema"),
        profile=json.dumps(whole.profile),
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


def inference_sample(df: pd.DataFrame, rows: int, columns: list[str] | None = None) -> pd.DataFrame:
    """The first ``rows`` rows of ``df`` (its ``columns``, default all) plus, for each column
    whose first missing value comes later, the row of that value: a frame MLflow infers the
    same types and the same requiredness from as from the whole (a column is optional when any
    value is missing), for the cost of ``rows`` rows (inference checks every text value in
    Python: ~40 s for 1M rows)."""
    columns = list(df.columns) if columns is None else columns
    gaps: set[int] = set()
    for name in columns:
        missing = df[name].isna().to_numpy()[rows:]
        if missing.any():
            gaps.add(rows + int(missing.argmax()))
    picked = list(range(min(rows, len(df)))) + sorted(gaps)
    return df.iloc[picked][columns]


def model_signature(
    model: Any, X: pd.DataFrame, columns: list[str] | None = None
) -> ModelSignature:
    """The signature of ``model`` fed the ``columns`` (default all) of ``X`` as
    ``data.sources.read_table`` reads them; returns it.

    Each type is what the table holds, so MLflow's own client takes the table as read
    (``mlflow.pyfunc.load_model(...).predict(pd.read_csv(path))``): integers ``long``, floats
    ``double``, text ``string``, booleans ``boolean``, datetimes ``datetime``. A column with a
    missing value anywhere in ``X`` is optional. Inferred on ``inference_sample`` of ``X``.
    """
    from mlflow.models import infer_signature

    sample = inference_sample(X, SIGNATURE_SAMPLE_ROWS, columns)
    with quiet_mlflow_hints():
        return infer_signature(sample, model.predict(sample))


def log_sklearn_model(
    run_id: str,
    model: Any,
    X: pd.DataFrame,
    columns: list[str] | None = None,
    policy: LoadPolicy | None = None,
) -> str:
    """Log ``model`` with its signature (see ``model_signature``: ``X`` is the training table,
    every row, or its features; ``columns`` the feature columns, default all), an input example
    and pinned requirements, saved as skops (see ``model_format.save_options``: ConfigError when
    it holds a type ``policy``, default from the settings, would refuse to load); returns its
    model URI."""
    import mlflow

    from prefect_mlops.settings import get_settings

    policy = policy or LoadPolicy.from_settings(get_settings())
    options = save_options(model, policy)
    columns = list(X.columns) if columns is None else columns
    signature = model_signature(model, X, columns)
    example = X.head(5)[columns]
    # uv environments have no pip; the requirements are given, so MLflow's pip probe is noise.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    with active_run(run_id), quiet_mlflow_hints():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=model_pip_requirements(),
            **options,
        )
    return info.model_uri


def load_model(model_uri: str, policy: LoadPolicy | None = None) -> Any:
    """Load a scikit-learn model from an MLflow URI (``models:/name@champion``,
    ``models:/name/3``, ``runs:/...``) through the safe loader (``model_format``; ``policy``
    default from the settings), with MLflow's configured stores. A registered version's
    digest is checked; a missing version raises MlflowException."""
    from mlflow import MlflowClient

    from prefect_mlops.settings import get_settings

    policy = policy or LoadPolicy.from_settings(get_settings())
    client = MlflowClient()
    ref = model_uri.removeprefix("models:/").rstrip("/")
    if model_uri.startswith("models:/") and not ref.startswith("m-"):
        name, at, alias = ref.rpartition("@")
        if at:
            version = str(client.get_model_version_by_alias(name, alias).version)
        else:
            name, _, version = ref.rpartition("/")
            client.get_model_version(name, version)
        return model_format.load_version(client, name, version, policy)
    location = model_format.artifact_location(client, model_uri)
    return model_format.load_artifact(
        location, what=model_uri, expected_digest=None, policy=policy,
        tracking_uri=client.tracking_uri,
    )  # fmt: skip
