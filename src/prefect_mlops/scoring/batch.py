"""Batch scoring with a registered model, in chunks of bounded size (no Prefect in here).

The pieces, in the order the ``batch-scoring`` flow uses them:

* :class:`ScoringConfig` — the flow's one parameter: model (alias or pinned version), input
  (:class:`~prefect_mlops.config.DataSource`: CSV/Parquet file or SQL query), output folder,
  chunk size and runner (Prefect's default thread-pool runner, or Dask through prefect-dask).
* :func:`resolve_model` — alias → version (or the pinned version) and the feature columns from
  the model's MLflow signature; :class:`ScoringError` names an unknown model, version or alias.
* :func:`iter_scoring_tables` — a generator: streams the input (``ParquetFile.iter_batches``,
  ``read_csv(chunksize=)``, ``read_sql_query(chunksize=)``) as Arrow tables of at most
  ``chunk_size`` rows with only the columns scoring needs. The columns are checked against the
  model's features (and the output folder against old results) *before* the first chunk, so a
  bad input leaves the output untouched; it holds one chunk in memory at a time.
* :func:`score_in_process` — the default runner's scoring: each chunk cut in row slices
  (:func:`row_slices`) predicted by ``parallelism`` threads, two chunks in flight (reading and
  writing overlap predicting), ``<output_dir>/part-<i:05d>.parquet`` written atomically per
  chunk, nothing staged on disk.
* :func:`stage_chunks` — the Dask runner's input: each chunk written as
  ``<staging>/chunk-<i:05d>.arrow`` (Arrow IPC, uncompressed: a scratch copy that is cheap to
  write and read) and yielded at once, so scoring starts on the first chunk while the rest is
  still being read. :func:`score_chunk_file` scores one on a worker, loading the model once
  per process (:func:`load_model_cached`); :func:`remove_staged_chunk` deletes a scored
  chunk's file, so the staging folder holds only the chunks not yet scored.
* :func:`score_chunk` — one pandas chunk in, the scored frame out (the same columns).
* :func:`summarize` — rows, chunks, wall time, rows/s, model version, output files.

Output columns: the id column (when ``id_column`` is set), ``request_id``, ``prediction``, one
``proba_<class>`` per class (``include_probabilities``, classifiers only), ``model_name``,
``model_version``.

``request_id`` is ``<job_id>-<chunk:05d>-<row:07d>``: the job id (the Prefect flow run id, or
``ScoringConfig.job_id``), the chunk number and the row's position in its chunk. It is
deterministic for a job (re-running a chunk gives the same ids), unique within the job, and
``request_id.rsplit("-", 2)`` gives back the job, chunk and row.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefect_mlops.config import DataSource, format_validation_error
from prefect_mlops.errors import ConfigError, DataIngestError, MLOpsError, ScoringError
from prefect_mlops.files import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import pyarrow as pa

PART_PREFIX = "part-"
STAGING_PREFIX = ".staging-"
STAGED_SUFFIX = ".arrow"
SUMMARY_FILE = "_scoring_summary.json"
RESERVED_COLUMNS = ("request_id", "prediction", "model_name", "model_version")


class ScoringConfig(BaseModel):
    """Everything the batch-scoring flow needs: model, input, output, chunking and runner."""

    model_config = ConfigDict(extra="forbid")

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

    @classmethod
    def from_mapping(cls, data: Any, source: str = "scoring config") -> ScoringConfig:
        """Validate a mapping; raise ConfigError naming every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from exc


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ResolvedModel:
    """The exact model version a scoring job uses, and the columns it reads."""

    model_name: str
    version: str
    model_uri: str
    artifact_uri: str
    features: list[str]
    feature_types: dict[str, str]
    tracking_uri: str
    registry_uri: str
    requested: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def resolve_model(config: ScoringConfig, tracking_uri: str, registry_uri: str) -> ResolvedModel:
    """Resolve ``config``'s alias (or pinned version) to one version and read its features.

    The features are the input names of the model's MLflow signature (``feature_names_in_`` of
    the loaded model when it has no signature). Raises ScoringError naming the model for an
    unknown model, version or alias.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from prefect_mlops.registry import get_alias_version, is_not_found_error

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    name = config.model_name
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if is_not_found_error(exc):
            known = sorted(m.name for m in client.search_registered_models(max_results=50))
            raise ScoringError(
                f"registered model {name!r} not found in the registry {registry_uri}; "
                f"known models: {known or 'none'}"
            ) from exc
        raise
    if config.version:
        try:
            version = str(client.get_model_version(name, str(config.version)).version)
        except MlflowException as exc:
            raise ScoringError(
                f"model {name!r} has no version {config.version!r}; see "
                f"`prefect-mlops models {name}`"
            ) from exc
    else:
        mv = get_alias_version(client, name, config.alias)
        if mv is None:
            raise ScoringError(
                f"model {name!r} has no alias {config.alias!r}; pin a version or promote one "
                f"(`prefect-mlops promote {name} VERSION`)"
            )
        version = str(mv.version)
    model_uri = f"models:/{name}/{version}"
    # Workers load from the artifact location itself: no registry lookup (and no database
    # connection) per worker process.
    artifact_uri = client.get_model_version_download_uri(name, version)
    _point_mlflow(tracking_uri, registry_uri)
    features, types = _signature_features(model_uri)
    if not features:
        model = load_model_cached(artifact_uri, tracking_uri, registry_uri)
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            raise ScoringError(
                f"model {model_uri} has no MLflow signature and no feature_names_in_; log it "
                f"with a signature so its input columns are known"
            )
        features, types = [str(n) for n in names], {}
    return ResolvedModel(
        model_name=name,
        version=version,
        model_uri=model_uri,
        artifact_uri=artifact_uri,
        features=features,
        feature_types=types,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        requested=config.model_ref,
    )


def _signature_features(model_uri: str) -> tuple[list[str], dict[str, str]]:
    """Input names and types of the model's signature (empty when it has none)."""
    import mlflow

    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return [], {}
    names = [str(n) for n in signature.inputs.input_names()]
    types: dict[str, str] = {}
    for spec in signature.inputs.inputs:
        kind = getattr(spec, "type", None)
        types[str(spec.name)] = str(getattr(kind, "name", kind))
    return names, types


