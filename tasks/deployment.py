"""Tasks of the model-deployment process: infra-validate, roll out, promote or roll back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_mlops import registry
from prefect_mlops.data.sources import read_table
from prefect_mlops.deployment.live_quality import (
    LabelSpec,
    QualityReading,
    join_labels,
    prepare_labels,
    read_quality,
    resolve_label_spec,
)
from prefect_mlops.deployment.rollout import (
    CanaryVerdict,
    DeploymentConfig,
    InfraValidationReport,
    ShadowVerdict,
    challenger_load_error,
    count_mismatches,
    judge_canary,
    judge_infra_validation,
    judge_shadow,
    unserved_challenger,
)
from prefect_mlops.errors import InfraValidationError
from prefect_mlops.registry import lineage
from prefect_mlops.settings import get_settings
from prefect_mlops.tasks.common import retry_transient

logger = logging.getLogger(__name__)
Verdict = TypeVar("Verdict", CanaryVerdict, ShadowVerdict)


def _client() -> Any:
    return registry.mlflow_client(get_settings())


@task(name="resolve-candidate", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def resolve_candidate(config: DeploymentConfig) -> str:
    """The candidate version: the configured one, else the version behind ``challenger``."""
    client = _client()
    if config.version:
        registry.require_version(client, config.model_name, config.version)
        return config.version
    challenger = registry.get_alias_version(client, config.model_name, registry.CHALLENGER)
    if challenger is None:
        raise InfraValidationError(
            f"model {config.model_name!r} has no 'challenger' alias; pass `version`"
        )
    return str(challenger.version)


def offline_predictions(model_name: str, version: str, dest: Path) -> pd.DataFrame:
    """The candidate's test rows and offline predictions logged at training."""
    client = _client()
    run_id = client.get_model_version(model_name, version).run_id
    try:
        local = client.download_artifacts(run_id, "predictions/test.parquet", str(dest))
    except Exception as exc:
        raise InfraValidationError(
            f"{model_name} v{version}: its training run {run_id} has no "
            "predictions/test.parquet artifact to validate against"
        ) from exc
    return pd.read_parquet(local)


@task(name="infra-validate", timeout_seconds=1800, cache_policy=NO_CACHE)
def infra_validate(config: DeploymentConfig, version: str) -> InfraValidationReport:
    """Serve ``version`` in a real BentoML server on a loopback port, send the test rows, and
    check answers equal the offline predictions, p99 latency is under the SLO, errors ≤ max.

    Records the result on the model version (tags ``mlops.infra_validation*``) and as an
    artifact; raises InfraValidationError when the candidate fails (it is never promoted).
    """
    import tempfile

    from prefect_mlops.errors import ServiceStartError
    from prefect_mlops.serving.process import run_service, send_rows

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as tmp:
        expected = offline_predictions(config.model_name, version, Path(tmp))
        expected = expected.head(config.validation_rows)
        features = expected.drop(columns=["prediction"])
        env = {
            "MLOPS_HOME": str(settings.home_path),
            "MLOPS_TRACKING_URI": settings.resolved_tracking_uri,
            "MLOPS_REGISTRY_URI": settings.resolved_registry_uri,
            "MLOPS_SERVE_MODEL_NAME": config.model_name,
            "MLOPS_SERVE_VERSION": str(version),
            "MLOPS_SERVING_LOG_DIR": str(Path(tmp) / "serving_log"),
        }
        try:
            with run_service(env, startup_timeout=config.startup_timeout_seconds) as service:
                probe = send_rows(
                    service.url,
                    features,
                    rows_per_request=config.rows_per_request,
                    token=settings.serve_token,
                )
        except ServiceStartError as exc:
            report = InfraValidationReport(
                passed=False, rows=len(features), requests=0, errors=1, mismatches=len(features),
                p50_ms=0.0, p99_ms=0.0, reasons=[f"the candidate did not start: {exc}"[:1500]],
            )  # fmt: skip
        else:
            mismatches = count_mismatches(
                np.asarray(probe.predictions, dtype=object), expected["prediction"].to_numpy()
            )
            report = judge_infra_validation(
                rows=len(features),
                latencies_ms=probe.latencies_ms,
                errors=probe.errors,
                mismatches=mismatches,
                config=config,
            )
    _record(config.model_name, version, report)
    if not report.passed:
        raise InfraValidationError(f"{config.model_name} v{version}: {report.summary()}")
    return report


