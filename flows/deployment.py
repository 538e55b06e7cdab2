"""The model-deployment flow: infra-validate a candidate in a real BentoML server, then roll it
out blue-green, canary or shadow, promoting or rolling back automatically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.tasks.deployment import (
    check_labels,
    infra_validate,
    promote,
    resolve_candidate,
    roll_back,
    start_rollout,
    watch_canary,
    watch_shadow,
)


class DeploymentOutcome(BaseModel):
    """What one deployment run decided."""

    model_name: str
    version: str
    strategy: str
    result: Literal["promoted", "rolled_back", "shadowed"] = Field(
        description="promoted: champion moved; rolled_back: champion kept; shadowed: observed only."
    )
    reason: str
    infra_validation: str


@flow(
    name="model-deployment",
    description="Infra-validate a blessed candidate in a real BentoML server, then blue-green, "
    "canary or shadow rollout with automatic rollback; every alias move is recorded.",
)
def model_deployment(config: DeploymentConfig) -> DeploymentOutcome:
    """Deploy ``config.version`` (default: the challenger) of ``config.model_name``."""
    version = resolve_candidate(config)
    labels = check_labels(config, version)
    report = infra_validate(config, version)
    if config.strategy == "blue-green":
        reason = f"blue-green after {report.summary()}"
        promote(config.model_name, version, reason)
        outcome = DeploymentOutcome(
            model_name=config.model_name, version=version, strategy=config.strategy,
            result="promoted", reason=reason, infra_validation=report.summary(),
        )  # fmt: skip
    elif config.strategy == "canary":
        rollout = start_rollout(config, version)
        with _rolled_back_on_failure(config, version):
            verdict = watch_canary(config, version, rollout, labels)
        if verdict.decision == "promote":
            promote(config.model_name, version, f"canary promoted: {verdict.reason}")
            result: Literal["promoted", "rolled_back", "shadowed"] = "promoted"
        else:
            roll_back(config.model_name, version, f"canary rolled back: {verdict.reason}")
            result = "rolled_back"
        outcome = DeploymentOutcome(
            model_name=config.model_name, version=version, strategy=config.strategy,
            result=result, reason=verdict.reason, infra_validation=report.summary(),
        )  # fmt: skip
    else:
        rollout = start_rollout(config, version)
        with _rolled_back_on_failure(config, version):
            shadow = watch_shadow(config, version, rollout)
        reason = shadow.reason
        if shadow.decision == "rollback":
            roll_back(config.model_name, version, f"shadow rolled back: {reason}")
            result = "rolled_back"
        elif (
            config.promote_after_shadow
            and shadow.compared
            and shadow.agreement >= config.min_agreement
        ):
            promote(config.model_name, version, reason)
            result = "promoted"
        else:
            roll_back(config.model_name, version, reason)
            result = "shadowed"
        outcome = DeploymentOutcome(
            model_name=config.model_name, version=version, strategy=config.strategy,
            result=result, reason=reason, infra_validation=report.summary(),
        )  # fmt: skip
    create_markdown_artifact(
        key="model-deployment",
        description=f"Deployment of {config.model_name} v{version}",
        markdown=f"# {config.model_name} v{version}: {outcome.result.replace('_', ' ')}\n\n"
        f"- strategy: {config.strategy}\n- reason: {outcome.reason}\n"
        f"- infra-validation: {outcome.infra_validation}\n",
    )
    return outcome


@contextmanager
def _rolled_back_on_failure(config: DeploymentConfig, version: str) -> Iterator[None]:
    """A rollout that cannot be watched (labels gone, registry down, ...) is ended, so all
    traffic goes back to the champion, before the error is raised."""
    try:
        yield
    except Exception as exc:
        roll_back(config.model_name, version, f"{config.strategy} aborted: {exc}"[:4900])
        raise
