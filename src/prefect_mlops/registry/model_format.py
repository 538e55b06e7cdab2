"""How a scikit-learn model is saved to the registry and loaded from it, safely: the one place
serving, batch scoring and training load a model version through.

The artifact does not choose how it is deserialised. MLflow reads the skops trusted-type list
and the serialisation format from the artifact's own ``MLmodel`` (and loads pickle); here:

* the format must be skops (pickle and cloudpickle only with ``allow_pickle_models``);
* every type the skops file holds must be trusted by this package (:func:`package_trusts`: the
  classes of scikit-learn, which builds every pipeline ``modeling.training`` makes, whatever
  estimator class a config names, and numpy's and scipy's data types) or declared in
  ``model_trusted_types``; the file is loaded with exactly that list;
* the model file's SHA-256, recorded as the version tag ``lineage.MODEL_DIGEST`` at
  registration (:func:`artifact_digest`), must match at load (a version registered before
  digests were recorded loads with a warning).

The registered artifact stays a normal MLflow sklearn model (``mlflow.pyfunc.load_model`` works).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from prefect_mlops.errors import ConfigError, ModelLoadError, first_line
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.settings import Settings

logger = logging.getLogger(__name__)

SKOPS = "skops"
PICKLE_FORMATS = ("pickle", "cloudpickle")
DIGEST_PREFIX = "sha256:"
# MLflow's default when a sklearn flavour names no format (models saved before skops).
_MLFLOW_DEFAULT_FORMAT = "pickle"
_TRUSTED_ROOTS = ("sklearn", "numpy", "scipy")


@dataclass(frozen=True)
class LoadPolicy:
    """What a model file may be: pickle allowed or not, the types trusted beyond the package's."""

    allow_pickle: bool = False
    trusted_types: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadPolicy:
        """The policy of ``allow_pickle_models`` and ``model_trusted_types``."""
        return cls(settings.allow_pickle_models, tuple(settings.model_trusted_types))


@dataclass(frozen=True)
class ModelFile:
    """A downloaded model file and the serialisation format its ``MLmodel`` names."""

    path: Path
    serialization_format: str


# -- the allow-list -----------------------------------------------------------------------------


def package_trusts(type_name: str) -> bool:
    """Whether this package trusts ``type_name`` (``module.Class``) in a skops file: a class
    defined in scikit-learn (every estimator, transformer and fitted internal: kernels, trees,
    losses, neighbour trees), a numpy dtype or scalar type, or a scipy sparse container.
    Functions are never trusted here. Only modules of those three libraries are imported."""
    module_name, _, attr = type_name.rpartition(".")
    if module_name.split(".")[0] not in _TRUSTED_ROOTS:
        return False
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError, TypeError):
        return False
    if not isinstance(obj, type) or f"{obj.__module__}.{obj.__qualname__}" != type_name:
        return False
    root = module_name.split(".")[0]
    if root == "sklearn":
        return True
    if root == "numpy":
        import numpy as np

        return issubclass(obj, np.dtype | np.generic)
    import scipy.sparse

    return issubclass(obj, scipy.sparse.spmatrix | scipy.sparse.sparray)


def refused_types(types: Iterable[str], policy: LoadPolicy) -> list[str]:
    """The ``types`` neither the package (:func:`package_trusts`) nor ``policy`` trusts."""
    extra = set(policy.trusted_types)
    return sorted(t for t in set(types) if t not in extra and not package_trusts(t))


def _refusal(what: str, refused: Collection[str]) -> str:
    return (
        f"{what} holds types this package does not trust: {', '.join(refused)}; if you trust "
        f"them, add them to MLOPS_MODEL_TRUSTED_TYPES (setting model_trusted_types)"
    )


# -- saving -------------------------------------------------------------------------------------


def save_options(model: Any, policy: LoadPolicy) -> dict[str, Any]:
    """The ``mlflow.sklearn.log_model`` arguments that save ``model`` as skops with the types it
    holds listed (for MLflow's own loader). Raises ConfigError naming any type this package
    would refuse to load, so an unloadable model is never registered."""
    import skops.io

    types = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    refused = refused_types(types, policy)
    if refused:
        raise ConfigError(_refusal(f"the model {type(model).__name__}", refused))
    return {"serialization_format": SKOPS, "skops_trusted_types": types}


# -- finding and hashing the model file ---------------------------------------------------------


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return DIGEST_PREFIX + digest.hexdigest()


def download_model_file(location: str, dest: Path, *, tracking_uri: str | None) -> ModelFile:
    """Download the ``MLmodel`` and the scikit-learn model file of the model at ``location``
    (an artifact URI) into ``dest``; returns the file and its format. Raises ModelLoadError
    when the model has no sklearn flavour or names a file outside its folder."""
    import mlflow.artifacts
    from mlflow.models import Model

    base = location.rstrip("/")
    mlmodel = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{base}/MLmodel", dst_path=str(dest), tracking_uri=tracking_uri
    )
    flavor = Model.load(mlmodel).flavors.get("sklearn")
    if not flavor or not flavor.get("pickled_model"):
        raise ModelLoadError(f"the model at {location} is not an MLflow scikit-learn model")
    name = PurePosixPath(str(flavor["pickled_model"]))
    if name.is_absolute() or ".." in name.parts:
        raise ModelLoadError(f"the model at {location} names a file outside its folder: {name}")
    (dest / name.parent).mkdir(parents=True, exist_ok=True)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{base}/{name}", dst_path=str(dest / name.parent), tracking_uri=tracking_uri
    )
    fmt = str(flavor.get("serialization_format") or _MLFLOW_DEFAULT_FORMAT)
    return ModelFile(Path(path), fmt)


