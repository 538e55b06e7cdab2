"""prefect-mlops: the MLOps lifecycle as Prefect 3 flows.

The core is one subpackage per process of the lifecycle (``data``, ``modeling``, ``registry``,
``serving``, ``scoring``, ``deployment``, ``cli``); ``flows``, ``tasks`` and ``deployments`` are the
Prefect layer over it. The names below are the public surface; they are imported on first use, so
``import prefect_mlops`` (which Prefect does for every collection it finds) stays light.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("prefect-mlops")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: public name -> the module that defines it
_PUBLIC: dict[str, str] = {
    # configuration
    "Settings": "prefect_mlops.settings",
    "get_settings": "prefect_mlops.settings",
    "TrainingConfig": "prefect_mlops.config",
    "DataSource": "prefect_mlops.config",
    "DeploymentConfig": "prefect_mlops.deployment.rollout",
    "ScoringConfig": "prefect_mlops.scoring.config",
    # errors
    "MLOpsError": "prefect_mlops.errors",
    "ConfigError": "prefect_mlops.errors",
    "DataIngestError": "prefect_mlops.errors",
    "DataValidationError": "prefect_mlops.errors",
    "TrainingError": "prefect_mlops.errors",
    "EvaluationError": "prefect_mlops.errors",
    "ModelRegistrationError": "prefect_mlops.errors",
    # flows
    "continuous_training": "prefect_mlops.flows.training",
    "continuous_training_from_file": "prefect_mlops.flows.training",
    "model_deployment": "prefect_mlops.flows.deployment",
    "batch_scoring": "prefect_mlops.flows.scoring",
}

__all__ = [
    "ConfigError",
    "DataIngestError",
    "DataSource",
    "DataValidationError",
    "DeploymentConfig",
    "EvaluationError",
    "MLOpsError",
    "ModelRegistrationError",
    "ScoringConfig",
    "Settings",
    "TrainingConfig",
    "TrainingError",
    "__version__",
    "batch_scoring",
    "continuous_training",
    "continuous_training_from_file",
    "get_settings",
    "model_deployment",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562); raises AttributeError for any other name."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'prefect_mlops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from prefect_mlops.config import DataSource, TrainingConfig
    from prefect_mlops.deployment.rollout import DeploymentConfig
    from prefect_mlops.errors import (
        ConfigError,
        DataIngestError,
        DataValidationError,
        EvaluationError,
        MLOpsError,
        ModelRegistrationError,
        TrainingError,
    )
    from prefect_mlops.flows.deployment import model_deployment
    from prefect_mlops.flows.scoring import batch_scoring
    from prefect_mlops.flows.training import continuous_training, continuous_training_from_file
    from prefect_mlops.scoring.config import ScoringConfig
    from prefect_mlops.settings import Settings, get_settings
