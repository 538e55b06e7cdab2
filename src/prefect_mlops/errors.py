"""The prefect-mlops exception family.

Every error the package raises on purpose is a subclass of :class:`MLOpsError`, named for what
failed::

    MLOpsError
    ├── ConfigError                 a configuration value is invalid (names the field)
    ├── DataIngestError             a table cannot be read (names the file / query)
    ├── DataValidationError         the data breaks its expectations (names every column)
    ├── TrainingError               the estimator cannot be built or fitted (names the import path)
    ├── EvaluationError             metrics cannot be computed
    ├── RegistryError               the model registry does not hold what was asked for
    │   ├── ModelNotFoundError          no registered model / version of that name
    │   ├── AliasNotFoundError          the model has no version behind that alias
    │   ├── NoPreviousChampionError     a rollback with no previous champion to go back to
    │   └── ModelRegistrationError      a registry write failed (aliases were restored)
    ├── ModelLoadError              a model version cannot be loaded to serve or score
    ├── RequestValidationError      a prediction request breaks the model's input (field, status)
    ├── ServiceStartError           the prediction service did not become ready
    ├── InfraValidationError        a candidate failed infra-validation in a real server
    ├── ScoringError                batch scoring cannot run (model, columns, output folder)
    ├── MonitoringError             a monitoring run cannot run (its version, profile or window)
    └── PrefectAPIError             the Prefect API does not answer, or a local server did not start

Messages name the file, column or field, the value seen and, where there is one, the fix.
Third-party errors are wrapped where they happen (``raise ... from exc``).
"""

from __future__ import annotations

from typing import Any


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MLOpsError(Exception):
    """Base class of every error raised by prefect-mlops.

    Its message is masked (``prefect_mlops.secrets.mask_text``): a URL's password or secret
    query parameter never reaches a state message, log line, event or stored exception.
    """

    def __init__(self, *args: Any) -> None:
        from prefect_mlops.secrets import mask_text

        super().__init__(*(mask_text(a) if isinstance(a, str) else a for a in args))


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


class RegistryError(MLOpsError):
    """The model registry does not hold what was asked for, or refused a write."""


class ModelNotFoundError(RegistryError):
    """No registered model, or no version of it, has the name or number asked for."""


class AliasNotFoundError(RegistryError):
    """The registered model has no version behind the alias asked for."""


class NoPreviousChampionError(RegistryError):
    """A rollback was asked for, but no previous champion is recorded to go back to."""


class ModelRegistrationError(RegistryError):
    """A write to the model registry failed; the aliases were restored (or the error says which
    could not be)."""


class ModelLoadError(MLOpsError):
    """A model version cannot be resolved or loaded from the registry."""


class RequestValidationError(MLOpsError):
    """A request does not match the model's input: ``field`` names where, ``problem`` what.

    ``status`` is the HTTP status the service answers with (400 unparseable body, 413 too many
    rows, 422 a field breaks the signature).
    """

    def __init__(self, field: str, problem: str, status: int = 422) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": str(self), "field": self.field, "problem": self.problem}


class ServiceStartError(MLOpsError):
    """The prediction service did not become ready; ``returncode`` is its exit code when it
    exited (None when it was still starting at the deadline)."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class InfraValidationError(MLOpsError):
    """A candidate failed to load, answer, match its offline predictions or meet its SLO."""


class ScoringError(MLOpsError):
    """Batch scoring cannot run: unknown model/version/alias, missing feature columns, or an
    output folder that already holds results."""


class MonitoringError(MLOpsError):
    """A monitoring run cannot run: the version has neither a reference profile nor a
    snapshot to compute one from, or the serving log or labels cannot be read."""


class PrefectAPIError(MLOpsError):
    """The Prefect API the CLI was pointed at does not answer, or a local server did not start."""
