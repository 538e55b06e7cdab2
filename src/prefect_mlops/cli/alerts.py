"""``alerts``: the alert automation (drift, quality loss, failing, rollback → a webhook)."""

from __future__ import annotations

import typer

from prefect_mlops.cli.environment import prepare_flow_process


def alerts() -> None:
    """Create, replace or remove the alert automation on the Prefect server.

    With `MLOPS_ALERT_WEBHOOK_URL` set, every `mlops.drift.detected`, `mlops.quality.degraded`,
    `mlops.model.failing` and `mlops.model.rolled_back` event posts JSON to that URL (kept in a
    Prefect Webhook block as a secret, never in a flow's parameters); unset, alerts are off and
    an earlier alert automation is removed. `make deploy` runs it.

    Example: `MLOPS_ALERT_WEBHOOK_URL=https://hooks.example.com/T0/B0 prefect-mlops alerts`
    """
    prepare_flow_process(loads_models=False)
    from prefect_mlops.automations import ALERT_URL_ENV, ensure_alerts

    automation = ensure_alerts()
    if automation is None:
        typer.echo(f"alerts off ({ALERT_URL_ENV} is not set); no alert automation")
    else:
        typer.secho(f"alerts on: automation {automation}", fg=typer.colors.GREEN)
