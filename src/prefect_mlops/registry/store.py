"""The MLflow stores: pointing MLflow at them, the client, experiments, and lookups that say
clearly when a registered model or version does not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect_mlops.errors import ModelNotFoundError
from prefect_mlops.registry import lineage
from prefect_mlops.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def configure_mlflow(settings: Settings) -> None:
    """Point the ``mlflow`` module at the configured tracking and registry stores."""
    import mlflow

    settings.home_path.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_registry_uri)


def mlflow_client(settings: Settings) -> MlflowClient:
    """An ``MlflowClient`` bound to the configured stores."""
    from mlflow import MlflowClient

    settings.home_path.mkdir(parents=True, exist_ok=True)
    return MlflowClient(
        tracking_uri=settings.resolved_tracking_uri, registry_uri=settings.resolved_registry_uri
    )


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    """The id of experiment ``name``, created with ``artifact_location`` if absent.

    The experiment is marked as model training (``mlflow.experimentKind``), so MLflow 3's UI
    opens it on its runs rather than on the GenAI overview; an existing experiment without the
    tag gets it, one whose kind was chosen (in the UI or by another tool) keeps its kind.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(
            name,
            artifact_location=artifact_location,
            tags={lineage.EXPERIMENT_KIND: lineage.EXPERIMENT_KIND_MODEL_TRAINING},
        )
    if lineage.EXPERIMENT_KIND not in experiment.tags:
        client.set_experiment_tag(
            experiment.experiment_id,
            lineage.EXPERIMENT_KIND,
            lineage.EXPERIMENT_KIND_MODEL_TRAINING,
        )
    return experiment.experiment_id


def search_versions(client: MlflowClient, model_name: str) -> list[ModelVersion]:
    """Every version of ``model_name`` (none when it has none), whatever quotes its name holds.

    MLflow's filter language has no escape for a quote inside a string, so the name goes in the
    quotes it does not contain; a name with both kinds is matched with ``LIKE`` (each quote a
    one-character wildcard) and the exact name kept.
    """
    if "'" not in model_name:
        return list(client.search_model_versions(f"name = '{model_name}'"))
    if '"' not in model_name:
        return list(client.search_model_versions(f'name = "{model_name}"'))
    pattern = model_name.replace("'", "_").replace('"', "_")
    found = client.search_model_versions(f"name LIKE '{pattern}'")
    return [mv for mv in found if mv.name == model_name]


def is_not_found_error(exc: Exception) -> bool:
    """True when an MLflow error says the model, version or alias does not exist."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


def model_exists(client: MlflowClient, model_name: str) -> bool:
    """True when ``model_name`` is a registered model; other MLflow errors propagate."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
        return True
    except MlflowException as exc:
        if is_not_found_error(exc):
            return False
        raise


def get_registered_model(client: MlflowClient, model_name: str) -> Any:
    """The registered model ``model_name``; raises ModelNotFoundError naming it when absent."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model_name)
    except MlflowException as exc:
        if is_not_found_error(exc):
            raise ModelNotFoundError(
                f"registered model {model_name!r} not found in the registry"
            ) from exc
        raise


def require_version(client: MlflowClient, model_name: str, version: str) -> None:
    """Raise ModelNotFoundError naming the model when ``version`` does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if is_not_found_error(exc):
            raise ModelNotFoundError(f"model {model_name!r} has no version {version!r}") from exc
        raise