def _record(model_name: str, version: str, report: InfraValidationReport) -> None:
    registry.set_version_tags(
        _client(),
        model_name,
        version,
        {
            lineage.INFRA_VALIDATION: "passed" if report.passed else "failed",
            lineage.INFRA_VALIDATION_REASON: report.summary(),
            lineage.INFRA_VALIDATION_P99_MS: f"{report.p99_ms:.2f}",
            lineage.INFRA_VALIDATION_AT: datetime.now().astimezone().isoformat(),
        },
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.to_dict().items() if k != "reasons")
    create_markdown_artifact(
        key="infra-validation",
        description=f"Infra-validation of {model_name} v{version}",
        markdown=f"# Infra-validation of {model_name} v{version}: "
        f"{'passed' if report.passed else 'FAILED'}\n\n{report.summary()}\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n",
    )


@task(name="promote-version", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def promote(model_name: str, version: str, reason: str) -> registry.AliasMove:
    """Move ``champion`` to ``version`` (the previous champion is remembered)."""
    client = _client()
    registry.end_rollout(client, model_name)
    move = registry.promote_version(client, model_name, version, reason=reason)
    registry.set_version_tags(client, model_name, version, {lineage.ROLLOUT_RESULT: "promoted"})
    return move


@task(name="roll-back", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def roll_back(model_name: str, version: str, reason: str) -> None:
    """End the rollout: every request goes back to the champion; the outcome is recorded on the
    version and, as the champion kept, in the alias history."""
    client = _client()
    registry.end_rollout(client, model_name)
    registry.record_champion_kept(client, model_name, reason=f"v{version}: {reason}")
    registry.set_version_tags(
        client,
        model_name,
        version,
        {lineage.ROLLOUT_RESULT: "rolled_back", lineage.ROLLOUT_REASON: reason},
    )


@task(name="start-rollout", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def start_rollout(config: DeploymentConfig, version: str) -> registry.Rollout:
    """Start a canary or shadow rollout of ``version`` (the serving process picks it up)."""
    mode: Literal["canary", "shadow"] = "canary" if config.strategy == "canary" else "shadow"
    return registry.start_rollout(
        _client(),
        config.model_name,
        mode=mode,
        challenger_version=version,
        share=config.canary_share,
        reason=f"{mode} rollout after infra-validation",
    )


def _log_since(started_at: str) -> pd.DataFrame:
    from prefect_mlops.serving.log import read_serving_log

    log = read_serving_log(get_settings().resolved_serving_log_dir)
    if log.empty:
        return log
    since = pd.Timestamp(started_at)
    stamps = pd.to_datetime(log["timestamp"], utc=True)
    return log[stamps >= since]


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
    tags = _client().get_model_version(config.model_name, version).tags
    return resolve_label_spec(
        read_table(config.labels, allow_empty=True),
        where=config.labels.describe(),
        label_column=config.label_column,
        metric=config.quality_metric,
        version_tags=dict(tags),
    )


def _live_quality(
    config: DeploymentConfig, spec: LabelSpec, log: pd.DataFrame, version: str
) -> QualityReading:
    assert config.labels is not None
    labels = prepare_labels(
        read_table(config.labels, allow_empty=True), spec.label_column, spec.where
    )
    return read_quality(
        join_labels(log, labels, spec.where),
        version=version,
        task=spec.task,
        metric=spec.metric,
        min_rows=config.min_labelled_rows,
        offline_baseline=spec.offline_baseline,
        confidence=config.quality_confidence,
    )


def _service_metadata(url: str) -> dict[str, Any] | None:
    """``GET <url>/metadata`` of a live service, or None when it does not answer (a service
    that is down says nothing about the challenger; the serving log still does)."""
    import httpx

    from prefect_mlops.serving.runtime import bearer_headers

    headers = bearer_headers(get_settings().serve_token)
    try:
        response = httpx.get(url.rstrip("/") + "/metadata", headers=headers, timeout=10)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("live service %s: no /metadata (%s)", url, exc)
        return None
    return body if isinstance(body, dict) else None


def _not_served(
    config: DeploymentConfig, version: str, rollout: registry.Rollout, log: pd.DataFrame
) -> str | None:
    """Why the live service is not serving the challenger, or None: first what a service at
    ``service_urls`` says (its load error), else what the serving log shows (then the load
    error is reproduced here with the service's own loader, when it fails here too)."""
    for url in config.service_urls:
        metadata = _service_metadata(url)
        error = challenger_load_error(metadata or {}, version, rollout.started_at)
        if error is not None:
            return f"the live service at {url} cannot load {config.model_name} v{version}: {error}"
    evidence = unserved_challenger(
        log, model_name=config.model_name, version=version, mode=rollout.mode,
        share=rollout.share, started_at=rollout.started_at, config=config,
    )  # fmt: skip
    if evidence is None:
        return None
    from prefect_mlops.errors import ModelLoadError
    from prefect_mlops.serving.runtime import load_version

    try:
        load_version(_client(), config.model_name, version)
    except ModelLoadError as exc:
        return f"{evidence}; loading it fails: {exc}"
    return evidence


def _watch(
    config: DeploymentConfig,
    version: str,
    rollout: registry.Rollout,
    judge: Callable[[pd.DataFrame, bool, str | None], Verdict],
) -> Verdict:
    """Every ``poll_seconds``, read the serving log since the rollout started and ask the live
    services whether they serve the challenger, until ``judge(log, timed_out, not_served)``
    decides (anything but ``wait``). Why the challenger is not served, when that ended it, is
    recorded on the version (``mlops.rollout.not_served``)."""
    deadline = time.monotonic() + config.max_minutes * 60
    while True:
        timed_out = time.monotonic() >= deadline
        log = _log_since(rollout.started_at)
        not_served = _not_served(config, version, rollout, log)
        verdict = judge(log, timed_out, not_served)
        if verdict.decision != "wait":
            break
        time.sleep(config.poll_seconds)
    if not_served is not None:
        registry.set_version_tags(
            _client(), config.model_name, version, {lineage.ROLLOUT_NOT_SERVED: not_served}
        )
    return verdict


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

    def judge(log: pd.DataFrame, timed_out: bool, not_served: str | None) -> CanaryVerdict:
        quality = _live_quality(config, labels, log, version) if labels else None
        return judge_canary(
            log, version, config, timed_out=timed_out, quality=quality, not_served=not_served
        )

    verdict = _watch(config, version, rollout, judge)
    quality = verdict.quality
    tags = {
        lineage.CANARY_REQUESTS: str(verdict.requests),
        lineage.CANARY_ERROR_RATE: f"{verdict.error_rate:.4f}",
        lineage.CANARY_P99_MS: f"{verdict.p99_ms:.2f}",
    }
    if quality is not None:
        tags[lineage.CANARY_QUALITY_METRIC] = quality.metric
        tags[lineage.CANARY_QUALITY_ROWS] = str(quality.challenger_rows)
        if quality.challenger is not None:
            tags[lineage.CANARY_QUALITY_VALUE] = f"{quality.challenger:.6g}"
        if quality.baseline is not None:
            tags[lineage.CANARY_QUALITY_BASELINE] = f"{quality.baseline:.6g}"
            tags[lineage.CANARY_QUALITY_BASELINE_SOURCE] = quality.baseline_source
        if quality.drop_bound is not None:
            tags[lineage.CANARY_QUALITY_DROP_BOUND] = f"{quality.drop_bound:.6g}"
    registry.set_version_tags(_client(), config.model_name, version, tags)
    return verdict


@task(name="watch-shadow", timeout_seconds=24 * 3600, cache_policy=NO_CACHE)
def watch_shadow(
    config: DeploymentConfig, version: str, rollout: registry.Rollout
) -> ShadowVerdict:
    """Read the serving log until ``min_requests`` rows were shadowed, time is up, or the live
    service is found not to serve the challenger; records rows and agreement on the version."""
    verdict = _watch(
        config,
        version,
        rollout,
        lambda log, timed_out, not_served: judge_shadow(
            log, version, config, timed_out=timed_out, not_served=not_served
        ),
    )
    registry.set_version_tags(
        _client(),
        config.model_name,
        version,
        {
            lineage.SHADOW_ROWS: str(verdict.compared),
            lineage.SHADOW_AGREEMENT: f"{verdict.agreement:.4f}",
        },
    )
    return verdict
