"""Verdicts of the model-deployment process, as pure functions over frames.

- infra-validation: do a server's answers equal the offline predictions, fast enough, error-free?
- canary: is the challenger's live error rate and latency within its thresholds, and, when labels
  arrive, is its live quality no worse than the champion's?
- shadow: how often do challenger and champion agree on the same requests?
- both: has the live service loaded the challenger at all? (its ``GET /metadata`` says
  ``challenger_error``; its serving log shows only champion answers after the takeover time)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefect_mlops.config import DataSource
from prefect_mlops.deployment.live_quality import LIVE_METRICS, QualityReading
from prefect_mlops.serving.runtime import request_fraction

Strategy = Literal["blue-green", "canary", "shadow"]


class DeploymentConfig(BaseModel):
    """Parameters of the model-deployment flow (a form in the Prefect UI)."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(description="Registered model name.", min_length=1)
    version: str | None = Field(
        default=None, description="Candidate version; default: the version behind 'challenger'."
    )
    strategy: Strategy = Field(
        default="blue-green",
        description="blue-green (switch after validation), canary (a share of live traffic, "
        "then promote or roll back) or shadow (challenger scores every request silently).",
    )
    latency_slo_ms: float = Field(
        default=500.0, gt=0, description="Infra-validation: p99 request latency must be below."
    )
    max_errors: int = Field(
        default=0, ge=0, description="Infra-validation: failed requests allowed."
    )
    validation_rows: int = Field(
        default=1000, ge=1, description="Test-set rows sent during infra-validation (at most)."
    )
    rows_per_request: int = Field(
        default=10, ge=1, description="Rows per request during infra-validation."
    )
    startup_timeout_seconds: float = Field(
        default=180.0, gt=0, description="How long the candidate server may take to be ready."
    )
    canary_share: float = Field(
        default=0.1, gt=0, le=1, description="Share of live requests the challenger answers."
    )
    min_requests: int = Field(
        default=100, ge=1, description="Canary/shadow: challenger requests to observe."
    )
    max_minutes: float = Field(
        default=30.0, gt=0, description="Canary/shadow: longest observation before deciding."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Canary: challenger error rate above → roll back."
    )
    max_p99_latency_ms: float = Field(
        default=500.0, gt=0, description="Canary: challenger p99 latency above → roll back."
    )
    min_agreement: float = Field(
        default=0.9, ge=0, le=1, description="Shadow: agreement needed to promote after shadowing."
    )
    promote_after_shadow: bool = Field(
        default=False, description="Shadow: promote when agreement is at least min_agreement."
    )
    poll_seconds: float = Field(
        default=5.0, gt=0, description="Canary/shadow: how often the serving log is read."
    )
    service_urls: list[str] = Field(
        default_factory=list,
        description="Canary/shadow: base URLs of the live service(s) (http://host:port). Their "
        "GET /metadata is read at every poll (with MLOPS_SERVE_TOKEN): a challenger a service "
        "cannot load ends the rollout at once, with the service's load error.",
    )
    takeover_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Canary/shadow: how long the live service may take to pick up the rollout "
        "and load the challenger. Later requests answered by the champion alone (canary: those "
        "the rollout gives the challenger; shadow: all) while the challenger answers none mean "
        "the service has not loaded it: the rollout ends at once.",
    )
    labels: DataSource | None = Field(
        default=None,
        description="Canary: ground truth that arrives during the canary, re-read at every "
        "poll: a CSV/Parquet file or SQL query with `request_id`, `row_index` (for requests of "
        "several rows) and the label column. With labels the canary also judges live quality.",
    )
    label_column: str | None = Field(
        default=None,
        description="Canary: the labels' true-value column; default: the model's training "
        "target (version tag mlops.target).",
    )
    quality_metric: str | None = Field(
        default=None,
        description="Canary: live quality metric: accuracy or f1 (classifiers), rmse, mae or "
        "r2 (regressors); default accuracy / rmse.",
    )
    max_quality_drop: float = Field(
        default=0.02,
        ge=0,
        description="Canary: roll back when the challenger's live metric is worse than the "
        "champion's over the same window (else its own offline test metric) by more than this.",
    )
    quality_confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="Canary: roll back on quality only when the challenger is worse by more "
        "than max_quality_drop with this confidence (bootstrap over the labelled rows).",
    )
    min_labelled_rows: int = Field(
        default=50,
        ge=1,
        description="Canary with labels: labelled challenger rows needed before quality is "
        "judged; promotion waits for them (too few by max_minutes → roll back).",
    )

    @model_validator(mode="after")
    def _version_text(self) -> DeploymentConfig:
        if self.version is not None and not str(self.version).isdigit():
            raise ValueError(f"version must be a version number, got {self.version!r}")
        if self.labels is not None and self.strategy != "canary":
            raise ValueError(
                f"labels are judged by the canary strategy only; strategy is {self.strategy!r}"
            )
        for url in self.service_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"service_urls: {url!r} is not an http(s):// base URL")
        known = sorted({m for metrics in LIVE_METRICS.values() for m in metrics})
        if self.quality_metric is not None and self.quality_metric not in known:
            raise ValueError(
                f"quality_metric {self.quality_metric!r} is not a live metric; choose one of "
                f"{known}"
            )
        return self


