"""The model a scoring job uses: alias → version, its feature columns, loaded once per process.

:func:`resolve_model` resolves an alias (or the pinned version) to one version and reads the
feature columns from its MLflow signature; :func:`load_model_cached` loads it once per process
(the in-process pool and each Dask worker), so no model object travels through the task graph.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from prefect_mlops.errors import ScoringError
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from prefect_mlops.scoring.config import ScoringConfig


@dataclass(frozen=True)
class ResolvedModel:
    """The exact model version a scoring job uses, and the columns it reads."""

    model_name: str
    version: str
    model_uri: str
    artifact_uri: str
    features: list[str]
    feature_types: dict[str, str]
    tracking_uri: str
    registry_uri: str
    requested: str
    #: ``sha256:<hex>`` the model file must hash to (``lineage.MODEL_DIGEST``; None: unrecorded).
    artifact_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def resolve_model(config: ScoringConfig, tracking_uri: str, registry_uri: str) -> ResolvedModel:
    """Resolve ``config``'s alias (or pinned version) to one version, read its features and
    load it once here (through the safe loader: a model that may not be loaded fails the job
    before any row is read; the in-process runner reuses it).

    The features are the input names of the model's MLflow signature (``feature_names_in_`` of
    the loaded model when it has no signature). Raises ScoringError naming the model for an
    unknown model, version or alias, ModelLoadError for a model that may not be loaded.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from prefect_mlops.registry import get_alias_version, is_not_found_error

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    name = config.model_name
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found_error(exc):
            known = sorted(m.name for m in client.search_registered_models(max_results=50))
            raise ScoringError(
                f"registered model {name!r} not found in the registry {registry_uri}; "
                f"known models: {known or 'none'}"
            ) from exc
        raise
    if config.version:
        try:
            mv = client.get_model_version(name, str(config.version))
        except MlflowException as exc:
            raise ScoringError(
                f"model {name!r} has no version {config.version!r}; see "
                f"`prefect-mlops models {name}`"
            ) from exc
    else:
        found = get_alias_version(client, name, config.alias)
        if found is None:
            raise ScoringError(
                f"model {name!r} has no alias {config.alias!r}; pin a version or promote one "
                f"(`prefect-mlops promote {name} VERSION`)"
            )
        mv = found
    version = str(mv.version)
    digest = dict(mv.tags).get(lineage.MODEL_DIGEST)
    model_uri = f"models:/{name}/{version}"
    # Workers load from the artifact location itself: no registry lookup (and no database
    # connection) per worker process.
    artifact_uri = client.get_model_version_download_uri(name, version)
    _point_mlflow(tracking_uri, registry_uri)
    features, types = _signature_features(model_uri)
    model = load_model_cached(artifact_uri, tracking_uri, registry_uri, digest)
    if not features:
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            raise ScoringError(
                f"model {model_uri} has no MLflow signature and no feature_names_in_; log it "
                f"with a signature so its input columns are known"
            )
        features, types = [str(n) for n in names], {}
    return ResolvedModel(
        model_name=name,
        version=version,
        model_uri=model_uri,
        artifact_uri=artifact_uri,
        features=features,
        feature_types=types,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        requested=config.model_ref,
        artifact_digest=digest,
    )


def _signature_features(model_uri: str) -> tuple[list[str], dict[str, str]]:
    """Input names and types of the model's signature (empty when it has none)."""
    import mlflow

    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return [], {}
    names = [str(n) for n in signature.inputs.input_names()]
    types: dict[str, str] = {}
    for spec in signature.inputs.inputs:
        kind = getattr(spec, "type", None)
        types[str(spec.name)] = str(getattr(kind, "name", kind))
    return names, types


_MODELS: dict[tuple[str, str, str], Any] = {}


_MODELS_LOCK = threading.Lock()


def _point_mlflow(tracking_uri: str, registry_uri: str) -> None:
    import mlflow

    if mlflow.get_tracking_uri() != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_registry_uri() != registry_uri:
        mlflow.set_registry_uri(registry_uri)


def load_model_cached(
    model_uri: str, tracking_uri: str, registry_uri: str, digest: str | None = None
) -> Any:
    """The scikit-learn model at ``model_uri`` (a version's artifact location), loaded once per
    process (cached by URI and stores) through the safe loader (``registry.model_format``: skops,
    trusted types, the settings' policy), its file checked against ``digest`` (the version's
    ``ResolvedModel.artifact_digest``; None: unchecked, with a warning). Tasks call this on the
    worker, so no model object travels through the task graph. Raises ModelLoadError."""
    key = (tracking_uri, registry_uri, model_uri)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from prefect_mlops.registry import model_format
            from prefect_mlops.settings import get_settings

            _point_mlflow(tracking_uri, registry_uri)
            model = model_format.load_artifact(
                model_uri,
                what=model_uri,
                expected_digest=digest,
                policy=model_format.LoadPolicy.from_settings(get_settings()),
                tracking_uri=tracking_uri,
            )
            _MODELS[key] = model
    return model


def clear_model_cache() -> None:
    """Forget the models loaded in this process."""
    with _MODELS_LOCK:
        _MODELS.clear()
