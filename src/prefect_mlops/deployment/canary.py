"""The canary verdict: is the challenger's live error rate and latency within its thresholds,
and, when labels arrive, is its live quality no worse than the champion's? Pure functions over
serving-log rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from prefect_mlops.deployment.infra_validation import percentile
from prefect_mlops.deployment.live_quality import QualityReading
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.deployment.serving_evidence import requests_of
from prefect_mlops.registry import lineage

CanaryDecision = Literal["promote", "rollback", "wait"]

BREACH_MIN_REQUESTS = 10
"""A breach is judged over at least this many challenger requests (or ``min_requests`` when
fewer): one slow first request must not roll a canary back."""


@dataclass
class CanaryVerdict:
    """The canary's observation so far and what to do; ``not_served`` is why the live service
    does not serve the challenger, when that ended it."""

    decision: CanaryDecision
    requests: int
    error_rate: float
    p99_ms: float
    reason: str
    quality: QualityReading | None = None
    not_served: str | None = None


def judge_canary(
    log: pd.DataFrame,
    version: str,
    config: DeploymentConfig,
    *,
    timed_out: bool,
    quality: QualityReading | None = None,
    not_served: str | None = None,
) -> CanaryVerdict:
    """Decide from serving-log rows of the challenger (``variant == 'challenger'``) and, when
    labels are configured, from its live ``quality``.

    ``not_served`` (why the live service is not serving the challenger, see
    ``serving_evidence``) rolls back at once. A breach rolls back as soon as it is seen (over at
    least 10 requests, or ``min_labelled_rows`` labelled rows for quality); enough clean
    requests (and, with labels, enough labelled rows of good quality) promote; too little
    traffic or too few labels when time is up rolls back (never promote unobserved).
    """
    rows = requests_of(log, version, "challenger")
    n = len(rows)
    # Server errors count against the challenger; a client's malformed request (4xx) does not.
    errors = int(rows["status"].astype(str).str.startswith("5").sum())
    error_rate = errors / n if n else 0.0
    p99 = percentile(rows["latency_ms"].to_numpy(), 99)  # 0 without requests
    figures = f"{n} challenger requests, error rate {error_rate:.2%}, p99 {p99:.1f} ms"
    if quality is not None:
        figures += f", {quality.describe()}"

    def verdict(decision: CanaryDecision, reason: str) -> CanaryVerdict:
        return CanaryVerdict(decision, n, error_rate, p99, reason, quality, not_served)

    if not_served is not None:
        return verdict("rollback", f"{not_served} ({figures})")
    if n >= min(BREACH_MIN_REQUESTS, config.min_requests):
        if error_rate > config.max_error_rate:
            return verdict(
                "rollback", f"error rate {error_rate:.2%} > {config.max_error_rate:.2%} ({figures})"
            )
        if p99 > config.max_p99_latency_ms:
            return verdict(
                "rollback",
                f"p99 latency {p99:.1f} ms > {config.max_p99_latency_ms:.1f} ms ({figures})",
            )
    labelled = quality is None or quality.challenger_rows >= config.min_labelled_rows
    bound = quality.drop_bound if quality is not None and labelled else None
    if quality is not None and bound is not None and bound > config.max_quality_drop:
        return verdict(
            "rollback",
            f"live {quality.metric} {quality.challenger:.4g} is {quality.shortfall():.4g} "
            f"worse than {quality.baseline:.4g} ({quality.baseline_source}): at least "
            f"{bound:.4g} worse at {quality.confidence:.0%} confidence, allowed "
            f"{config.max_quality_drop:g} ({figures})",
        )
    if n >= config.min_requests and labelled:
        return verdict("promote", f"canary healthy: {figures}")
    if timed_out:
        # Enough requests without labels promoted above: here quality is None only when starved.
        if n < config.min_requests or quality is None:
            return verdict(
                "rollback",
                f"only {n} of {config.min_requests} challenger requests before the time limit",
            )
        return verdict(
            "rollback",
            f"only {quality.challenger_rows} of {config.min_labelled_rows} labelled challenger "
            "rows before the time limit",
        )
    return verdict("wait", figures)


def canary_tags(verdict: CanaryVerdict) -> dict[str, str]:
    """The version tags that record the canary's figures (requests, error rate, p99, and the
    live quality when labels were judged; why it was not served, when that ended it)."""
    tags = {
        lineage.CANARY_REQUESTS: str(verdict.requests),
        lineage.CANARY_ERROR_RATE: f"{verdict.error_rate:.4f}",
        lineage.CANARY_P99_MS: f"{verdict.p99_ms:.2f}",
    }
    quality = verdict.quality
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
    if verdict.not_served is not None:
        tags[lineage.ROLLOUT_NOT_SERVED] = verdict.not_served
    return tags
