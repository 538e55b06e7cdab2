"""`score` and `deploy` options are their config models' fields: same default, same help."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from typer.main import get_command

from prefect_mlops.cli import deployment, scoring
from prefect_mlops.cli.app import app
from prefect_mlops.config import DataSource
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.scoring.config import ScoringConfig

CASES = [("score", scoring, ScoringConfig), ("deploy", deployment, DeploymentConfig)]


def _field(model: type[BaseModel], path: str) -> Any:
    head, _, rest = path.partition(".")
    field = model.model_fields[head]
    return _field(DataSource, rest) if rest else field


@pytest.mark.parametrize(("command", "module", "model"), CASES, ids=[c[0] for c in CASES])
def test_every_option_is_a_field_with_its_default_and_description(
    command: str, module: ModuleType, model: type[BaseModel]
) -> None:
    params = {p.name: p for p in get_command(app).commands[command].params}  # type: ignore[attr-defined]
    assert set(params) == set(module.FIELDS), "an option without a field, or a stale entry"
    for name, param in params.items():
        field = _field(model, module.FIELDS[name])
        if name in module.DERIVED:
            continue
        required = field.default is PydanticUndefined and field.default_factory is None
        if required:
            assert param.required, name
        elif field.default_factory is not None:
            assert param.default is None and field.default_factory() == [], name
        else:
            assert param.default == field.default, (name, param.default, field.default)
        help_text = getattr(param, "help", None) or ""
        assert help_text.startswith(field.description), (name, help_text, field.description)


def test_a_changed_default_would_be_caught() -> None:
    """The check compares values: a CLI default that differs from the field's is not equal."""
    param = next(p for p in get_command(app).commands["score"].params if p.name == "chunk_size")  # type: ignore[attr-defined]
    assert param.default == ScoringConfig.model_fields["chunk_size"].default == 200_000
    assert param.default != ScoringConfig.model_fields["parallelism"].default