_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _point_mlflow(tracking_uri: str, registry_uri: str) -> None:
    import mlflow

    if mlflow.get_tracking_uri() != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_registry_uri() != registry_uri:
        mlflow.set_registry_uri(registry_uri)


def load_model_cached(model_uri: str, tracking_uri: str, registry_uri: str) -> Any:
    """The scikit-learn model at ``model_uri``, loaded once per process (cached by URI and
    stores). Tasks call this on the worker, so no model object travels through the task graph."""
    key = (tracking_uri, registry_uri, model_uri)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            import mlflow

            _point_mlflow(tracking_uri, registry_uri)
            model = mlflow.sklearn.load_model(model_uri)
            _MODELS[key] = model
    return model


def clear_model_cache() -> None:
    """Forget the models loaded in this process."""
    with _MODELS_LOCK:
        _MODELS.clear()


# --------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class ChunkFile:
    """One staged chunk of the input, and the seconds it took to read and write it."""

    index: int
    path: str
    rows: int
    seconds: float = 0.0


@dataclass(frozen=True)
class ChunkTable:
    """One chunk of the input in memory, and the seconds it took to read."""

    index: int
    table: pa.Table
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows in the chunk."""
        return int(self.table.num_rows)


def needed_columns(features: list[str], config: ScoringConfig) -> list[str]:
    """The input columns scoring reads: features, the id column, the timestamp column."""
    cols = list(features)
    for extra in (config.id_column, _window_column(config.data)):
        if extra and extra not in cols:
            cols.append(extra)
    return cols


def _window_column(source: DataSource) -> str | None:
    """The timestamp column when a since/until window filters rows."""
    if source.timestamp_column and (source.since or source.until):
        return source.timestamp_column
    return None


def check_columns(
    columns: list[str], features: list[str], config: ScoringConfig, where: str
) -> None:
    """Raise ScoringError naming every feature (or the id / timestamp column) ``columns`` lack."""
    present = set(map(str, columns))
    missing = [c for c in features if c not in present]
    if missing:
        raise ScoringError(
            f"{where} lacks the model's feature column(s) {missing}; the model "
            f"{config.model_ref} reads {features}"
        )
    for label, col in (
        ("id_column", config.id_column),
        ("data.timestamp_column", _window_column(config.data)),
    ):
        if col and col not in present:
            raise ScoringError(f"{label} {col!r} is not in {where}; columns are {sorted(present)}")


def _where(source: DataSource) -> str:
    return f"data file {source.path}" if source.path else source.describe()


def _check_file(source: DataSource) -> tuple[Path, str]:
    """The local path and format of ``source``'s file; DataIngestError names a missing one."""
    from prefect_mlops.data.sources import is_remote_uri, local_path, resolve_format

    path = source.path or ""
    fmt = resolve_format(path, source.format)
    if is_remote_uri(path):
        raise DataIngestError(
            f"data file {path}: batch scoring streams local files only; copy it locally first"
        )
    local = local_path(path)
    if not local.exists():
        raise DataIngestError(f"data file {path} does not exist; check data.path")
    if local.is_file() and local.stat().st_size == 0:
        raise DataIngestError(f"data file {path} is empty (0 bytes): it has no rows")
    return local, fmt


def _csv_sep(path: Path) -> str:
    return "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","


