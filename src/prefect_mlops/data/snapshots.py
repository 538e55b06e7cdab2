"""Content-addressed, immutable snapshots of a table: what a model version was trained on.

* :func:`frame_digest` is a SHA-256 of a frame's content (column names, dtypes, values).
* :func:`write_snapshot` stores a frame as ``<snapshot_dir>/<digest>.parquet`` (read-only, never
  rewritten) with a ``<digest>.json`` sidecar; :func:`verify_snapshot` proves that a snapshot
  still holds exactly the rows its name promises, so lineage resolves to the exact data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_mlops.data.sources import READ_ERRORS, normalize_missing
from prefect_mlops.errors import DataIngestError, first_line
from prefect_mlops.files import publish, temp_path_beside, write_bytes_atomic
from prefect_mlops.secrets import mask_text

# --------------------------------------------------------------------------- digests


def _schema_bytes(df: pd.DataFrame) -> bytes:
    """Canonical JSON of the column names and dtypes."""
    schema = [[str(name), str(dtype)] for name, dtype in df.dtypes.items()]
    return json.dumps(schema, separators=(",", ":")).encode()


def row_hashes(df: pd.DataFrame) -> pd.Series:
    """Return one uint64 content hash per row of ``df`` (index kept, column names ignored).

    Equal rows get equal hashes; record them to know which rows went to which split.
    """
    return pd.util.hash_pandas_object(df, index=False)


def frame_digest(df: pd.DataFrame) -> str:
    """Return the SHA-256 hex digest of ``df``'s content: column names, dtypes and values.

    The index is ignored. Equal frames give equal digests; any changed cell, column name or
    dtype changes it. A frame written by :func:`write_snapshot` and read back keeps its digest.
    """
    digest = hashlib.sha256()
    digest.update(_schema_bytes(df))
    digest.update(len(df).to_bytes(8, "little"))
    if len(df.columns):
        digest.update(row_hashes(df).to_numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotRef:
    """Where a snapshot lives and what it holds."""

    digest: str
    path: str
    n_rows: int
    n_columns: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def _check_columns(df: pd.DataFrame) -> None:
    """Raise DataIngestError for duplicate column names (Parquet cannot store them)."""
    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataIngestError(
            f"cannot snapshot a table with duplicate column names {dupes}; rename them"
        )


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table without its index; DataIngestError names a bad column."""
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        for name in df.columns:
            try:
                pa.array(df[name], from_pandas=True)
            except (pa.ArrowException, ValueError, TypeError) as col_exc:
                raise DataIngestError(
                    f"cannot snapshot column {name!r} (dtype {df[name].dtype}): "
                    f"{first_line(col_exc)}; cast it to one type, e.g. df[{name!r}].astype(str)"
                ) from exc
        raise DataIngestError(f"cannot snapshot the table: {first_line(exc)}") from exc


def _write_sidecar(df: pd.DataFrame, json_path: Path, digest: str, source: str) -> None:
    """Write ``<digest>.json`` unless it exists."""
    if json_path.exists():
        return
    meta = {
        "digest": digest,
        "source": source,
        "n_rows": len(df),
        "n_columns": len(df.columns),
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "created_at": datetime.now(UTC).isoformat(),
    }
    write_bytes_atomic(json.dumps(meta, indent=2).encode(), json_path, read_only=True)


def write_snapshot(df: pd.DataFrame, snapshot_dir: Path, source: str) -> SnapshotRef:
    """Store ``df`` (index dropped) as the immutable snapshot ``<snapshot_dir>/<digest>.parquet``.

    ``digest`` is :func:`frame_digest` of the frame as it reads back from the file. The file is
    written to a temp file in the same folder, made read-only and moved into place; an
    existing snapshot of the same content is never rewritten but returned as is. A sidecar
    ``<digest>.json`` records source, n_rows, columns, dtypes and created_at. Returns the
    :class:`SnapshotRef`. Raises DataIngestError when the folder cannot be written or a column
    cannot be stored in Parquet (mixed types, duplicate names). ``source`` is kept masked
    (``secrets.mask_text``): the sidecar and the ref never hold a password.
    """
    source = mask_text(source)
    snapshot_dir = Path(snapshot_dir).expanduser().resolve()
    _check_columns(df)
    try:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataIngestError(
            f"cannot create snapshot folder {snapshot_dir}: {first_line(exc)}; set "
            f"MLOPS_SNAPSHOT_DIR to a writable folder"
        ) from exc

    def ref(digest: str) -> SnapshotRef:
        return SnapshotRef(
            digest=digest,
            path=str(snapshot_dir / f"{digest}.parquet"),
            n_rows=len(df),
            n_columns=len(df.columns),
            source=source,
        )

    digest = frame_digest(df)
    final = snapshot_dir / f"{digest}.parquet"
    if final.exists():
        _write_sidecar(df, final.with_suffix(".json"), digest, source)
        return ref(digest)

    table = _to_arrow(df)
    try:
        with temp_path_beside(final) as tmp:
            pq.write_table(table, tmp)
            back = pd.read_parquet(tmp)
            read_digest = frame_digest(back)
            if read_digest != digest:  # a dtype did not round-trip: the file's content decides
                digest, final = read_digest, snapshot_dir / f"{read_digest}.parquet"
            if not final.exists():
                publish(tmp, final, read_only=True)
        _write_sidecar(back, final.with_suffix(".json"), digest, source)
        _remember(final, back)
    except OSError as exc:
        raise DataIngestError(
            f"cannot write snapshot {final}: {first_line(exc)}; check that "
            f"{snapshot_dir} is writable and has free space"
        ) from exc
    return ref(digest)


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """Return the frame stored in the snapshot file ``path``.

    Raises DataIngestError naming the file when it does not exist or is not readable Parquet.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataIngestError(f"snapshot {path} does not exist; was the snapshot folder moved?")
    try:
        frame = pd.read_parquet(path)
    except READ_ERRORS as exc:
        raise DataIngestError(
            f"snapshot {path} is not a readable Parquet file: {first_line(exc)}"
        ) from exc
    return normalize_missing(frame)


# Snapshots are immutable, so the last one read can be shared by the steps of a flow run
# instead of each re-reading the file. One entry: memory stays at one frame.
_SNAPSHOT_CACHE: dict[str, pd.DataFrame] = {}


def _remember(path: Path, frame: pd.DataFrame) -> None:
    _SNAPSHOT_CACHE.clear()
    _SNAPSHOT_CACHE[str(Path(path).expanduser().resolve())] = frame


def load_snapshot(path: str | Path) -> pd.DataFrame:
    """Like :func:`read_snapshot`, but the most recently written or read snapshot is served
    from memory. Callers must not modify the returned frame in place."""
    key = str(Path(path).expanduser().resolve())
    if key not in _SNAPSHOT_CACHE:
        _remember(Path(key), read_snapshot(key))
    return _SNAPSHOT_CACHE[key]


def forget_snapshots() -> None:
    """Drop the in-memory snapshot (at the end of a flow run)."""
    _SNAPSHOT_CACHE.clear()


def verify_snapshot(path: str | Path) -> str:
    """Recompute the digest of the snapshot ``path`` and return it.

    Raises DataIngestError naming the file when the content digest differs from the digest in
    the file name (the file was changed or corrupted), or when the file cannot be read.
    """
    path = Path(path)
    digest = frame_digest(read_snapshot(path))
    if digest != path.stem:
        raise DataIngestError(
            f"snapshot {path} does not match its name: its content digest is {digest}; the "
            f"file was modified or corrupted, re-create it from the source data"
        )
    return digest