def artifact_location(client: MlflowClient, model_uri: str) -> str:
    """The artifact URI behind ``model_uri``: ``models:/m-<id>`` (a logged model),
    ``models:/<name>/<version>``, ``runs:/<run>/<path>`` or an artifact URI itself."""
    if model_uri.startswith("models:/m-"):
        return str(client.get_logged_model(model_uri.removeprefix("models:/").split("/")[0])
                   .artifact_location)  # fmt: skip
    if model_uri.startswith("models:/"):
        name, _, version = model_uri.removeprefix("models:/").rstrip("/").rpartition("/")
        return str(client.get_model_version_download_uri(name, version))
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
        return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
    return model_uri


def artifact_digest(client: MlflowClient, model_uri: str) -> str:
    """``sha256:<hex>`` of the model file of ``model_uri``, to record at registration (see
    ``lineage.MODEL_DIGEST``). Raises ModelLoadError when it is no scikit-learn model."""
    with tempfile.TemporaryDirectory(prefix="model-digest-") as tmp:
        location = artifact_location(client, model_uri)
        found = download_model_file(location, Path(tmp), tracking_uri=client.tracking_uri)
        return file_digest(found.path)


# -- loading ------------------------------------------------------------------------------------


def load_model_file(
    found: ModelFile, *, what: str, expected_digest: str | None, policy: LoadPolicy
) -> Any:
    """Load ``found`` after checking its digest against ``expected_digest`` (None: a version
    registered before digests, loaded with a warning), its format and its types (see the
    module docstring). ``what`` names the model in errors. Raises ModelLoadError."""
    digest = file_digest(found.path)
    if expected_digest is None:
        logger.warning(
            "%s: no recorded digest to check its model file (%s) against (tag %s; versions "
            "registered before digests were recorded have none): loaded unverified",
            what, digest, lineage.MODEL_DIGEST,
        )  # fmt: skip
    elif digest != expected_digest:
        raise ModelLoadError(
            f"{what}: its model file changed after registration: it hashes to {digest}, the "
            f"version was registered with {expected_digest} (tag {lineage.MODEL_DIGEST}); "
            f"restore the artifact or register the model again"
        )
    fmt = found.serialization_format
    if fmt != SKOPS:
        return _load_pickle(found, what=what, policy=policy)
    import skops.io

    try:
        types = skops.io.get_untrusted_types(file=found.path)
    except Exception as exc:
        raise ModelLoadError(f"{what}: not a readable skops file: {first_line(exc)}") from exc
    refused = refused_types(types, policy)
    if refused:
        raise ModelLoadError(_refusal(what, refused))
    try:
        return skops.io.load(found.path, trusted=list(types))
    except Exception as exc:
        raise ModelLoadError(f"{what}: skops cannot load it: {first_line(exc)}") from exc


def _load_pickle(found: ModelFile, *, what: str, policy: LoadPolicy) -> Any:
    fmt = found.serialization_format
    if fmt not in PICKLE_FORMATS:
        raise ModelLoadError(f"{what}: unknown serialization format {fmt!r}; it must be skops")
    if not policy.allow_pickle:
        raise ModelLoadError(
            f"{what} is saved as {fmt}, which runs any code its file holds when loaded; only "
            f"skops models load unless MLOPS_ALLOW_PICKLE_MODELS=true (setting "
            f"allow_pickle_models); better: register it again (this package saves skops)"
        )
    logger.warning("%s is saved as %s: loading it because allow_pickle_models is set", what, fmt)
    import pickle

    with found.path.open("rb") as f:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(f)
        return pickle.load(f)


def load_artifact(
    location: str,
    *,
    what: str,
    expected_digest: str | None,
    policy: LoadPolicy,
    tracking_uri: str | None,
) -> Any:
    """Download the model at artifact URI ``location`` and load it (:func:`load_model_file`)."""
    with tempfile.TemporaryDirectory(prefix="model-load-") as tmp:
        try:
            found = download_model_file(location, Path(tmp), tracking_uri=tracking_uri)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{what}: cannot download its model from {location}: {first_line(exc)}"
            ) from exc
        return load_model_file(found, what=what, expected_digest=expected_digest, policy=policy)


def load_version(client: MlflowClient, name: str, version: str, policy: LoadPolicy) -> Any:
    """Load the scikit-learn model of ``name`` version ``version``: the one loader of serving,
    batch scoring and training. Raises ModelLoadError naming ``models:/<name>/<version>``."""
    what = f"models:/{name}/{version}"
    try:
        mv = client.get_model_version(name, str(version))
        location = str(client.get_model_version_download_uri(name, str(version)))
    except Exception as exc:
        raise ModelLoadError(f"cannot load {what}: {type(exc).__name__}: {exc}") from exc
    return load_artifact(
        location,
        what=what,
        expected_digest=dict(mv.tags).get(lineage.MODEL_DIGEST),
        policy=policy,
        tracking_uri=client.tracking_uri,
    )