def iter_input_chunks(config: ScoringConfig, features: list[str]) -> Iterator[pa.Table]:
    """Stream ``config.data`` as Arrow tables of at most ``chunk_size`` rows, only needed columns.

    Parquet batches stay in Arrow (no pandas round trip); CSV and SQL chunks are read by pandas
    (its type inference) and converted. The columns are checked (ScoringError naming the
    missing ones) before the first table is yielded. Raises DataIngestError naming the file or
    query when the input cannot be read.
    """
    source, size = config.data, config.chunk_size
    where = _where(source)
    cols = needed_columns(features, config)
    if source.sql_url:
        yield from _iter_sql(config, features, cols, where)
        return
    local, fmt = _check_file(source)
    try:
        import pyarrow as pa

        if fmt == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(local)
            check_columns(schema.names, features, config, where)
            # Plain text features are read dictionary-encoded (as Parquet writers store them):
            # no string is decoded per row, and text_objects() needs the dictionary anyway. The
            # schema names them, so features_frame() still gives them as plain text. The id
            # column keeps its type: it is copied to the output as it is.
            text = [
                c for c in features if c != config.id_column and is_text_type(schema.field(c).type)
            ]
            pf = pq.ParquetFile(local, read_dictionary=text)
            # One thread: the read overlaps predicting, which keeps both cores busy already
            # (Arrow's own decoding threads cost more CPU than they save wall time here).
            for batch in pf.iter_batches(batch_size=size, columns=cols, use_threads=False):
                yield _mark_read_as_dictionary(pa.Table.from_batches([batch]), text)
        else:
            sep = _csv_sep(local)
            header = pd.read_csv(local, sep=sep, nrows=0)
            check_columns(list(header.columns), features, config, where)
            with pd.read_csv(local, sep=sep, usecols=cols, chunksize=size) as reader:
                for frame in reader:
                    yield pa.Table.from_pandas(frame, preserve_index=False)
    except MLOpsError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataIngestError(f"{where} has no rows (and no header)") from exc
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        kind = "CSV" if fmt == "csv" else "Parquet"
        raise DataIngestError(f"{where} is not a readable {kind} file: {exc}") from exc


def _iter_sql(
    config: ScoringConfig, features: list[str], cols: list[str], where: str
) -> Iterator[pa.Table]:
    import pyarrow as pa
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    source = config.data
    try:
        engine = create_engine(source.sql_url or "")
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise DataIngestError(f"cannot connect to {where}: {exc}") from exc
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(stream_results=True)
            first = True
            for frame in pd.read_sql_query(
                text(source.query or ""), conn, chunksize=config.chunk_size
            ):
                if first:
                    check_columns(list(frame.columns), features, config, where)
                    first = False
                yield pa.Table.from_pandas(frame[cols], preserve_index=False)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DataIngestError(
            f"SQL query failed on {where}: {type(cause).__name__}: {cause}"
        ) from exc
    finally:
        engine.dispose()


def _apply_window(table: pa.Table, source: DataSource, where: str) -> pa.Table:
    """Keep the rows in ``[since, until)`` of the timestamp column (possibly none); only that
    column goes through pandas."""
    column = _window_column(source)
    if not column:
        return table
    import pyarrow as pa

    from prefect_mlops.data.sources import as_time_bound, parse_timestamps

    values = parse_timestamps(table.column(column).to_pandas(), column, where)
    tz = getattr(values.dtype, "tz", None)
    mask = values.notna()
    if source.since is not None:
        mask &= values >= as_time_bound(source.since, tz)
    if source.until is not None:
        mask &= values < as_time_bound(source.until, tz)
    return table.filter(pa.array(mask.to_numpy(dtype=bool)))


def expected_rows(config: ScoringConfig) -> int | None:
    """Rows the job will score when known before reading (a Parquet file without a time
    window: its footer says), else None (CSV, SQL, a time window)."""
    source = config.data
    if source.sql_url or _window_column(source):
        return None
    try:
        local, fmt = _check_file(source)
        if fmt != "parquet":
            return None
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(local).metadata.num_rows)
    except (MLOpsError, OSError, ValueError):
        return None  # the read itself names the problem


def existing_parts(output_dir: str | Path) -> list[Path]:
    """Part files already in ``output_dir``."""
    out = Path(output_dir)
    return sorted(out.glob(f"{PART_PREFIX}*.parquet")) if out.is_dir() else []


def check_output_dir(config: ScoringConfig) -> None:
    """Raise ScoringError when output_dir holds part files and ``overwrite`` is off, or is a
    file."""
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ScoringError(f"output_dir {out} is a file, not a folder")
    parts = existing_parts(out)
    if parts and not config.overwrite:
        raise ScoringError(
            f"output_dir {out} already holds {len(parts)} part file(s) ({parts[0].name}, ...); "
            f"choose another folder or set overwrite: true"
        )


def staging_dir(output_dir: str | Path, job_id: str) -> Path:
    """``<output_dir>/.staging-<job>``: where :func:`stage_chunks` writes the job's chunks."""
    return Path(output_dir) / f"{STAGING_PREFIX}{_safe(job_id)}"


def iter_scoring_tables(config: ScoringConfig, features: list[str]) -> Iterator[ChunkTable]:
    """The chunks to score, in order: the input streamed in tables of at most ``chunk_size`` rows
    (only the columns scoring reads, the time window applied, empty chunks skipped), each with
    its index and the seconds it took to read.

    Checks the output folder (:func:`check_output_dir`) and the columns before the first chunk
    is yielded, and removes old part files then (``overwrite`` on), so a bad input leaves the
    output untouched. Raises ScoringError or DataIngestError (also for an input with no rows,
    after the last chunk).
    """
    check_output_dir(config)
    where = _where(config.data)
    index = 0
    started = time.perf_counter()
    for table in iter_input_chunks(config, features):
        table = _apply_window(table, config.data, where)
        if table.num_rows == 0:
            continue
        if index == 0:
            for old in existing_parts(config.output_dir):  # only reached with overwrite on
                old.unlink()
        yield ChunkTable(index=index, table=table, seconds=time.perf_counter() - started)
        index += 1
        started = time.perf_counter()
    if index == 0:
        raise DataIngestError(f"{where} has no rows to score")


def stage_chunks(config: ScoringConfig, features: list[str], job_id: str) -> Iterator[ChunkFile]:
    """Stream the input, write each chunk as ``<staging_dir>/chunk-<i>.arrow`` and yield it as
    soon as it is written (a generator: the caller scores chunk ``i`` while ``i + 1`` is read).
    The Dask runner's input: its worker processes read the chunks from these files.

    Only one chunk is in memory at a time. Nothing is written when the input lacks a feature
    column (ScoringError) or cannot be read (DataIngestError); a DataIngestError also names an
    input with no rows, after the last chunk. Old part files are removed before the first chunk
    is written when ``overwrite`` is on. The staging folder is deleted here when reading the
    input fails; otherwise it is the caller's to remove (:func:`remove_staging`), also when the
    caller stops early (so a failed job's chunks can be kept for debugging).
    """
    import pyarrow.feather as feather

    staging = staging_dir(config.output_dir, job_id)
    try:
        for chunk in iter_scoring_tables(config, features):
            started = time.perf_counter()
            staging.mkdir(parents=True, exist_ok=True)
            path = staging / f"chunk-{chunk.index:05d}{STAGED_SUFFIX}"
            feather.write_feather(chunk.table, path, compression="uncompressed")
            seconds = chunk.seconds + time.perf_counter() - started
            yield ChunkFile(index=chunk.index, path=str(path), rows=chunk.rows, seconds=seconds)
    except GeneratorExit:  # the caller stopped early: its cleanup decides
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_staged_chunk(chunk: ChunkFile, columns: list[str]) -> pa.Table:
    """The ``columns`` of a staged chunk (read into memory, not memory-mapped)."""
    import pyarrow.feather as feather

    return feather.read_table(chunk.path, columns=columns, memory_map=False)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def remove_staged_chunk(chunk: ChunkFile) -> None:
    """Delete a scored chunk's staged file (ignores a missing one)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(chunk.path)


def remove_staging(staging_dir: str | Path) -> None:
    """Delete a staging folder (ignores a missing one)."""
    shutil.rmtree(staging_dir, ignore_errors=True)


# --------------------------------------------------------------------------- scoring


def request_ids(job_id: str, chunk_index: int, n_rows: int) -> pa.Array:
    """``<job_id>-<chunk:05d>-<row:07d>`` for each row of a chunk, as an Arrow string array
    (its bytes built with numpy, no Python string per row)."""
    import pyarrow as pa

    prefix = np.frombuffer(f"{job_id}-{chunk_index:05d}-".encode(), dtype=np.uint8)
    parts: list[pa.Array] = []
    start, digits = 0, 7
    while start < n_rows or not parts:  # rows with the same number of digits at a time
        stop = min(n_rows, 10**digits)
        parts.append(_fixed_width_ids(prefix, start, stop, digits))
        start, digits = stop, digits + 1
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _fixed_width_ids(prefix: np.ndarray, start: int, stop: int, digits: int) -> pa.Array:
    """``prefix`` + each row number in ``[start, stop)`` zero-padded to ``digits`` digits."""
    import pyarrow as pa

    n, width = stop - start, len(prefix) + digits
    text = np.empty((n, width), dtype=np.uint8)
    text[:, : len(prefix)] = prefix
    rows = np.arange(start, stop, dtype=np.int64)
    for place in range(digits):
        text[:, width - 1 - place] = rows // 10**place % 10 + ord("0")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def _align_dtypes(
    frame: pd.DataFrame, feature_types: dict[str, str], may_have_missing: bool = True
) -> pd.DataFrame:
    """Give columns the kind the signature declares where a chunk's inference differs: an
    all-missing string column read as float goes back to object, integers declared as double
    become float64 (as at training time), and missing text is NaN (not the None that Arrow
    and Parquet give), as :func:`prefect_mlops.data.sources.read_table` gave it to training.
    ``may_have_missing=False`` (the Arrow source had no nulls) skips looking for missing text."""
    from prefect_mlops.data.sources import normalize_missing

    if may_have_missing and frame.select_dtypes(include="object").isna().to_numpy().any():
        frame = normalize_missing(frame.copy())
    changes: dict[str, str] = {}
    for col, kind in feature_types.items():
        if col not in frame.columns:
            continue
        dtype = frame[col].dtype
        if kind == "string" and pd.api.types.is_float_dtype(dtype):
            changes[col] = "object"
        elif kind in ("double", "float") and pd.api.types.is_integer_dtype(dtype):
            changes[col] = "float64"
    return frame.astype(changes) if changes else frame


@contextlib.contextmanager
def _predict_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="openmp"):
        yield


def _limit_openmp_threads(n: int | None) -> None:
    """A thread pool's initializer: ``n`` OpenMP threads for whatever this thread predicts.
    OpenMP keeps the count per calling thread, so once per pool thread is enough (saves
    :func:`_predict_threads`' library scan, ~3 ms under the GIL, on every call)."""
    if n is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="openmp")


