"""Lineage: every ``mlops.*`` tag name, and the builders of a training run's and a version's tags.

Tags are how the registry answers "where did this model come from?" (snapshot digest, GX result,
code version, flow run, config hash) and "what happened to it since?" (blessing, infra-validation,
rollout). Each name is defined here once; code elsewhere uses the constants, never the literal.

* :func:`training_run_tags` — the tags of a continuous-training MLflow run (code, config, flow run).
* :func:`version_lineage_tags` — the tags of the model version it registers (data, validation,
  task, baseline, metrics), on top of the run's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

# -- a training run and the version it registers ------------------------------------------------
CODE_VERSION = "mlops.code.version"
CONFIG_HASH = "mlops.config_hash"
FLOW_RUN_ID = "mlops.prefect.flow_run_id"
FLOW_RUN_URL = "mlops.prefect.flow_run_url"
MODEL_NAME = "mlops.model_name"
DATA_DIGEST = "mlops.data.digest"
DATA_SNAPSHOT = "mlops.data.snapshot"
DATA_SOURCE = "mlops.data.source"
DATA_ROWS = "mlops.data.rows"
VALIDATION_SUCCESS = "mlops.validation.success"
VALIDATION_RESULT = "mlops.validation.result"
VALIDATION_REFERENCE = "mlops.validation.reference"
TASK = "mlops.task"
TARGET = "mlops.target"
BASELINE_VERSION = "mlops.baseline_version"
MLFLOW_RUN_ID = "mlops.mlflow_run_id"
#: ``sha256:<hex>`` of the version's model file, recorded at registration, checked at load.
MODEL_DIGEST = "mlops.model.digest"
METRIC_PREFIX = "mlops.metric."

# -- the blessing (on the run and the version) --------------------------------------------------
BLESSED = "mlops.blessed"
BLESSING_REASON = "mlops.blessing.reason"
BLESSING_BASELINE = "mlops.blessing.baseline"

# -- a training run that registered nothing: same data and config as the champion ---------------
UNCHANGED_FROM = "mlops.unchanged_from"

# -- the event that asked for a training run (its ``trigger`` parameter) -------------------------
TRIGGER_EVENT = "mlops.trigger.event"
TRIGGER_VERSION = "mlops.trigger.version"
TRIGGER_REASON = "mlops.trigger.reason"

# -- a dataset input of the run (MLflow dataset tags) -------------------------------------------
DATASET_DIGEST = "mlops.digest"
DATASET_SOURCE = "mlops.source"

# -- the registered model: alias history and rollout state --------------------------------------
PREVIOUS_CHAMPION = "mlops.previous_champion"
ALIAS_MOVE_PREFIX = "mlops.alias_move."
ROLLOUT = "mlops.rollout"

# -- deployment of a version ----------------------------------------------------------------------
INFRA_VALIDATION = "mlops.infra_validation"
INFRA_VALIDATION_REASON = "mlops.infra_validation.reason"
INFRA_VALIDATION_P99_MS = "mlops.infra_validation.p99_ms"
INFRA_VALIDATION_AT = "mlops.infra_validation.at"
ROLLOUT_RESULT = "mlops.rollout.result"
ROLLOUT_REASON = "mlops.rollout.reason"
ROLLOUT_NOT_SERVED = "mlops.rollout.not_served"
CANARY_REQUESTS = "mlops.canary.requests"
CANARY_ERROR_RATE = "mlops.canary.error_rate"
CANARY_P99_MS = "mlops.canary.p99_ms"
CANARY_QUALITY_METRIC = "mlops.canary.quality.metric"
CANARY_QUALITY_ROWS = "mlops.canary.quality.rows"
CANARY_QUALITY_VALUE = "mlops.canary.quality.value"
CANARY_QUALITY_BASELINE = "mlops.canary.quality.baseline"
CANARY_QUALITY_BASELINE_SOURCE = "mlops.canary.quality.baseline_source"
CANARY_QUALITY_DROP_BOUND = "mlops.canary.quality.drop_bound"
SHADOW_ROWS = "mlops.shadow.rows"
SHADOW_AGREEMENT = "mlops.shadow.agreement"

# -- monitoring of a version ---------------------------------------------------------------------
#: Artifact path (on the version's training run) of its reference profile: what drift, skew and
#: estimated-quality checks compare a serving window with (``monitoring.profile``).
REFERENCE_PROFILE = "mlops.monitoring.profile"
REFERENCE_PROFILE_ARTIFACT = "monitoring/reference_profile.json"
#: The run id of the version's latest monitoring run (in the ``<model>-monitoring`` experiment).
MONITORING_LATEST_RUN = "mlops.monitoring.latest_run"
MONITORING_LATEST_AT = "mlops.monitoring.latest_at"
#: Tags of a monitoring run: which model version and which window it looked at.
MONITORING_MODEL_VERSION = "mlops.monitoring.model_version"
MONITORING_WINDOW_START = "mlops.monitoring.window_start"
MONITORING_WINDOW_END = "mlops.monitoring.window_end"
MONITORING_WINDOW_ROWS = "mlops.monitoring.window_rows"

# -- MLflow's own tags that this package sets ----------------------------------------------------
#: The experiment tag MLflow 3's UI reads to choose an experiment's layout: GenAI (traces,
#: overview) or model training (runs). The UI writes it too, from its experiment-type selector.
EXPERIMENT_KIND = "mlflow.experimentKind"
#: The value of ``EXPERIMENT_KIND`` for classic model training ("custom_model_development").
EXPERIMENT_KIND_MODEL_TRAINING = "custom_model_development"

#: MLflow caps a tag value at 5,000 characters (8,000 on newer stores); long values are cut here.
TAG_VALUE_LIMIT = 4900


def metric_tag(name: str) -> str:
    """The version tag holding the test-set value of metric ``name``."""
    return METRIC_PREFIX + name


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The ``mlops.metric.*`` tags of a version, by metric name (values as stored)."""
    return {
        k.removeprefix(METRIC_PREFIX): v for k, v in tags.items() if k.startswith(METRIC_PREFIX)
    }


