"""The models in memory: one loaded version (:class:`LoadedModel`), what the service answers with
right now (:class:`ServingState`), and how the registry's wish becomes a state — loaded in full
before the runtime swaps to it (:func:`resolve_state`), or only checked (:func:`preflight`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from prefect_mlops.errors import ModelLoadError
from prefect_mlops.serving.routing import Variant, choose_variant
from prefect_mlops.serving.schema import InputSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.registry import Rollout
    from prefect_mlops.settings import Settings

# How the service's fatal start-up error begins (``RunningService.start_failure`` finds it).
CANNOT_START = "prefect-mlops service cannot start"

Loader = Callable[[Any, str, str], "LoadedModel"]


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory, with what ``/metadata`` shows about it."""

    name: str
    version: str
    model: Any
    schema: InputSchema
    signature: dict[str, Any]
    tags: dict[str, str]
    run_id: str | None
    source: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def classes(self) -> list[Any] | None:
        """A classifier's class labels (None for a regressor)."""
        classes = getattr(self.model, "classes_", None)
        if classes is None or not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(classes).tolist()

    def describe(self) -> dict[str, Any]:
        """What ``/metadata`` shows about this version."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "signature": self.signature,
            "classes": self.classes,
            "lineage": {k: v for k, v in self.tags.items() if k.startswith("mlops.")},
        }


@dataclass(frozen=True)
class ServingState:
    """What the service answers with right now; replaced as a whole, never mutated."""

    champion: LoadedModel
    alias: str | None
    challenger: LoadedModel | None = None
    rollout: Rollout | None = None
    # Why the rollout's challenger is not loaded (the champion answers everything meanwhile).
    challenger_error: str | None = None

    def model_for(self, variant: Variant) -> LoadedModel:
        """The model that answers ``variant`` (the champion when there is no challenger)."""
        if variant == "challenger" and self.challenger is not None:
            return self.challenger
        return self.champion

    def route(self, request_id: str) -> Variant:
        """Which variant answers ``request_id``."""
        if self.challenger is None:
            return "champion"
        return choose_variant(request_id, self.rollout)

    @property
    def shadow(self) -> LoadedModel | None:
        """The challenger of a shadow rollout (scores every logged request off the response
        path), else None."""
        if self.rollout is not None and self.rollout.mode == "shadow":
            return self.challenger
        return None


def load_version(
    client: MlflowClient, name: str, version: str, settings: Settings | None = None
) -> LoadedModel:
    """Load ``models:/<name>/<version>`` with its signature and tags through the safe loader
    (``registry.model_format.load_version``: skops, trusted types, the registered digest;
    ``settings`` default from the environment); raises ModelLoadError naming the URI."""
    from mlflow.models import get_model_info

    from prefect_mlops.registry import model_format
    from prefect_mlops.settings import get_settings

    policy = model_format.LoadPolicy.from_settings(settings or get_settings())
    uri = f"models:/{name}/{version}"
    try:
        mv = client.get_model_version(name, version)
        info = get_model_info(uri)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri}: {type(exc).__name__}: {exc}") from exc
    model = model_format.load_version(client, name, str(version), policy)
    signature = info.signature
    return LoadedModel(
        name=name,
        version=str(version),
        model=model,
        schema=InputSchema.from_signature(signature),
        signature=_signature_dict(signature),
        tags=dict(mv.tags),
        run_id=mv.run_id,
        source=str(mv.source),
    )


def _signature_dict(signature: Any) -> dict[str, Any]:
    if signature is None:
        return {}
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in signature.to_dict().items()}


def resolve_state(
    client: MlflowClient,
    settings: Settings,
    current: ServingState | None = None,
    loader: Loader = load_version,
) -> ServingState:
    """The state the registry asks for now: the champion (``serve_alias``, or the pinned
    ``serve_version``) and, during a rollout, the challenger. Versions already in ``current``
    are reused, new ones are loaded (by ``loader``) completely before the caller swaps the
    reference.

    A challenger that cannot be loaded does not fail the state: the champion answers every
    request and ``challenger_error`` says why (a canary must never take the champion down).
    Raises ModelLoadError when the registry cannot be read or the champion cannot be loaded.
    """
    from prefect_mlops import registry

    name = settings.serve_model_name
    if not name:
        raise ModelLoadError("MLOPS_SERVE_MODEL_NAME is not set: which registered model to serve?")
    try:
        if settings.serve_version:
            alias = None
            version = str(settings.serve_version)
            rollout = None
        else:
            alias = settings.serve_alias
            mv = registry.get_alias_version(client, name, alias)
            if mv is None:
                raise ModelLoadError(
                    f"registered model {name!r} has no version with alias {alias!r} "
                    f"in the registry at {settings.resolved_registry_uri}"
                )
            version = str(mv.version)
            rollout = registry.get_rollout(client, name)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read model {name!r} from the registry at {settings.resolved_registry_uri}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    loaded: dict[str, LoadedModel] = {}
    if current is not None:
        for m in (current.champion, current.challenger):
            if m is not None:
                loaded[m.version] = m

    def get(v: str) -> LoadedModel:
        if v not in loaded:
            # The real loader follows these settings' load policy, not the environment's.
            loaded[v] = (
                load_version(client, name, v, settings)
                if loader is load_version
                else loader(client, name, v)
            )
        return loaded[v]

    champion = get(version)
    challenger, challenger_error = None, None
    if rollout is not None and rollout.challenger_version != version:
        try:
            challenger = get(rollout.challenger_version)
        except ModelLoadError as exc:
            challenger_error = f"the {rollout.mode} challenger is not served: {exc}"
    else:
        rollout = None
    return ServingState(champion, alias, challenger, rollout, challenger_error)


def preflight(settings: Settings) -> ServingState:
    """Check, without loading any model, that the registry answers and names the versions to
    serve, and that their model metadata can be read. Returns the state with ``model=None``
    (the champion and, during a rollout, the challenger or ``challenger_error``). Raises
    ModelLoadError naming the model and the reason.

    Cheap on purpose: loading the model here would cost every start-up the scikit-learn and
    skops imports a second time (~10 s); an artifact that cannot be loaded fails the worker
    instead, and the service stops the server then (see ``prefect_mlops.deployments.service``).
    """
    from prefect_mlops.registry import configure_mlflow, mlflow_client

    def describe(client: Any, name: str, version: str) -> LoadedModel:
        from mlflow.models import get_model_info

        uri = f"models:/{name}/{version}"
        try:
            info = get_model_info(uri)
        except Exception as exc:
            raise ModelLoadError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from exc
        return LoadedModel(
            name, version, None, InputSchema.from_signature(info.signature), {}, {}, None, uri
        )

    try:
        configure_mlflow(settings)
        client = mlflow_client(settings)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot open the registry at {settings.resolved_registry_uri}: {exc}"
        ) from exc
    return resolve_state(client, settings, None, describe)


def same_state(a: ServingState | None, b: ServingState) -> bool:
    """Whether ``a`` and ``b`` serve the same versions in the same way."""
    if a is None:
        return False
    ch_a = a.challenger.version if a.challenger else None
    ch_b = b.challenger.version if b.challenger else None
    return (a.champion.version, ch_a, a.rollout) == (b.champion.version, ch_b, b.rollout)
