"""The batch-scoring job's configuration: :class:`ScoringConfig`, the flow's one parameter.

Model (alias or pinned version), input (:class:`~prefect_mlops.config.DataSource`: a CSV/Parquet
file or a SQL query), output folder, chunk size and runner (Prefect's default thread-pool runner,
or Dask through prefect-dask).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefect_mlops.config import DataSource

RESERVED_COLUMNS = ("request_id", "prediction", "model_name", "model_version")


class ScoringConfig(BaseModel):
    """Everything the batch-scoring flow needs: model, input, output, chunking and runner."""

    # hide_input_in_errors: a validation error never repeats a value (a URL may hold a secret).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    model_name: str = Field(min_length=1, description="Registered model name in MLflow.")
    alias: str = Field(
        default="champion",
        min_length=1,
        description="Alias of the version to score with; ignored when `version` is set.",
    )
    version: str | None = Field(
        default=None, description="Pin a model version (e.g. '3'); wins over `alias`."
    )
    data: DataSource = Field(description="The rows to score: a CSV/Parquet file or a SQL query.")
    output_dir: str = Field(
        min_length=1, description="Folder for part-<chunk>.parquet files and the summary JSON."
    )
    chunk_size: int = Field(
        default=200_000,
        ge=1,
        description="Rows per chunk; memory grows with this (two chunks in flight), not the "
        "input. Each chunk is one part file (and one task run on Dask).",
    )
    runner: Literal["default", "dask"] = Field(
        default="default",
        description="'default': Prefect's thread-pool runner in this process; 'dask': a Dask "
        "cluster through prefect-dask (see dask_address / dask_workers).",
    )
    parallelism: int = Field(
        default=2,
        ge=1,
        description="Threads predicting at once on the default runner: each chunk is cut in "
        "this many row slices, predicted in parallel.",
    )
    dask_address: str | None = Field(
        default=None,
        description="Address of a running Dask scheduler (tcp://host:8786); default: start a "
        "local cluster. Its workers must reach the MLflow stores and the input/output folders.",
    )
    dask_workers: int = Field(
        default=2, ge=1, description="Worker processes of the local Dask cluster (1 thread each)."
    )
    id_column: str | None = Field(
        default=None, description="Column copied into the output next to each prediction."
    )
    include_probabilities: bool = Field(
        default=False, description="Add proba_<class> columns (classifiers only)."
    )
    predict_threads: int | None = Field(
        default=1,
        ge=1,
        description="OpenMP threads per predict call (1 avoids oversubscription when chunks run "
        "in parallel); null leaves the library default.",
    )
    overwrite: bool = Field(
        default=False,
        description="Replace part files already in output_dir (else an error names them).",
    )
    job_id: str | None = Field(
        default=None,
        description="Prefix of the request ids; default: the Prefect flow run id.",
    )
    keep_staging: bool = Field(
        default=False,
        description="Keep the staged input chunks after scoring (for debugging; Dask runner "
        "only: the default runner scores the chunks in memory and stages nothing).",
    )

    @model_validator(mode="after")
    def _checks(self) -> ScoringConfig:
        if self.id_column and self.id_column in RESERVED_COLUMNS:
            raise ValueError(f"id_column {self.id_column!r} clashes with an output column")
        if self.dask_address and self.runner != "dask":
            raise ValueError("dask_address needs runner: dask")
        return self

    @property
    def model_ref(self) -> str:
        """``name/version`` or ``name@alias``, as the user asked for it."""
        if self.version:
            return f"{self.model_name}/{self.version}"
        return f"{self.model_name}@{self.alias}"
