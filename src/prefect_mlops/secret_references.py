"""Secret references: a password or URL named by an environment variable or a Prefect Secret
block, resolved only where a connection opens, so flow parameters and logged configs hold the
name, never the value (masking what is shown is :mod:`prefect_mlops.secrets`)."""

from __future__ import annotations

import os
from typing import Any

from prefect_mlops.errors import ConfigError


def resolve_env(name: str, field: str) -> str:
    """The value of the environment variable ``name`` that ``field`` refers to.

    Raises ConfigError naming ``field`` and the variable when it is unset or empty.
    """
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"{field} names the environment variable {name}, which is not set (or empty) in "
            f"this process; export {name} where the flow runs (the worker), or fix {field}"
        )
    return value


def resolve_secret_block(name: str, field: str) -> str:
    """The value of the Prefect Secret block ``name`` that ``field`` refers to.

    Raises ConfigError naming ``field`` and the block when it cannot be loaded or is not text.
    """
    from prefect.blocks.system import Secret

    try:
        block: Secret[Any] = Secret.load(name, _sync=True)  # type: ignore[call-arg,assignment]
        value = block.get()
    except Exception as exc:  # Prefect raises ValueError for an unknown name, httpx errors...
        raise ConfigError(
            f"{field} names the Prefect Secret block {name!r}, which cannot be loaded "
            f"({type(exc).__name__}); create it (Secret(value=...).save({name!r})) on the "
            f"Prefect API this flow runs on, or fix {field}"
        ) from None
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{field}: the Prefect Secret block {name!r} must hold a non-empty string"
        )
    return value


def with_password(url: str, password: str) -> str:
    """``url`` (a SQLAlchemy URL) with ``password`` as its userinfo password."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)
