"""Predictions for one table: the features as training saw them, predicted in row slices.

:func:`features_frame` turns the Arrow features into the pandas frame
:func:`~prefect_mlops.data.sources.read_table` gave training (text as ``str`` objects with NaN
for missing); :func:`predict_columns` predicts it (``prediction``, ``proba_<class>``) with a
bounded number of OpenMP threads; :func:`row_slices` cuts a chunk for parallel prediction and
:func:`concat_predictions` joins the slices' predictions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prefect_mlops.data.sources import is_text_type, normalize_missing, read_as_dictionary

if TYPE_CHECKING:
    import pyarrow as pa

    from prefect_mlops.scoring.model import ResolvedModel


def features_frame(table: pa.Table) -> tuple[pd.DataFrame, bool]:
    """``table`` as the pandas frame training saw (:func:`~prefect_mlops.data.sources.read_table`),
    and whether a column of it may still hold missing values as None.

    Plain text columns, and those the reader dictionary-encoded itself
    (:func:`~prefect_mlops.data.sources.read_as_dictionary`), become object arrays of ``str``
    with NaN for missing (:func:`text_objects`); the others convert as ``Table.to_pandas``
    would (a dictionary column of the source stays categorical, as pandas reads it). Only a
    non-text column that becomes object (all-null, binary ...) and has Arrow nulls can hold
    None, so only then need
    :func:`predict_columns` look for missing text.
    """
    decoded = read_as_dictionary(table)
    data: dict[str, Any] = {}
    may_have_missing = False
    for name, column in zip(table.column_names, table.columns, strict=True):
        if is_text_type(column.type) or name in decoded:
            data[name] = text_objects(column)
        else:
            data[name] = values = column.to_pandas()
            may_have_missing |= bool(column.null_count) and values.dtype == object
    return pd.DataFrame(data, copy=False), may_have_missing


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


def _align_dtypes(
    frame: pd.DataFrame, feature_types: dict[str, str], may_have_missing: bool = True
) -> pd.DataFrame:
    """Give columns the kind the signature declares where a chunk's inference differs: an
    all-missing string column read as float goes back to object, integers declared as double
    become float64 (as at training time), and missing text is NaN (not the None that Arrow
    and Parquet give), as :func:`prefect_mlops.data.sources.read_table` gave it to training.
    ``may_have_missing=False`` (the Arrow source had no nulls) skips looking for missing text."""
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


def limit_openmp_threads(n: int | None) -> None:
    """A thread pool's initializer: ``n`` OpenMP threads for whatever this thread predicts.
    OpenMP keeps the count per calling thread, so once per pool thread is enough (saves
    :func:`_predict_threads`' scan of the loaded libraries, under the GIL, on every call)."""
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
