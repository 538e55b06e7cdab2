"""What a deployment rolls out and how: the flow's parameters (``DeploymentConfig``), the
candidate they name, and the canary / shadow rollout it starts in the registry.

The rest of the process has one module per concern: ``infra_validation`` (a real server's
answers against the offline ones), ``canary`` and ``shadow`` (verdicts over the serving log),
``serving_evidence`` (what the live service shows), ``watching`` (the polling loop),
``decisions`` (promote / roll back / shadowed, and what is recorded), ``labels`` and
``live_quality`` (late ground truth and the live metric).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefect_mlops import registry
from prefect_mlops.config import DataSource
from prefect_mlops.deployment.live_quality import LIVE_METRICS
from prefect_mlops.errors import AliasNotFoundError, ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

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


def resolve_candidate(client: MlflowClient, config: DeploymentConfig) -> str:
    """The version to deploy: ``config.version`` when set (it must exist), else the version
    behind the ``challenger`` alias.

    Raises ModelNotFoundError for an unknown model or version, AliasNotFoundError when no
    version is set and the model has no ``challenger``.
    """
    if config.version:
        registry.require_version(client, config.model_name, config.version)
        return config.version
    challenger = registry.get_alias_version(client, config.model_name, registry.CHALLENGER)
    if challenger is None:
        raise AliasNotFoundError(
            f"model {config.model_name!r} has no version behind the 'challenger' alias (no "
            "blessed, unpromoted version); pass `version` to deploy a given version"
        )
    return str(challenger.version)


def start_progressive_rollout(
    client: MlflowClient, config: DeploymentConfig, version: str
) -> registry.Rollout:
    """Start the canary or shadow rollout of ``version`` that ``config.strategy`` names (the
    serving process picks it up from the registry); returns it.

    Raises ConfigError for the blue-green strategy (it has no progressive rollout).
    """
    if config.strategy == "blue-green":
        raise ConfigError("strategy 'blue-green' switches at once: it starts no rollout")
    mode: Literal["canary", "shadow"] = config.strategy
    return registry.start_rollout(
        client,
        config.model_name,
        mode=mode,
        challenger_version=version,
        share=config.canary_share,
        reason=f"{mode} rollout after infra-validation",
    )
