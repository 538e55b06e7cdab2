"""The time window of a table: its timestamp column parsed as datetimes, and the rows in
``[since, until)``. Naive and time-zone-aware values compare by taking naive ones as UTC."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from prefect_mlops.errors import DataIngestError


def parse_timestamps(series: pd.Series, column: str, where: str) -> pd.Series:
    """Return ``series`` as datetimes (unchanged when it already is).

    Strings are parsed as ISO-8601, else per value; mixed UTC offsets give UTC datetimes.
    Raises DataIngestError naming ``column`` and ``where`` with example bad values when the
    column holds numbers, booleans or strings that are not timestamps.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        raise DataIngestError(
            f"timestamp column {column!r} in {where} holds {series.dtype} values such as "
            f"{series.dropna().head(3).tolist()}, not timestamps; store ISO-8601 strings "
            f"(e.g. 2025-01-31T12:00:00) or datetimes"
        )
    parsed: pd.Series | None = None
    for fmt in ("ISO8601", "mixed"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(series, format=fmt)
                if not pd.api.types.is_datetime64_any_dtype(parsed):
                    parsed = pd.to_datetime(series, format=fmt, utc=True)
            break
        except (ValueError, TypeError, OverflowError):
            parsed = None
    if parsed is None:
        sample = series.dropna().head(10_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coerced = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
        bad = sample[coerced.isna()].head(3).tolist()
        raise DataIngestError(
            f"timestamp column {column!r} in {where} cannot be parsed as datetimes "
            f"(bad values such as {bad}); fix those values or set data.timestamp_column "
            f"to a timestamp column"
        )
    return parsed


def as_time_bound(bound: datetime | pd.Timestamp, tz: Any) -> pd.Timestamp:
    """``bound`` made comparable with a column in time zone ``tz`` (None = naive, taken as UTC)."""
    ts = pd.Timestamp(bound)
    if tz is None:
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts


def window_mask(values: pd.Series, since: datetime | None, until: datetime | None) -> np.ndarray:
    """Which of the datetimes ``values`` fall in ``[since, until)`` (a bool array).

    Either bound may be None (no limit). Naive and time-zone-aware values are compared by
    taking naive ones as UTC; a missing timestamp is outside any window.
    """
    tz = getattr(values.dtype, "tz", None)
    mask = values.notna()
    if since is not None:
        mask &= values >= as_time_bound(since, tz)
    if until is not None:
        mask &= values < as_time_bound(until, tz)
    return mask.to_numpy(dtype=bool)


def no_rows_in_window(
    where: str,
    column: str,
    since: datetime | None,
    until: datetime | None,
    span: tuple[Any, Any],
) -> DataIngestError:
    return DataIngestError(
        f"no rows of {where} have {column!r} in [since={since}, until={until}); "
        f"the column spans {span[0]} .. {span[1]}; widen data.since/data.until"
    )


def apply_time_filter(
    df: pd.DataFrame,
    column: str,
    since: datetime | None,
    until: datetime | None,
    *,
    where: str = "the data",
) -> pd.DataFrame:
    """Return the rows of ``df`` with ``since <= df[column] < until`` (index reset).

    Either bound may be None (no limit); with both None ``df`` is returned unchanged. Naive
    and time-zone-aware values are compared by taking naive ones as UTC. Rows with a missing
    timestamp are dropped when a bound is given. Raises DataIngestError naming ``column`` and
    ``where`` when the column is missing or not datetimes, or when no row is left.
    """
    if since is None and until is None:
        return df
    if column not in df.columns:
        raise DataIngestError(
            f"timestamp column {column!r} is not in {where}; columns are {list(df.columns)}"
        )
    values = df[column]
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise DataIngestError(
            f"timestamp column {column!r} in {where} has dtype {values.dtype}, not datetime; "
            f"parse it first (parse_timestamps)"
        )
    mask = window_mask(values, since, until)
    if not mask.any():
        raise no_rows_in_window(where, column, since, until, (values.min(), values.max()))
    return df.loc[mask].reset_index(drop=True)
