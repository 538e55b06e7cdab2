"""Command options as config models: one validation step that fails as a ConfigError."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from prefect_mlops.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], raw: dict[str, Any], source: str) -> ModelT:
    """``raw`` validated as ``model``; raises ConfigError naming every invalid field."""
    from prefect_mlops.config import format_validation_error

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc
