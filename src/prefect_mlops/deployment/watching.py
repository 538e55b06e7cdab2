"""The canary / shadow watch loop: every ``poll_seconds``, read what the live service shows and
ask the verdict, until it decides (anything but ``wait``) or ``max_minutes`` are up.

The loop takes its evidence (:class:`Evidence`), clock and sleep as arguments, so a unit test
drives it with a scripted serving log and a fake clock; :func:`watch_live_canary` and
:func:`watch_live_shadow` run it against the real serving log and services and record the
figures on the model version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

import pandas as pd

from prefect_mlops import registry
from prefect_mlops.deployment.canary import CanaryVerdict, canary_tags, judge_canary
from prefect_mlops.deployment.labels import LabelSpec, read_live_quality
from prefect_mlops.deployment.live_quality import QualityReading
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.serving_evidence import LiveService
from prefect_mlops.deployment.shadow import ShadowVerdict, judge_shadow, shadow_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.settings import Settings

Verdict = TypeVar("Verdict", CanaryVerdict, ShadowVerdict)
Clock = Callable[[], float]
Sleep = Callable[[float], None]
QualityOf = Callable[[pd.DataFrame], QualityReading]
"""The challenger's live quality over the serving-log rows it is given."""


class Evidence(Protocol):
    """What the loop reads at every poll (``serving_evidence.LiveService`` in production)."""

    def serving_log(self) -> pd.DataFrame:
        """The serving-log rows since the rollout started."""
        ...

    def not_served(self, log: pd.DataFrame) -> str | None:
        """Why the live service does not serve the challenger, or None."""
        ...


def watch(
    evidence: Evidence,
    judge: Callable[[pd.DataFrame, bool, str | None], Verdict],
    *,
    max_seconds: float,
    poll_seconds: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Verdict:
    """Poll ``evidence`` and return the first verdict of ``judge(log, timed_out, not_served)``
    that is not ``wait``; ``timed_out`` turns true once ``max_seconds`` have passed since the
    first poll (the judge decides what a timeout means)."""
    deadline = clock() + max_seconds
    while True:
        timed_out = clock() >= deadline
        log = evidence.serving_log()
        verdict = judge(log, timed_out, evidence.not_served(log))
        if verdict.decision != "wait":
            return verdict
        sleep(poll_seconds)


def watch_canary(
    config: DeploymentConfig,
    version: str,
    evidence: Evidence,
    *,
    quality: QualityOf | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> CanaryVerdict:
    """Watch a canary of ``version`` until :func:`canary.judge_canary` promotes or rolls back;
    ``quality`` (with labels) is read at every poll."""

    def judge(log: pd.DataFrame, timed_out: bool, not_served: str | None) -> CanaryVerdict:
        reading = quality(log) if quality is not None else None
        return judge_canary(
            log, version, config, timed_out=timed_out, quality=reading, not_served=not_served
        )

    return watch(
        evidence, judge, max_seconds=config.max_minutes * 60,
        poll_seconds=config.poll_seconds, clock=clock, sleep=sleep,
    )  # fmt: skip


def watch_shadow(
    config: DeploymentConfig,
    version: str,
    evidence: Evidence,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> ShadowVerdict:
    """Watch a shadow of ``version`` until :func:`shadow.judge_shadow` is done or rolls back."""

    def judge(log: pd.DataFrame, timed_out: bool, not_served: str | None) -> ShadowVerdict:
        return judge_shadow(log, version, config, timed_out=timed_out, not_served=not_served)

    return watch(
        evidence, judge, max_seconds=config.max_minutes * 60,
        poll_seconds=config.poll_seconds, clock=clock, sleep=sleep,
    )  # fmt: skip


def live_service(
    client: MlflowClient,
    settings: Settings,
    config: DeploymentConfig,
    version: str,
    rollout: registry.Rollout,
) -> LiveService:
    """The real evidence of ``rollout``: the configured serving log and ``service_urls``."""
    return LiveService(
        client, config, version, rollout, settings.resolved_serving_log_dir, settings.serve_token
    )


def watch_live_canary(
    client: MlflowClient,
    settings: Settings,
    config: DeploymentConfig,
    version: str,
    rollout: registry.Rollout,
    labels: LabelSpec | None = None,
) -> CanaryVerdict:
    """Watch the running canary ``rollout`` through the live service (and the labels, when
    ``labels`` says how to score them) and record its figures on the version; returns the
    verdict (promote or rollback).

    Raises DataIngestError when the labels can no longer be read.
    """
    evidence = live_service(client, settings, config, version, rollout)
    quality = partial(read_live_quality, config, labels, version=version) if labels else None
    verdict = watch_canary(config, version, evidence, quality=quality)
    registry.set_version_tags(client, config.model_name, version, canary_tags(verdict))
    return verdict


def watch_live_shadow(
    client: MlflowClient,
    settings: Settings,
    config: DeploymentConfig,
    version: str,
    rollout: registry.Rollout,
) -> ShadowVerdict:
    """Watch the running shadow ``rollout`` through the live service and record its rows and
    agreement on the version; returns the verdict (done or rollback)."""
    evidence = live_service(client, settings, config, version, rollout)
    verdict = watch_shadow(config, version, evidence)
    registry.set_version_tags(client, config.model_name, version, shadow_tags(verdict))
    return verdict
