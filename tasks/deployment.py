"""Tasks of the model-deployment process: resolve the candidate, infra-validate it, roll it out,
watch it, decide and record. Each is one call into ``prefect_mlops.deployment`` plus a log line
saying what happened."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops import registry
from prefect_mlops.deployment import decisions, infra_validation, watching
from prefect_mlops.deployment import rollout as deployment_rollout
from prefect_mlops.deployment.canary import CanaryVerdict
from prefect_mlops.deployment.decisions import Decision
from prefect_mlops.deployment.infra_validation import InfraValidationReport
from prefect_mlops.deployment.labels import LabelSpec, resolve_label_spec
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.shadow import ShadowVerdict
from prefect_mlops.errors import InfraValidationError
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient


def _client() -> Any:
    return registry.mlflow_client(get_settings())


@task(name="resolve-candidate", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def resolve_candidate(config: DeploymentConfig) -> str:
    """The candidate version: the configured one, else the version behind ``challenger``."""
    version = deployment_rollout.resolve_candidate(_client(), config)
    given = "as configured" if config.version else "the version behind 'challenger'"
    get_run_logger().info("candidate: %s v%s (%s)", config.model_name, version, given)
    return version


@task(
    name="check-labels",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def check_labels(config: DeploymentConfig, version: str) -> LabelSpec | None:
    """Before anything moves: the labels source is readable and has the columns the canary
    needs; returns how to score it (None when no labels are configured)."""
    if config.labels is None:
        return None
    from prefect_mlops.data.sources import read_table

    tags = _client().get_model_version(config.model_name, version).tags
    spec = resolve_label_spec(
        read_table(config.labels, allow_empty=True),
        where=config.labels.describe(),
        label_column=config.label_column,
        metric=config.quality_metric,
        version_tags=dict(tags),
    )
    baseline = "none" if spec.offline_baseline is None else f"{spec.offline_baseline:.4g}"
    get_run_logger().info(
        "labels %s: column %r, %s %s (offline test value %s)",
        spec.where, spec.label_column, spec.task, spec.metric, baseline,
    )  # fmt: skip
    return spec


@task(name="infra-validate", timeout_seconds=1800, cache_policy=NO_CACHE)
def infra_validate(config: DeploymentConfig, version: str) -> InfraValidationReport:
    """Serve ``version`` in a real BentoML server on a loopback port, send the test rows, and
    check answers equal the offline predictions, p99 latency is under the SLO, errors ≤ max.

    Records the result on the model version (tags ``mlops.infra_validation*``) and as an
    artifact; raises InfraValidationError when the candidate fails (it is never promoted).
    """
    report = infra_validation.validate_candidate(_client(), get_settings(), config, version)
    get_run_logger().info("%s v%s: %s", config.model_name, version, report.summary())
    create_markdown_artifact(
        key="infra-validation",
        description=f"Infra-validation of {config.model_name} v{version}",
        markdown=infra_validation.report_markdown(config.model_name, version, report),
    )
    if not report.passed:
        raise InfraValidationError(f"{config.model_name} v{version}: {report.summary()}")
    return report


@task(name="start-rollout", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def start_rollout(config: DeploymentConfig, version: str) -> registry.Rollout:
    """Start a canary or shadow rollout of ``version`` (the serving process picks it up)."""
    started = deployment_rollout.start_progressive_rollout(_client(), config, version)
    share = f", challenger share {started.share:.0%}" if started.mode == "canary" else ""
    get_run_logger().info(
        "%s of %s v%s started at %s%s",
        started.mode, config.model_name, version, started.started_at, share,
    )  # fmt: skip
    return started


@task(name="watch-canary", timeout_seconds=24 * 3600, cache_policy=NO_CACHE)
def watch_canary(
    config: DeploymentConfig,
    version: str,
    rollout: registry.Rollout,
    labels: LabelSpec | None = None,
) -> CanaryVerdict:
    """Read the serving log (and the labels, when configured; and the live services'
    ``/metadata``) until the canary is judged healthy, breached, not served, or out of time;
    records the figures on the version."""
    verdict = watching.watch_live_canary(
        _client(), get_settings(), config, version, rollout, labels
    )
    get_run_logger().info("canary of v%s: %s (%s)", version, verdict.decision, verdict.reason)
    return verdict


@task(name="watch-shadow", timeout_seconds=24 * 3600, cache_policy=NO_CACHE)
def watch_shadow(
    config: DeploymentConfig, version: str, rollout: registry.Rollout
) -> ShadowVerdict:
    """Read the serving log until ``min_requests`` rows were shadowed, time is up, or the live
    service is found not to serve the challenger; records rows and agreement on the version."""
    verdict = watching.watch_live_shadow(_client(), get_settings(), config, version, rollout)
    get_run_logger().info("shadow of v%s: %s (%s)", version, verdict.decision, verdict.reason)
    return verdict


@task(name="decide-deployment", cache_policy=NO_CACHE)
def decide(
    config: DeploymentConfig,
    report: InfraValidationReport,
    verdict: CanaryVerdict | ShadowVerdict | None,
) -> Decision:
    """Promote, roll back or keep shadowed, from the strategy's verdict (nothing moves yet)."""
    decision = decisions.decide(config, report, verdict)
    get_run_logger().info(
        "%s: %s -> %s (%s)", config.strategy, decision.action, decision.result, decision.reason
    )
    return decision


@task(name="record-decision", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def record_decision(model_name: str, version: str, decision: Decision) -> registry.AliasMove | None:
    """Carry out ``decision`` in the registry: promote (``champion`` moves, the previous one is
    remembered) or roll back (the rollout ends, the champion kept is recorded)."""
    move = decisions.carry_out(_client(), model_name, version, decision)
    logger = get_run_logger()
    if move is not None:
        logger.info("champion: v%s -> v%s", move.from_version, move.to_version)
    else:
        logger.info("v%s %s: the champion is kept, the rollout ended", version, decision.result)
    return move


@task(name="roll-back", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def roll_back(model_name: str, version: str, reason: str) -> None:
    """End the rollout: every request goes back to the champion; the outcome is recorded on the
    version and, as the champion kept, in the alias history."""
    decisions.roll_back(_client(), model_name, version, reason)
    get_run_logger().info("v%s rolled back, the champion is kept: %s", version, reason)