def predict_columns(
    model: Any,
    features: pd.DataFrame,
    *,
    include_probabilities: bool = False,
    feature_types: dict[str, str] | None = None,
    predict_threads: int | None = None,
    may_have_missing: bool = True,
) -> dict[str, np.ndarray]:
    """``prediction`` and, if asked and the model has ``predict_proba``, one ``proba_<class>``
    per class, for the rows of ``features`` (exactly the model's feature columns)."""
    import sklearn

    X = _align_dtypes(features, feature_types or {}, may_have_missing)
    out: dict[str, np.ndarray] = {}
    with _predict_threads(predict_threads), sklearn.config_context(assume_finite=True):
        if include_probabilities and hasattr(model, "predict_proba"):
            proba = model.predict_proba(X)
            classes = list(model.classes_)
            out["prediction"] = pd.Series(classes).to_numpy()[proba.argmax(axis=1)]
            for j, cls in enumerate(classes):
                out[f"proba_{cls}"] = proba[:, j]
        else:
            out["prediction"] = np.asarray(model.predict(X))
    return out


def scored_table(
    predictions: dict[str, np.ndarray],
    *,
    model_name: str,
    version: str,
    chunk_index: int,
    job_id: str,
    ids: tuple[str, pa.Array | pa.ChunkedArray] | None = None,
) -> pa.Table:
    """The output of one chunk as an Arrow table: the id column (``ids``: name, values),
    ``request_id``, the ``predictions`` columns, ``model_name``, ``model_version``.

    Carries the pandas metadata of the same frame with object string columns, so
    ``pd.read_parquet`` of a part file gives the dtypes a pandas-built frame would.
    """
    import pyarrow as pa

    n_rows = len(predictions["prediction"])
    columns: dict[str, Any] = {}
    if ids is not None:
        name, values = ids
        if pa.types.is_dictionary(values.type):  # a categorical id is written as plain values
            values = values.cast(values.type.value_type)
        columns[name] = values
    columns["request_id"] = request_ids(job_id, chunk_index, n_rows)
    columns.update(predictions)
    columns["model_name"] = pa.repeat(pa.scalar(model_name, pa.string()), n_rows)
    columns["model_version"] = pa.repeat(pa.scalar(str(version), pa.string()), n_rows)
    table = pa.table(columns)
    head = table.slice(0, 1).to_pandas()
    return table.replace_schema_metadata(pa.Schema.from_pandas(head, preserve_index=False).metadata)


def score_chunk(
    model: Any,
    chunk_df: pd.DataFrame,
    feature_columns: list[str],
    model_name: str,
    version: str,
    chunk_index: int,
    *,
    job_id: str,
    id_column: str | None = None,
    include_probabilities: bool = False,
    feature_types: dict[str, str] | None = None,
    predict_threads: int | None = None,
) -> pd.DataFrame:
    """Score one chunk: the id column (if any), ``request_id``, ``prediction``, ``proba_<class>``
    (if asked and the model has ``predict_proba``), ``model_name``, ``model_version``.

    Raises ScoringError naming the feature columns the chunk lacks.
    """
    import pyarrow as pa

    missing = [c for c in feature_columns if c not in chunk_df.columns]
    if missing:
        raise ScoringError(f"chunk {chunk_index} lacks the feature column(s) {missing}")
    predictions = predict_columns(
        model,
        chunk_df[feature_columns],
        include_probabilities=include_probabilities,
        feature_types=feature_types,
        predict_threads=predict_threads,
    )
    ids = (id_column, pa.array(chunk_df[id_column].to_numpy())) if id_column else None
    table = scored_table(
        predictions,
        model_name=model_name,
        version=version,
        chunk_index=chunk_index,
        job_id=job_id,
        ids=ids,
    )
    return table.to_pandas()


