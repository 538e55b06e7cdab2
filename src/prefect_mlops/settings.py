"""Process-wide settings: one ``Settings`` object read from ``MLOPS_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where prefect-mlops keeps its state. Every field can be set as ``MLOPS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore")

    home: Path = Field(
        default=Path(".mlops"),
        description="Folder for local state: MLflow SQLite store, artifacts, data snapshots.",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default sqlite:///<home>/mlflow.db.",
    )
    registry_uri: str | None = Field(
        default=None, description="MLflow registry URI; default: the tracking URI."
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for new MLflow experiments; default <home>/mlartifacts.",
    )
    snapshot_dir: Path | None = Field(
        default=None,
        description="Folder of content-addressed data snapshots; default <home>/snapshots.",
    )
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Where the MLflow UI is served (links in Prefect artifacts).",
    )
    env: str = Field(default="local", description="Environment name (local, staging, production).")
    serve_model_name: str | None = Field(
        default=None, description="Registered model the online service serves (required to serve)."
    )
    serve_alias: str = Field(default="champion", description="Alias the online service serves.")
    serve_version: str | None = Field(
        default=None,
        description="Serve exactly this version (pins it: no alias polling, no rollouts).",
    )
    serve_token: str | None = Field(
        default=None, description="Bearer token the online service requires when set."
    )
    serve_token_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts besides loopback that may be sent the serving token, over https only "
        '(a JSON list in MLOPS_SERVE_TOKEN_HOSTS, e.g. ["serving.internal.example.com"]).',
    )
    allow_pickle_models: bool = Field(
        default=False,
        description="Load model versions saved with pickle or cloudpickle (loading one runs any "
        "code its file holds); default: skops only.",
    )
    model_trusted_types: list[str] = Field(
        default_factory=list,
        description="Types a skops model may hold beyond scikit-learn's classes and numpy's and "
        "scipy's data types (a JSON list in MLOPS_MODEL_TRUSTED_TYPES, e.g. "
        '["xgboost.sklearn.XGBClassifier"]).',
    )
    serve_max_rows: int = Field(
        default=10_000, ge=1, description="Most rows one /predict request may carry (else 413)."
    )
    serve_max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="Most bytes one /predict body may have (else 413, before it is parsed); "
        "a parsed body takes ~5-10x its size in memory.",
    )
    serve_max_concurrency: int = Field(
        default=32,
        ge=1,
        description="Most requests the service handles at once (more are answered 429 at "
        "once); with serve_max_body_bytes it bounds the memory of request bodies.",
    )
    serve_reload_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between re-reads of alias and rollout from the registry (0: never).",
    )
    serving_log_dir: Path | None = Field(
        default=None, description="Folder of the serving log (Parquet); default <home>/serving_log."
    )
    serving_log_db_url: str | None = Field(
        default=None, description="SQLAlchemy URL; when set the serving log also goes to a table."
    )
    serving_log_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="The serving log writes a Parquet file at most this often (and at 5,000 "
        "rows, and on shutdown); longer means fewer, larger files.",
    )
    serving_log_sample_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of requests written to the serving log."
    )

    @cached_property
    def home_path(self) -> Path:
        """The absolute home folder."""
        return self.home.expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI in force (a relative SQLite or file path made absolute)."""
        return absolute_uri(self.tracking_uri or f"sqlite:///{self.home_path / 'mlflow.db'}")

    @property
    def resolved_registry_uri(self) -> str:
        """The MLflow registry URI in force."""
        return absolute_uri(self.registry_uri) if self.registry_uri else self.resolved_tracking_uri

    @property
    def resolved_artifact_location(self) -> str:
        """Artifact root used when an experiment is created."""
        if self.artifact_location:
            return absolute_uri(self.artifact_location)
        return (self.home_path / "mlartifacts").as_uri()

    @property
    def resolved_serving_log_dir(self) -> Path:
        """Folder of the serving log."""
        return (self.serving_log_dir or self.home_path / "serving_log").expanduser().resolve()

    @property
    def resolved_snapshot_dir(self) -> Path:
        """Folder of the data snapshots."""
        return (self.snapshot_dir or self.home_path / "snapshots").expanduser().resolve()

    def location_env(self) -> dict[str, str]:
        """Every location as an absolute ``MLOPS_*`` variable, for a process started in another
        folder (``bentoml serve`` runs from a neutral one): relative defaults such as
        ``./.mlops`` would otherwise resolve against that folder and find no registry."""
        return {
            "MLOPS_HOME": str(self.home_path),
            "MLOPS_TRACKING_URI": self.resolved_tracking_uri,
            "MLOPS_REGISTRY_URI": self.resolved_registry_uri,
            "MLOPS_ARTIFACT_LOCATION": self.resolved_artifact_location,
            "MLOPS_SNAPSHOT_DIR": str(self.resolved_snapshot_dir),
            "MLOPS_SERVING_LOG_DIR": str(self.resolved_serving_log_dir),
        }


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute against the working directory:
    ``sqlite:///rel.db`` (three slashes: relative), ``file:rel`` and plain paths. Server and
    database URLs (``http://``, ``postgresql://``, ``databricks``) are returned unchanged."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path, sep, query = uri.removeprefix("sqlite:///").partition("?")
        if path and path != ":memory:":
            return f"sqlite:///{Path(path).expanduser().resolve()}{sep}{query}"
        return uri
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return Path(uri.removeprefix("file:")).expanduser().resolve().as_uri()
    if "://" not in uri and (uri.startswith((".", "~", "/")) or "/" in uri or "\\" in uri):
        return str(Path(uri).expanduser().resolve())
    return uri


def get_settings() -> Settings:
    """Settings read afresh from the environment (cheap; tests change the environment)."""
    return Settings()