@dataclass
class InfraValidationReport:
    """What infra-validation measured."""

    passed: bool
    rows: int
    requests: int
    errors: int
    mismatches: int
    p50_ms: float
    p99_ms: float
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for tags and logs."""
        head = "passed" if self.passed else "failed: " + "; ".join(self.reasons)
        return (
            f"infra-validation {head} ({self.rows} rows in {self.requests} requests, "
            f"{self.errors} errors, {self.mismatches} mismatches, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def percentile(values: list[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0 for no values)."""
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else 0.0


def count_mismatches(served: np.ndarray, offline: np.ndarray, *, rtol: float = 1e-6) -> int:
    """Rows whose served prediction differs from the offline one (numbers compared with rtol)."""
    served = np.asarray(served)
    offline = np.asarray(offline)
    if served.shape != offline.shape:
        return int(max(len(served), len(offline)))
    if np.issubdtype(offline.dtype, np.number) and np.issubdtype(served.dtype, np.number):
        return int((~np.isclose(served.astype(float), offline.astype(float), rtol=rtol)).sum())
    return int((served.astype(str) != offline.astype(str)).sum())


def judge_infra_validation(
    *,
    rows: int,
    latencies_ms: list[float],
    errors: int,
    mismatches: int,
    config: DeploymentConfig,
) -> InfraValidationReport:
    """Pass when no more than ``max_errors`` requests failed, every row matched, and p99 < SLO."""
    p99 = percentile(latencies_ms, 99)
    reasons = []
    if errors > config.max_errors:
        reasons.append(f"{errors} failed requests (allowed {config.max_errors})")
    if mismatches:
        reasons.append(f"{mismatches} of {rows} predictions differ from the offline ones")
    if p99 >= config.latency_slo_ms:
        reasons.append(f"p99 latency {p99:.1f} ms ≥ SLO {config.latency_slo_ms:.1f} ms")
    return InfraValidationReport(
        passed=not reasons,
        rows=rows,
        requests=len(latencies_ms),
        errors=errors,
        mismatches=mismatches,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=p99,
        reasons=reasons,
    )