# Dictionary encoding pays off for the repeated columns only; request ids are unique.
_DICTIONARY_COLUMNS = ("prediction", "model_name", "model_version")


def write_parquet_atomic(table: pa.Table, final: Path) -> None:
    """Write ``table`` to ``final`` through a temp file in the same folder, then rename."""
    import pyarrow.parquet as pq

    dictionary = [c for c in _DICTIONARY_COLUMNS if c in table.column_names]
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, use_dictionary=dictionary)


@dataclass(frozen=True)
class ChunkResult:
    """One scored chunk."""

    index: int
    rows: int
    path: str
    seconds: float
    worker: str
    started_at: float = 0.0
    finished_at: float = 0.0


def part_path(output_dir: str | Path, chunk_index: int) -> Path:
    """``<output_dir>/part-<chunk:05d>.parquet``."""
    return Path(output_dir) / f"{PART_PREFIX}{chunk_index:05d}.parquet"


def predict_table(
    estimator: Any,
    table: pa.Table,
    model: ResolvedModel,
    *,
    include_probabilities: bool = False,
    predict_threads: int | None = 1,
) -> dict[str, np.ndarray]:
    """:func:`predict_columns` for the model's feature columns of an Arrow ``table`` (only
    those become pandas, through :func:`features_frame`)."""
    frame, may_have_missing = features_frame(table.select(model.features))
    return predict_columns(
        estimator,
        frame,
        include_probabilities=include_probabilities,
        feature_types=model.feature_types,
        predict_threads=predict_threads,
        may_have_missing=may_have_missing,
    )


# Schema metadata naming the plain text columns read dictionary-encoded (a JSON list).
READ_AS_DICTIONARY = b"prefect_mlops.read_as_dictionary"


def _mark_read_as_dictionary(table: pa.Table, columns: list[str]) -> pa.Table:
    if not columns:
        return table
    metadata = {**(table.schema.metadata or {}), READ_AS_DICTIONARY: json.dumps(columns)}
    return table.replace_schema_metadata(metadata)


def features_frame(table: pa.Table) -> tuple[pd.DataFrame, bool]:
    """``table`` as the pandas frame training saw (:func:`~prefect_mlops.data.sources.read_table`),
    and
    whether a column of it may still hold missing values as None.

    Plain text columns, and those the reader dictionary-encoded itself (named in the schema's
    ``READ_AS_DICTIONARY`` metadata), become object arrays of ``str`` with NaN for missing
    (:func:`text_objects`); the others convert as ``Table.to_pandas`` would (a dictionary
    column of the source stays categorical, as pandas reads it). Only a non-text column that
    becomes object (all-null, binary ...) and has Arrow nulls can hold None, so only then need
    :func:`predict_columns` look for missing text.
    """
    decoded = set(json.loads((table.schema.metadata or {}).get(READ_AS_DICTIONARY, b"[]")))
    data: dict[str, Any] = {}
    may_have_missing = False
    for name, column in zip(table.column_names, table.columns, strict=True):
        if is_text_type(column.type) or name in decoded:
            data[name] = text_objects(column)
        else:
            data[name] = values = column.to_pandas()
            may_have_missing |= bool(column.null_count) and values.dtype == object
    return pd.DataFrame(data, copy=False), may_have_missing


def is_text_type(dtype: pa.DataType) -> bool:
    """Whether an Arrow type is plain text: string, large or view string (not a dictionary)."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    )


def text_objects(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A text column as an object array of ``str`` with NaN for missing values.

    Built from the column's dictionary (encoded here when the column is plain text): one
    Python string per distinct value, then a take (``Table.to_pandas`` looks a string up per
    row); a dictionary-encoded read skips decoding the text of every row as well.
    """
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        lookup = np.empty(len(encoded.dictionary) + 1, dtype=object)  # last: missing
        lookup[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
        lookup[pd.isna(lookup)] = np.nan
        codes = encoded.indices.cast(pa.int64()).fill_null(len(lookup) - 1)
        parts.append(lookup[codes.to_numpy()])
    if not parts:
        return np.empty(0, dtype=object)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def row_slices(table: pa.Table, n: int) -> list[pa.Table]:
    """``table`` cut in ``n`` consecutive row slices of near-equal size (zero-copy; fewer when
    it has fewer rows). The model predicts each row on its own, so predicting the slices
    apart and concatenating gives exactly the predictions of the whole table."""
    bounds = np.linspace(0, table.num_rows, max(1, n) + 1).astype(int).tolist()
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]
    return parts or [table]