def training_run_tags(
    *,
    code_version: str,
    config_hash: str,
    model_name: str,
    flow_run_id: str | None,
    flow_run_url: str | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of a continuous-training run: code, config, model and the Prefect flow run.

    A flow run URL is written only when Prefect knows one (an API with a UI URL): a URL made of
    ``None`` would be a broken link. ``extra`` (the config's own tags) comes last and may
    override nothing but its own keys.
    """
    tags = {
        CODE_VERSION: code_version,
        CONFIG_HASH: config_hash,
        FLOW_RUN_ID: flow_run_id or "",
        MODEL_NAME: model_name,
    }
    if flow_run_url and flow_run_url.startswith(("http://", "https://")):
        tags[FLOW_RUN_URL] = flow_run_url
    return {**tags, **(extra or {})}


def version_lineage_tags(
    run_tags: Mapping[str, str],
    *,
    run_id: str,
    snapshot_digest: str,
    snapshot_path: str,
    snapshot_source: str,
    snapshot_rows: int,
    validation: str,
    reference: str | None,
    task: str,
    target: str,
    baseline_version: str | None,
    metrics: Mapping[str, float],
) -> dict[str, str]:
    """The tags of a registered version: the run's tags plus data, validation, task, baseline and
    test-set metrics. ``validation`` is ``"true"`` / ``"false"`` / ``"skipped"``."""
    return {
        **run_tags,
        DATA_DIGEST: snapshot_digest,
        DATA_SNAPSHOT: snapshot_path,
        DATA_SOURCE: snapshot_source[:TAG_VALUE_LIMIT],
        DATA_ROWS: str(snapshot_rows),
        VALIDATION_SUCCESS: validation,
        VALIDATION_RESULT: f"runs:/{run_id}/validation/gx_result.json",
        VALIDATION_REFERENCE: reference or "current data",
        TASK: task,
        TARGET: target,
        BASELINE_VERSION: baseline_version or "none",
        MLFLOW_RUN_ID: run_id,
        **{metric_tag(k): f"{v:.6g}" for k, v in metrics.items()},
    }


def blessing_tags(*, blessed: bool, reason: str, baseline_version: str | None) -> dict[str, str]:
    """The tags a blessing decision leaves on the training run."""
    return {
        BLESSED: str(blessed).lower(),
        BLESSING_REASON: reason[:TAG_VALUE_LIMIT],
        BLESSING_BASELINE: baseline_version or "none",
    }


def trigger_tags(*, event: str, version: str | None, reason: str) -> dict[str, str]:
    """The tags saying which event asked for a training run (version ``none`` when the event
    named none)."""
    return {
        TRIGGER_EVENT: event,
        TRIGGER_VERSION: version or "none",
        TRIGGER_REASON: reason[:TAG_VALUE_LIMIT],
    }


def code_version(start: Path | None = None) -> str:
    """The git commit (``<sha>`` or ``<sha>-dirty``) of ``start``, else the package version."""
    cwd = start or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=5,
            )
            suffix = "-dirty" if dirty.stdout.strip() else ""
            return sha.stdout.strip() + suffix
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"prefect-mlops=={version('prefect-mlops')}"


# -- a version that failed in production (set by the champion fallback) -------------------------
#: When the version was found failing as champion (ISO 8601, UTC); a fallback never returns to it.
FAILING_AT = "mlops.failing.at"
#: Why: the figures of the ``mlops.model.failing`` event (error rate, p99, quality).
FAILING_REASON = "mlops.failing.reason"
