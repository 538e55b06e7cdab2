"""The prefect-mlops exception family.

Every error the package raises on purpose is a subclass of :class:`MLOpsError`::

    MLOpsError
    ├── ConfigError              a configuration value is invalid (names the field)
    ├── DataIngestError          a table cannot be read (names the file / query)
    ├── DataValidationError      the data breaks its expectations (names every column)
    ├── TrainingError            the estimator cannot be built or fitted (names the import path)
    ├── EvaluationError          metrics cannot be computed
    └── ModelRegistrationError   the MLflow registry refused a write (names model and version)

Messages name the file, column or field, the value seen and, where there is one, the fix.
"""

from __future__ import annotations


class MLOpsError(Exception):
    """Base class of every error raised by prefect-mlops."""


class ConfigError(MLOpsError):
    """A configuration value is missing or invalid."""


class DataIngestError(MLOpsError):
    """A data source cannot be read or is empty."""


class DataValidationError(MLOpsError):
    """The data does not meet its expectations.

    ``failures`` holds one human-readable line per failed expectation.
    """

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class TrainingError(MLOpsError):
    """The model pipeline cannot be built or fitted."""


class EvaluationError(MLOpsError):
    """Metrics cannot be computed."""


class ModelRegistrationError(MLOpsError):
    """A write to the model registry failed; aliases were restored."""


class MLOpsWarning(UserWarning):
    """Warnings issued by prefect-mlops (tests turn them into errors)."""
