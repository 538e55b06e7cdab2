"""The MLflow stores: pointing MLflow at them, the client, experiments, and lookups that say
clearly when a registered model or version does not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect_mlops.errors import ModelNotFoundError
from prefect_mlops.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
    """The id of experiment ``name``, created with ``artifact_location`` if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def is_not_found_error(exc: Exception) -> bool:
    """True when an MLflow error says the model, version or alias does not exist."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


def model_exists(client: MlflowClient, model_name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
        return True
    except MlflowException as exc:
        if is_not_found_error(exc):
            return False
        raise


def get_registered_model(client: MlflowClient, model_name: str) -> Any:
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
