"""``models``, ``promote`` and ``rollback``: the registry from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prefect_mlops.cli.environment import quiet_environment


def models(
    name: Annotated[str | None, typer.Argument(help="Registered model name; omit to list.")] = None,
) -> None:
    """List registered models, or the versions of one with aliases, blessing and metrics."""
    quiet_environment()
    from rich.console import Console
    from rich.table import Table

    from prefect_mlops import registry
    from prefect_mlops.settings import get_settings

    client = registry.mlflow_client(get_settings())
    console = Console()
    if name is None:
        table = Table("model", "versions", "aliases", title="Registered models")
        for model in client.search_registered_models():
            aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(model.aliases.items()))
            count = len(registry.search_versions(client, model.name))
            table.add_row(model.name, str(count), aliases or "-")
        console.print(table)
        return
    table = Table("version", "aliases", "blessed", "metrics", "reason", "created", title=name)
    for v in registry.list_versions(client, name):
        metrics = " ".join(f"{k}={val}" for k, val in sorted(v.metrics.items()))
        table.add_row(
            v.version, ", ".join(v.aliases) or "-", v.blessed, metrics, v.reason, v.created
        )
    console.print(table)


def _move_champion(action: str, name: str, *args: str, reason: str) -> Any:
    """Run the registry's alias move ``action`` (``promote_version``, ``rollback_champion``)
    with the configured client."""
    quiet_environment()
    from prefect_mlops import registry
    from prefect_mlops.settings import get_settings

    client = registry.mlflow_client(get_settings())
    return getattr(registry, action)(client, name, *args, reason=reason)


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the alias move).")] = "manual",
) -> None:
    """Make a version the champion by hand; the previous champion is remembered."""
    move = _move_champion("promote_version", name, version, reason=reason)
    typer.echo(f"{name}: champion v{move.from_version or '-'} → v{move.to_version}")


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the alias move).")] = "manual",
) -> None:
    """Point the champion back at the previous champion."""
    move = _move_champion("rollback_champion", name, reason=reason)
    typer.echo(f"{name}: champion v{move.from_version} → v{move.to_version} (rolled back)")