@dataclass
class CanaryVerdict:
    """The canary's observation so far and what to do."""

    decision: Literal["promote", "rollback", "wait"]
    requests: int
    error_rate: float
    p99_ms: float
    reason: str
    quality: QualityReading | None = None


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
    ``challenger_load_error`` and ``unserved_challenger``) rolls back at once. A breach rolls
    back as soon as it is seen (over at least 10 requests, or ``min_labelled_rows`` labelled
    rows for quality); enough clean requests (and, with labels, enough labelled rows of good
    quality) promote; too little traffic or too few labels when time is up rolls back (never
    promote unobserved).
    """
    rows = _requests_of(log, version, "challenger")
    n = len(rows)
    # Server errors count against the challenger; a client's malformed request (4xx) does not.
    errors = int(rows["status"].astype(str).str.startswith("5").sum()) if n else 0
    error_rate = errors / n if n else 0.0
    p99 = percentile(rows["latency_ms"].to_numpy(), 99) if n else 0.0
    figures = f"{n} challenger requests, error rate {error_rate:.2%}, p99 {p99:.1f} ms"
    if quality is not None:
        figures += f", {quality.describe()}"

    def verdict(decision: Literal["promote", "rollback", "wait"], reason: str) -> CanaryVerdict:
        return CanaryVerdict(decision, n, error_rate, p99, reason, quality)

    if not_served is not None:
        return verdict("rollback", f"{not_served} ({figures})")
    if n >= min(10, config.min_requests):
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
        if n < config.min_requests:
            return verdict(
                "rollback",
                f"only {n} of {config.min_requests} challenger requests before the time limit",
            )
        got = quality.challenger_rows if quality is not None else 0
        return verdict(
            "rollback",
            f"only {got} of {config.min_labelled_rows} labelled challenger rows before the "
            "time limit",
        )
    return verdict("wait", figures)


def _requests_of(log: pd.DataFrame, version: str, variant: str) -> pd.DataFrame:
    """One row per request of ``variant`` served by ``version``."""
    if log.empty:
        return pd.DataFrame(columns=["request_id", "status", "latency_ms"])
    mine = log[(log["variant"] == variant) & (log["model_version"].astype(str) == str(version))]
    return mine.drop_duplicates("request_id")


def shadow_agreement(log: pd.DataFrame, version: str) -> tuple[int, float]:
    """(rows compared, share of rows where the shadow challenger agreed with the champion)."""
    if log.empty:
        return 0, 0.0
    shadow = log[(log["variant"] == "shadow") & (log["model_version"].astype(str) == str(version))]
    champion = log[log["variant"] == "champion"]
    pairs = shadow.merge(
        champion, on=["request_id", "row_index"], suffixes=("_shadow", "_champion")
    )
    if pairs.empty:
        return 0, 0.0
    agree = pairs["prediction_shadow"].astype(str) == pairs["prediction_champion"].astype(str)
    return len(pairs), float(agree.mean())


@dataclass
class ShadowVerdict:
    """The shadow's observation so far and what to do: ``done`` (enough rows compared, or time
    is up), ``rollback`` (the live service does not serve the challenger) or ``wait``."""

    decision: Literal["done", "rollback", "wait"]
    compared: int
    agreement: float
    reason: str


def judge_shadow(
    log: pd.DataFrame,
    version: str,
    config: DeploymentConfig,
    *,
    timed_out: bool,
    not_served: str | None = None,
) -> ShadowVerdict:
    """Decide from the shadow rows of ``version`` paired with the champion's: ``not_served``
    ends the shadow at once (rollback); ``min_requests`` compared rows, or the time limit, end
    it with the agreement seen."""
    compared, agreement = shadow_agreement(log, version)
    figures = f"shadow agreement {agreement:.2%} over {compared} rows"
    if not_served is not None:
        return ShadowVerdict("rollback", compared, agreement, f"{not_served} ({figures})")
    if compared >= config.min_requests or timed_out:
        return ShadowVerdict("done", compared, agreement, figures)
    return ShadowVerdict("wait", compared, agreement, figures)


def challenger_load_error(metadata: dict[str, Any], version: str, started_at: str) -> str | None:
    """The live service's reason for not serving ``version``, from its ``GET /metadata``: its
    ``challenger_error`` once it has taken up this rollout (same challenger version and start
    time); None while it serves the challenger or has not yet seen the rollout."""
    rollout = metadata.get("rollout") or {}
    error = metadata.get("challenger_error")
    if not error or not isinstance(rollout, dict):
        return None
    same = str(rollout.get("challenger_version")) == str(version)
    if not same or rollout.get("started_at") != started_at:
        return None
    return str(error)


def unserved_challenger(
    log: pd.DataFrame,
    *,
    model_name: str,
    version: str,
    mode: Literal["canary", "shadow"],
    share: float,
    started_at: str,
    config: DeploymentConfig,
) -> str | None:
    """Why the serving log shows the live service is not serving ``version``, or None.

    Evidence: at least ``min(10, min_requests)`` requests that arrived ``takeover_seconds``
    after the rollout started were answered by the champion although the rollout gives them to
    the challenger (canary: the routed ``share`` of request ids; shadow: every request), while
    no row at all comes from the challenger. ``log`` holds the rows since the rollout started.
    """
    if log.empty:
        return None
    rows = log[log["model_name"].astype(str) == model_name] if "model_name" in log else log
    variant = "challenger" if mode == "canary" else "shadow"
    if not _requests_of(rows, version, variant).empty:
        return None
    after = pd.Timestamp(started_at) + pd.Timedelta(seconds=config.takeover_seconds)
    champion = rows[
        (rows["variant"] == "champion") & (pd.to_datetime(rows["timestamp"], utc=True) >= after)
    ].drop_duplicates("request_id")
    if mode == "canary":
        routed = champion["request_id"].astype(str).map(request_fraction) < share
        champion = champion[routed]
    n = len(champion)
    if n < min(10, config.min_requests):
        return None
    given = "the challenger's share of" if mode == "canary" else "all"
    return (
        f"the live service has not loaded v{version}: {given} {n} requests since "
        f"{config.takeover_seconds:g} s after the {mode} started were answered by the champion, "
        f"none by v{version}"
    )
