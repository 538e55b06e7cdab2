"""Infra-validation: serve a candidate in a real BentoML server on a loopback port, send it the
test rows logged at training, and judge its answers.

A candidate passes when its answers equal the offline predictions, no more than ``max_errors``
requests failed and its p99 latency is under the SLO. :func:`validate_candidate` runs the whole
check and records it on the model version; :func:`probe_service` judges a service that already
runs at a URL; :func:`judge_infra_validation` is the verdict over the figures.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_mlops import registry
from prefect_mlops.deployment.rollout import DeploymentConfig
from prefect_mlops.errors import InfraValidationError, ServiceStartError
from prefect_mlops.registry import lineage

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.settings import Settings

OFFLINE_PREDICTIONS = "predictions/test.parquet"
"""The training run's artifact of test rows and their offline ``prediction``."""


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


def not_started_report(rows: int, error: ServiceStartError) -> InfraValidationReport:
    """The failed report of a candidate whose server did not start (every row unanswered)."""
    return InfraValidationReport(
        passed=False, rows=rows, requests=0, errors=1, mismatches=rows, p50_ms=0.0, p99_ms=0.0,
        reasons=[f"the candidate did not start: {error}"[:1500]],
    )  # fmt: skip


def probe_service(
    url: str,
    expected: pd.DataFrame,
    config: DeploymentConfig,
    *,
    token: str | None = None,
    token_hosts: Collection[str] | None = None,
) -> InfraValidationReport:
    """Send the feature columns of ``expected`` to the service at ``url`` in requests of
    ``config.rows_per_request`` rows and judge its answers against ``expected["prediction"]``;
    returns the report (raises nothing for a failing service: the report says why). The
    ``token`` goes only where ``serving.auth.check_token_destination`` allows (``token_hosts``,
    default the settings' ``serve_token_hosts``), else ConfigError before any request."""
    from prefect_mlops.serving.auth import bearer_headers
    from prefect_mlops.serving.process import send_rows

    bearer_headers(token, url.rstrip("/") + "/predict", token_hosts)
    features = expected.drop(columns=["prediction"])
    probe = send_rows(url, features, rows_per_request=config.rows_per_request, token=token)
    mismatches = count_mismatches(
        np.asarray(probe.predictions, dtype=object), expected["prediction"].to_numpy()
    )
    return judge_infra_validation(
        rows=len(features),
        latencies_ms=probe.latencies_ms,
        errors=probe.errors,
        mismatches=mismatches,
        config=config,
    )


def offline_predictions(
    client: MlflowClient, model_name: str, version: str, dest: Path
) -> pd.DataFrame:
    """The candidate's test rows and offline ``prediction`` logged by its training run.

    Raises InfraValidationError naming the run when it has no such artifact.
    """
    run_id = client.get_model_version(model_name, version).run_id
    try:
        if run_id is None:
            raise ValueError("the version has no training run")
        local = client.download_artifacts(run_id, OFFLINE_PREDICTIONS, str(dest))
    except Exception as exc:
        raise InfraValidationError(
            f"{model_name} v{version}: its training run {run_id} has no "
            f"{OFFLINE_PREDICTIONS} artifact to validate against"
        ) from exc
    return pd.read_parquet(local)


def validate_candidate(
    client: MlflowClient, settings: Settings, config: DeploymentConfig, version: str
) -> InfraValidationReport:
    """Serve ``version`` in a real server on a loopback port (its own serving log in a temporary
    folder), probe it with up to ``validation_rows`` test rows, stop it, and record the result
    on the version (tags ``mlops.infra_validation*``); returns the report, passed or not.

    Raises InfraValidationError when the training run has no offline predictions.
    """
    from prefect_mlops.serving.process import run_service

    with tempfile.TemporaryDirectory(prefix="infra-validation-") as tmp:
        expected = offline_predictions(client, config.model_name, version, Path(tmp))
        expected = expected.head(config.validation_rows)
        env = {
            "MLOPS_HOME": str(settings.home_path),
            "MLOPS_TRACKING_URI": settings.resolved_tracking_uri,
            "MLOPS_REGISTRY_URI": settings.resolved_registry_uri,
            "MLOPS_SERVE_MODEL_NAME": config.model_name,
            "MLOPS_SERVE_VERSION": str(version),
            "MLOPS_SERVING_LOG_DIR": str(Path(tmp) / "serving_log"),
            # The candidate loads under this process's model policy (format, trusted types).
            "MLOPS_ALLOW_PICKLE_MODELS": str(settings.allow_pickle_models).lower(),
            "MLOPS_MODEL_TRUSTED_TYPES": json.dumps(settings.model_trusted_types),
        }
        try:
            with run_service(env, startup_timeout=config.startup_timeout_seconds) as service:
                report = probe_service(
                    service.url,
                    expected,
                    config,
                    token=settings.serve_token,
                    token_hosts=settings.serve_token_hosts,
                )
        except ServiceStartError as exc:
            report = not_started_report(len(expected), exc)
    registry.set_version_tags(
        client, config.model_name, version, infra_validation_tags(report, datetime.now())
    )
    return report


def infra_validation_tags(report: InfraValidationReport, at: datetime) -> dict[str, str]:
    """The version tags that record ``report`` (result, reason, p99, when)."""
    return {
        lineage.INFRA_VALIDATION: "passed" if report.passed else "failed",
        lineage.INFRA_VALIDATION_REASON: report.summary(),
        lineage.INFRA_VALIDATION_P99_MS: f"{report.p99_ms:.2f}",
        lineage.INFRA_VALIDATION_AT: at.astimezone().isoformat(),
    }


def report_markdown(model_name: str, version: str, report: InfraValidationReport) -> str:
    """The report as a Markdown page: verdict, summary and a table of the figures."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.to_dict().items() if k != "reasons")
    verdict = "passed" if report.passed else "FAILED"
    return (
        f"# Infra-validation of {model_name} v{version}: {verdict}\n\n{report.summary()}\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )
