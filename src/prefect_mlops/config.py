"""Typed configuration of the continuous-training flow.

``TrainingConfig`` is the one parameter of the flow: the Prefect UI renders it as a form, and
``prefect-mlops train --config FILE`` reads it from YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from prefect_mlops import secret_references, secrets
from prefect_mlops.errors import ConfigError

TaskType = Literal["auto", "classification", "regression"]

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "f1": True,
    "accuracy": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
CLASSIFICATION_METRICS = ("roc_auc", "f1", "accuracy", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


class _Strict(BaseModel):
    # hide_input_in_errors: a pydantic error's text shows no value (a URL may hold a password);
    # format_validation_error shows each value masked.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class DataSource(_Strict):
    """Where the training table comes from: a CSV/Parquet file, or a SQL query.

    A database password is never part of the configuration (it is a flow parameter, stored in
    Prefect and logged to MLflow): ``sql_url`` must hold none; ``password_env`` or
    ``password_secret`` name where it is read from, or ``sql_url_env`` names an environment
    variable holding the whole URL. They are resolved when the data is read
    (:meth:`connection_url`).
    """

    path: str | None = Field(default=None, description="CSV or Parquet file (local path or URI).")
    format: Literal["auto", "csv", "parquet"] = Field(
        default="auto", description="File format; 'auto' goes by the file extension."
    )
    sql_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a database to read with `query`, without password "
        "(see `password_env`, `password_secret`, `sql_url_env`).",
    )
    sql_url_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding the whole SQLAlchemy URL "
        "(password included), read when the data is read; instead of `sql_url`.",
    )
    password_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding the password of `sql_url`, "
        "read when the data is read.",
    )
    password_secret: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the password of `sql_url`, "
        "loaded when the data is read.",
    )
    query: str | None = Field(
        default=None, description="SQL query, used with `sql_url` or `sql_url_env`."
    )
    timestamp_column: str | None = Field(
        default=None, description="Timestamp column for the since/until filter and time splits."
    )
    since: datetime | None = Field(
        default=None, description="Keep rows whose timestamp is at or after this instant."
    )
    until: datetime | None = Field(
        default=None, description="Keep rows whose timestamp is before this instant."
    )

    @field_validator("sql_url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        if url and secrets.url_has_secret(url):
            raise ValueError(
                f"sql_url holds a password or secret ({secrets.mask_url(url)}), and the "
                "configuration is stored in clear (Prefect flow parameters, MLflow); remove it "
                "from the URL and set `password_env` to the name of an environment variable "
                "holding the password (or `password_secret` to a Prefect Secret block), or "
                "put the whole URL in an environment variable named by `sql_url_env`"
            )
        return url

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if sum(bool(x) for x in (self.path, self.sql_url, self.sql_url_env)) != 1:
            raise ValueError(
                "give exactly one of `path` or `sql_url` (or `sql_url_env`) (+ `query`)"
            )
        if self.is_sql and not self.query:
            raise ValueError("`query` is required with `sql_url`")
        if self.password_env and self.password_secret:
            raise ValueError("give at most one of `password_env` or `password_secret`")
        if (self.password_env or self.password_secret) and not self.sql_url:
            raise ValueError(
                "`password_env` / `password_secret` go with `sql_url` (a URL in `sql_url_env` "
                "holds its own password)"
            )
        if (self.since or self.until) and not self.timestamp_column:
            raise ValueError("`since`/`until` need `timestamp_column`")
        return self

    @property
    def is_sql(self) -> bool:
        """Whether the source is a SQL query (``sql_url`` or ``sql_url_env``)."""
        return bool(self.sql_url or self.sql_url_env)

    def connection_url(self) -> str:
        """The SQLAlchemy URL to connect with, its password resolved from the reference (an
        environment variable or a Prefect Secret block). Only for opening the connection:
        never store, log or raise it. Raises ConfigError when a reference cannot be resolved.
        """
        if self.sql_url_env:
            return secret_references.resolve_env(self.sql_url_env, "data.sql_url_env")
        url = self.sql_url or ""
        if self.password_env:
            return secret_references.with_password(
                url, secret_references.resolve_env(self.password_env, "data.password_env")
            )
        if self.password_secret:
            password = secret_references.resolve_secret_block(
                self.password_secret, "data.password_secret"
            )
            return secret_references.with_password(url, password)
        return url

    def describe(self) -> str:
        """A short human-readable name of the source: the file path, or the SQL URL (every
        password and secret masked) and query."""
        if self.path:
            return self.path
        if self.sql_url_env:
            value = os.environ.get(self.sql_url_env)
            url = (
                f"{secrets.mask_url(value)} (from ${self.sql_url_env})"
                if value
                else (f"${self.sql_url_env}")
            )
        else:
            url = secrets.mask_url(self.sql_url or "")
        return f"{url} :: {self.query}"


class SplitConfig(_Strict):
    """How rows are split into train / validation / test."""

    method: Literal["random", "time"] = Field(
        default="random",
        description="'random' (seeded) or 'time' (oldest rows train, newest test).",
    )
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows in the test set.")
    validation_size: float = Field(
        default=0.1, ge=0, lt=1, description="Share of rows in the validation set (0 for none)."
    )
    seed: int = Field(default=42, description="Seed of the random split.")
    stratify: bool = Field(
        default=True, description="Stratify the random split on the target (classification)."
    )

    @model_validator(mode="after")
    def _sizes(self) -> SplitConfig:
        if self.test_size + self.validation_size >= 1:
            raise ValueError("test_size + validation_size must be below 1")
        return self


class SearchConfig(_Strict):
    """Optional hyper-parameter search over the estimator's parameters."""

    kind: Literal["random", "grid"] = Field(
        default="random", description="RandomizedSearchCV ('random') or GridSearchCV ('grid')."
    )
    space: dict[str, list[Any]] = Field(
        description="Estimator parameter name -> candidate values, e.g. {max_depth: [3, 5, null]}."
    )
    n_iter: int = Field(default=10, ge=1, description="Candidates sampled by a random search.")
    cv: int = Field(default=3, ge=2, description="Cross-validation folds.")
    scoring: str | None = Field(
        default=None, description="scikit-learn scorer name; default by task (roc_auc / neg_rmse)."
    )


class EstimatorConfig(_Strict):
    """The scikit-learn estimator, by import path, with its parameters."""

    class_path: str | None = Field(
        default=None,
        description="Import path, e.g. sklearn.ensemble.RandomForestClassifier; default "
        "HistGradientBoostingClassifier / HistGradientBoostingRegressor by task.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")
    search: SearchConfig | None = Field(default=None, description="Optional parameter search.")


class ValidationConfig(_Strict):
    """Data validation with Great Expectations."""

    enabled: bool = Field(default=True, description="Validate the data before training.")
    suite_path: str | None = Field(
        default=None, description="A GX expectation suite (JSON) to use instead of inferring one."
    )
    reference: str | None = Field(
        default="champion",
        description="Data the suite is inferred from: 'champion' (the champion's training "
        "snapshot, else the current data), a snapshot/file path, or null for the current data.",
    )
    range_tolerance: float = Field(
        default=0.1, ge=0, description="Numeric ranges widen by this share of the reference range."
    )
    range_outlier_tolerance: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of rows allowed outside the widened numeric range.",
    )
    null_tolerance: float = Field(
        default=0.05, ge=0, le=1, description="Extra share of nulls allowed above the reference."
    )
    unseen_category_tolerance: float = Field(
        default=0.01, ge=0, le=1, description="Share of rows allowed outside the known categories."
    )
    max_categories: int = Field(
        default=50, ge=1, description="Columns with more distinct values get no domain check."
    )


class MetricThreshold(_Strict):
    """A blessing rule on one metric (direction aware: log_loss, rmse, mae are lower-is-better)."""

    metric: str = Field(description="Metric name: roc_auc, f1, accuracy, log_loss, rmse, mae, r2.")
    min_value: float | None = Field(
        default=None, description="Worst acceptable value for a higher-is-better metric."
    )
    max_value: float | None = Field(
        default=None, description="Worst acceptable value for a lower-is-better metric."
    )
    min_improvement: float | None = Field(
        default=None,
        description="Required absolute improvement over the champion (negative: allowed loss).",
    )
    min_relative_improvement: float | None = Field(
        default=None,
        description="Required relative improvement over the champion, e.g. -0.01 allows 1 %% loss.",
    )
    per_slice: bool = Field(default=False, description="Apply the rule to every slice as well.")

    @model_validator(mode="after")
    def _known_metric(self) -> MetricThreshold:
        if self.metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"unknown metric {self.metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}"
            )
        return self


DriftMethod = Literal["wasserstein", "jensenshannon", "ks", "chisquare", "z", "psi"]


class DriftOverride(_Strict):
    """A column's own drift test, instead of the one Evidently's DataDriftPreset picks."""

    method: DriftMethod | None = Field(
        default=None,
        description="wasserstein, jensenshannon, ks, chisquare, z or psi; default: Evidently's "
        "choice by column type and reference size.",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        description="The method's threshold (a distance for wasserstein / jensenshannon / psi, a "
        "p-value for ks / chisquare / z); default: the method's own (0.1, 0.1, 0.1, 0.05...).",
    )


class MonitoringConfig(_Strict):
    """How the monitoring flow judges a version's served traffic: the window, the drift
    tests, the quality and efficiency thresholds (the ``monitoring:`` section)."""

    max_window_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Most serving-log rows in one window (the newest are kept).",
    )
    max_window_days: float = Field(
        default=7.0,
        gt=0,
        description="Oldest a window reaches back when no start is given and the model was "
        "never monitored (else: since the last monitoring run, bounded by this).",
    )
    min_rows: int = Field(
        default=50,
        ge=1,
        description="Fewer scored rows than this in the window: nothing to monitor, no verdict.",
    )
    reference: Literal["train", "validation"] = Field(
        default="train",
        description="Which rows of the training snapshot are the drift reference.",
    )
    drift_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Dataset drift when at least this share of the feature columns drifted.",
    )
    columns: dict[str, DriftOverride] = Field(
        default_factory=dict,
        description="Per-column drift test overrides (a feature name, or 'prediction').",
    )
    labels: DataSource | None = Field(
        default=None,
        description="Late labels: a table of request_id (+ row_index) and the true value, "
        "read at each monitoring run for the realised quality.",
    )
    label_column: str | None = Field(
        default=None, description="The labels' true-value column; default: the training target."
    )
    quality_metric: str | None = Field(
        default=None, description="accuracy or f1 (classifiers), rmse, mae or r2 (regressors)."
    )
    max_quality_drop: float = Field(
        default=0.05,
        ge=0,
        description="Quality degraded when the realised (or estimated) metric is worse than the "
        "test set's by more than this (absolute).",
    )
    latency_p99_ms: float | None = Field(
        default=None, gt=0, description="Latency SLO: p99 of request latency above it fails."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of requests answered 5xx (the model's fault) above which the version "
        "is failing.",
    )
    report_sample_rows: int = Field(
        default=50_000,
        ge=100,
        description="Evidently's HTML report is built on at most this many window rows (the "
        "verdicts always come from the whole window).",
    )
    dask_address: str | None = Field(
        default=None,
        description="A Dask scheduler (tcp://host:8786): window statistics are computed there "
        "per partition; 'local' starts a local cluster.",
    )


class TrainingConfig(_Strict):
    """Everything the continuous-training flow needs: data, target, model, blessing rules."""

    model_name: str = Field(description="Registered model name in MLflow.", min_length=1)
    experiment_name: str | None = Field(
        default=None, description="MLflow experiment; default: the model name."
    )
    data: DataSource = Field(description="The training table.")
    target: str = Field(description="Target column.", min_length=1)
    task: TaskType = Field(
        default="auto", description="classification, regression, or auto (by the target's dtype)."
    )
    features: list[str] | None = Field(
        default=None,
        description="Feature columns; default all columns but target, id, timestamp and drops.",
    )
    categorical_features: list[str] | None = Field(
        default=None, description="Categorical features; default: non-numeric feature columns."
    )
    id_column: str | None = Field(default=None, description="Entity id column (not a feature).")
    drop_columns: list[str] = Field(default_factory=list, description="Columns to ignore.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/validation/test.")
    estimator: EstimatorConfig = Field(
        default_factory=EstimatorConfig, description="The scikit-learn estimator."
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig, description="Great Expectations data validation."
    )
    slices: list[str] = Field(
        default_factory=list, description="Columns whose values define evaluation slices."
    )
    thresholds: list[MetricThreshold] | None = Field(
        default=None,
        description="Blessing rules; default: the primary metric (roc_auc / rmse) must not get "
        "worse than the champion's.",
    )
    promote: bool = Field(
        default=True, description="Move the 'champion' alias to a blessed model at once."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags for run + version.")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig,
        description="How the monitoring flow judges the served traffic of this model's versions.",
    )

    @model_validator(mode="after")
    def _columns(self) -> TrainingConfig:
        if self.features is not None and self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed in `features`")
        if self.id_column and self.id_column == self.target:
            raise ValueError("`id_column` cannot be the target")
        return self

    @property
    def resolved_experiment_name(self) -> str:
        """The MLflow experiment name in force."""
        return self.experiment_name or self.model_name

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON form (lineage tag ``mlops.config_hash``), without the
        ``monitoring`` section: how served traffic is judged does not change the model, so a
        new threshold neither retrains nor makes the same data "changed"."""
        payload = json.dumps(self.model_dump(mode="json", exclude={"monitoring"}), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def from_mapping(cls, data: Any, source: str = "config") -> TrainingConfig:
        """Validate a mapping; raise ConfigError naming every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainingConfig:
        """Read a YAML file; relative data paths resolve against the file's folder."""
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read as text: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping, got {type(raw).__name__}")
        data_path = (
            (raw.get("data") or {}).get("path") if isinstance(raw.get("data"), dict) else None
        )
        if data_path and "://" not in data_path and not Path(data_path).is_absolute():
            raw["data"]["path"] = str((path.parent / data_path).resolve())
        return cls.from_mapping(raw, source=str(path))


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per invalid field: ``<source>: field a.b: message (got value)``, every
    password and secret masked."""
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  field {loc}: {err['msg']}{shown}")
    return secrets.mask_text("\n".join(lines))