def concat_predictions(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The predictions of consecutive row slices as those of one table."""
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def score_table(
    estimator: Any,
    table: pa.Table,
    model: ResolvedModel,
    chunk_index: int,
    job_id: str,
    *,
    id_column: str | None = None,
    include_probabilities: bool = False,
    predict_threads: int | None = 1,
) -> pa.Table:
    """One chunk (an Arrow table with the model's features and the id column) scored: the
    output table of :func:`scored_table`; the id column goes from input to output in Arrow."""
    predictions = predict_table(
        estimator,
        table,
        model,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )
    return _scored_chunk(predictions, table, model, chunk_index, job_id, id_column)


def _scored_chunk(
    predictions: dict[str, np.ndarray],
    table: pa.Table,
    model: ResolvedModel,
    chunk_index: int,
    job_id: str,
    id_column: str | None,
) -> pa.Table:
    return scored_table(
        predictions,
        model_name=model.model_name,
        version=model.version,
        chunk_index=chunk_index,
        job_id=job_id,
        ids=(id_column, table.column(id_column)) if id_column else None,
    )


def write_part(scored: pa.Table, output_dir: str, chunk_index: int, started: float) -> ChunkResult:
    """Write a scored chunk to ``part-<chunk>.parquet`` (atomic); ``started`` is the
    ``time.time()`` its scoring began."""
    final = part_path(output_dir, chunk_index)
    write_parquet_atomic(scored, final)
    finished = time.time()
    return ChunkResult(
        index=chunk_index,
        rows=scored.num_rows,
        path=str(final),
        seconds=finished - started,
        worker=f"{os.uname().nodename}:{os.getpid()}",
        started_at=started,
        finished_at=finished,
    )


def score_chunk_file(
    chunk: ChunkFile,
    model: ResolvedModel,
    output_dir: str,
    job_id: str,
    *,
    id_column: str | None = None,
    include_probabilities: bool = False,
    predict_threads: int | None = 1,
) -> ChunkResult:
    """Score a staged chunk file into ``part-<chunk>.parquet`` (atomic); the model is loaded
    once per process from ``model.artifact_uri`` (the registered version's artifacts; the
    tracking URI in ``model`` resolves ``mlflow-artifacts:`` locations)."""
    started = time.time()
    estimator = load_model_cached(model.artifact_uri, model.tracking_uri, model.registry_uri)
    cols = list(model.features)
    if id_column and id_column not in cols:
        cols.append(id_column)
    scored = score_table(
        estimator,
        read_staged_chunk(chunk, cols),
        model,
        chunk.index,
        job_id,
        id_column=id_column,
        include_probabilities=include_probabilities,
        predict_threads=predict_threads,
    )
    return write_part(scored, output_dir, chunk.index, started)


@dataclass
class _ChunkInFlight:
    index: int
    started: float
    table: pa.Table  # for the id column
    predictions: list[Future[dict[str, np.ndarray]]]


def score_in_process(
    config: ScoringConfig,
    model: ResolvedModel,
    job_id: str,
    *,
    on_chunk: Callable[[ChunkResult], None] | None = None,
    slices_per_thread: int = 1,
) -> tuple[list[ChunkResult], float]:
    """Score the whole input in this process, nothing staged on disk.

    Each chunk of :func:`iter_scoring_tables` is cut in row slices (:func:`row_slices`,
    ``slices_per_thread`` per thread) that a pool of ``config.parallelism`` threads predicts
    (``predict_threads`` OpenMP threads each). Two chunks are in flight: while the pool
    predicts, this thread reads the next chunk and writes the previous one's part file, then
    passes its result to ``on_chunk`` (progress reports); so the pool waits neither for I/O
    nor for the last slice of a chunk.

    Memory: the two chunks in flight and the one being read, whatever the input's size.
    Returns the chunks scored, in order, and the seconds spent reading the input. Raises like
    :func:`iter_scoring_tables` before anything is written for a bad input; a failed slice
    raises once the slices in flight are done.
    """
    threads = config.parallelism
    cols = needed_columns(model.features, config)
    results: list[ChunkResult] = []
    read_seconds = 0.0
    in_flight: collections.deque[_ChunkInFlight] = collections.deque()

    def finish_oldest() -> None:
        chunk = in_flight.popleft()
        predictions = concat_predictions([f.result() for f in chunk.predictions])
        scored = _scored_chunk(
            predictions, chunk.table, model, chunk.index, job_id, config.id_column
        )
        result = write_part(scored, config.output_dir, chunk.index, chunk.started)
        results.append(result)
        if on_chunk is not None:
            on_chunk(result)

    with ThreadPoolExecutor(
        threads,
        thread_name_prefix="scoring",
        initializer=_limit_openmp_threads,
        initargs=(config.predict_threads,),
    ) as pool:
        # The model loads on a pool thread while this one reads the first chunk.
        loading = pool.submit(
            load_model_cached, model.artifact_uri, model.tracking_uri, model.registry_uri
        )
        try:
            for chunk in iter_scoring_tables(config, model.features):
                read_seconds += chunk.seconds
                table = chunk.table.select(cols)
                futures = [
                    pool.submit(
                        _predict_loaded,
                        loading,
                        part,
                        model,
                        include_probabilities=config.include_probabilities,
                        predict_threads=None,  # set once per pool thread
                    )
                    for part in row_slices(table, threads * slices_per_thread)
                ]
                in_flight.append(_ChunkInFlight(chunk.index, time.time(), table, futures))
                del chunk, table  # only the chunks in flight stay in memory
                if len(in_flight) == 2:
                    finish_oldest()
            while in_flight:
                finish_oldest()
            loading.result()  # a model that fails to load fails the job, rows or not
        finally:
            wait([loading, *(f for chunk in in_flight for f in chunk.predictions)])
    return results, read_seconds


def _predict_loaded(
    loading: Future[Any], table: pa.Table, model: ResolvedModel, **kwargs: Any
) -> dict[str, np.ndarray]:
    """:func:`predict_table` with the estimator ``loading`` gives (waits for it)."""
    return predict_table(loading.result(), table, model, **kwargs)


# --------------------------------------------------------------------------- summary


class ScoringSummary(BaseModel):
    """What one batch-scoring job produced."""

    job_id: str = Field(description="Prefix of the request ids (the flow run id by default).")
    model_name: str
    model_version: str
    model_uri: str
    requested: str = Field(description="The model as asked for: name@alias or name/version.")
    source: str = Field(description="The input file or SQL query.")
    output_dir: str
    output_files: list[str]
    rows: int
    chunks: int
    chunk_size: int
    max_chunk_rows: int = Field(description="Rows of the largest chunk (≤ chunk_size).")
    runner: str
    workers: int = Field(description="Distinct worker processes that scored chunks.")
    worker_processes: list[str] = Field(description="host:pid of each worker process.")
    wall_seconds: float
    staging_seconds: float = Field(
        description="Time spent reading the input (and, on Dask, writing the chunk files); it "
        "overlaps scoring (chunk i is scored while chunk i + 1 is read)."
    )
    scoring_seconds: float = Field(
        description="From the first chunk's start to the last chunk's end (excludes model "
        "resolution, staging the first chunk and cluster start-up)."
    )
    rows_per_second: float = Field(description="rows / wall_seconds.")


def summarize(
    config: ScoringConfig,
    model: ResolvedModel,
    job_id: str,
    read_seconds: float,
    results: list[ChunkResult],
    wall_seconds: float,
    runner: str,
) -> ScoringSummary:
    """The job's summary (also written to ``<output_dir>/_scoring_summary.json``) from the
    seconds spent reading (and staging) the input and the chunks scored."""
    results = sorted(results, key=lambda r: r.index)
    rows = sum(r.rows for r in results)
    summary = ScoringSummary(
        job_id=job_id,
        model_name=model.model_name,
        model_version=model.version,
        model_uri=model.model_uri,
        requested=model.requested,
        source=config.data.describe(),
        output_dir=str(Path(config.output_dir).resolve()),
        output_files=[r.path for r in results],
        rows=rows,
        chunks=len(results),
        chunk_size=config.chunk_size,
        max_chunk_rows=max((r.rows for r in results), default=0),
        runner=runner,
        workers=len({r.worker for r in results}),
        worker_processes=sorted({r.worker for r in results}),
        wall_seconds=round(wall_seconds, 3),
        staging_seconds=round(read_seconds, 3),
        scoring_seconds=round(
            max((r.finished_at for r in results), default=0.0)
            - min((r.started_at for r in results), default=0.0),
            3,
        ),
        rows_per_second=round(rows / wall_seconds, 1) if wall_seconds > 0 else 0.0,
    )
    final = Path(config.output_dir) / SUMMARY_FILE
    write_text_atomic(json.dumps(summary.model_dump(mode="json"), indent=2), final)
    return summary


def summary_markdown(summary: ScoringSummary) -> str:
    """The job's summary for the Prefect UI."""
    files = summary.output_files
    shown = "\n".join(f"- `{f}`" for f in files[:10])
    more = f"\n- … and {len(files) - 10} more" if len(files) > 10 else ""
    return f"""# Batch scoring: {summary.model_name} v{summary.model_version}

| | |
|---|---|
| Model | `{summary.model_uri}` (asked for `{summary.requested}`) |
| Input | `{summary.source}` |
| Rows scored | {summary.rows:,} |
| Chunks | {summary.chunks} (size {summary.chunk_size:,}, largest {summary.max_chunk_rows:,}) |
| Runner | {summary.runner} ({summary.workers} worker process(es)) |
| Wall time | {summary.wall_seconds:.2f} s (scoring {summary.scoring_seconds:.2f} s; staging \
{summary.staging_seconds:.2f} s, overlapping scoring) |
| Throughput | {summary.rows_per_second:,.0f} rows/s |
| Request ids | `{summary.job_id}-<chunk>-<row>` |
| Output | `{summary.output_dir}` |

Output files:
{shown}{more}
"""


def new_job_id() -> str:
    """A fresh job id (used outside a Prefect flow run)."""
    return str(uuid.uuid4())
