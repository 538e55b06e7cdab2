"""``deploy``: the model-deployment flow (infra-validation, then the rollout) from the command line.

Every option is a field of :class:`~prefect_mlops.deployment.rollout.DeploymentConfig`
(``FIELDS``): its default is the field's and its help starts with the field's description
(tests/unit/cli/test_options.py checks both). The model is not imported here: it pulls in
pandas and scikit-learn, and ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from prefect_mlops.cli import exit_codes
from prefect_mlops.cli.environment import prepare_flow_process, quiet_environment

#: Parameter name → the DeploymentConfig field it sets.
FIELDS = {
    "name": "model_name",
    "version": "version",
    "strategy": "strategy",
    "latency_slo_ms": "latency_slo_ms",
    "canary_share": "canary_share",
    "min_requests": "min_requests",
    "max_minutes": "max_minutes",
    "labels": "labels",
    "label_column": "label_column",
    "quality_metric": "quality_metric",
    "max_quality_drop": "max_quality_drop",
    "min_labelled_rows": "min_labelled_rows",
    "service_url": "service_urls",
}
DERIVED: set[str] = set()


def deploy(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        str | None,
        typer.Option(help="Candidate version; default: the version behind 'challenger'."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="blue-green (switch after validation), canary (a share of live traffic, then "
            "promote or roll back) or shadow (challenger scores every request silently)."
        ),
    ] = "blue-green",
    latency_slo_ms: Annotated[
        float, typer.Option(help="Infra-validation: p99 request latency must be below.")
    ] = 500.0,
    canary_share: Annotated[
        float, typer.Option(help="Share of live requests the challenger answers.")
    ] = 0.1,
    min_requests: Annotated[
        int, typer.Option(help="Canary/shadow: challenger requests to observe.")
    ] = 100,
    max_minutes: Annotated[
        float, typer.Option(help="Canary/shadow: longest observation before deciding.")
    ] = 30.0,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Canary: ground truth that arrives during the canary, re-read at every poll: "
            "a CSV/Parquet file or SQL query with `request_id`, `row_index` (for requests of "
            "several rows) and the label column. With labels the canary also judges live "
            "quality. Here: the file's path (a SQL query goes in the flow's parameters)."
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(
            help="Canary: the labels' true-value column; default: the model's training "
            "target (version tag mlops.target)."
        ),
    ] = None,
    quality_metric: Annotated[
        str | None,
        typer.Option(
            help="Canary: live quality metric: accuracy or f1 (classifiers), rmse, mae or "
            "r2 (regressors); default accuracy / rmse."
        ),
    ] = None,
    max_quality_drop: Annotated[
        float,
        typer.Option(
            help="Canary: roll back when the challenger's live metric is worse than the "
            "champion's over the same window (else its own offline test metric) by more "
            "than this."
        ),
    ] = 0.02,
    min_labelled_rows: Annotated[
        int,
        typer.Option(
            help="Canary with labels: labelled challenger rows needed before quality is "
            "judged; promotion waits for them (too few by max_minutes → roll back)."
        ),
    ] = 50,
    service_url: Annotated[
        list[str] | None,
        typer.Option(
            help="Canary/shadow: base URLs of the live service(s) (http://host:port). Their "
            "GET /metadata is read at every poll (with MLOPS_SERVE_TOKEN): a challenger a "
            "service cannot load ends the rollout at once, with the service's load error. "
            "Repeat the option for several services."
        ),
    ] = None,
) -> None:
    """Run the model-deployment flow: infra-validate the candidate in a real BentoML server
    on a loopback port, then roll it out.

    blue-green moves `champion` after validation; canary and shadow need the live service
    (`prefect-mlops serve`) to receive traffic, read its serving log, then promote or roll back.
    Exit 0 when promoted (or shadowed), 3 when rolled back, 1 when validation failed.

    Example: `prefect-mlops deploy churn-demo --strategy canary --canary-share 0.2
    --labels labels.csv`
    """
    quiet_environment()
    from prefect_mlops.cli.options import validated
    from prefect_mlops.deployment.rollout import DeploymentConfig

    config = validated(
        DeploymentConfig,
        {
            "model_name": name,
            "version": version,
            "strategy": strategy,
            "latency_slo_ms": latency_slo_ms,
            "canary_share": canary_share,
            "min_requests": min_requests,
            "max_minutes": max_minutes,
            "labels": {"path": labels} if labels else None,
            "label_column": label_column,
            "quality_metric": quality_metric,
            "max_quality_drop": max_quality_drop,
            "min_labelled_rows": min_labelled_rows,
            "service_urls": service_url or [],
        },
        "deploy options",
    )
    prepare_flow_process(loads_models=False)
    from prefect_mlops.flows.deployment import model_deployment

    outcome = model_deployment(config)
    typer.echo(f"{name} v{outcome.version}: {outcome.result.replace('_', ' ')}")
    typer.echo(f"  reason: {outcome.reason}")
    typer.echo(f"  {outcome.infra_validation}")
    raise typer.Exit(exit_codes.NOT_BLESSED if outcome.result == "rolled_back" else exit_codes.OK)
