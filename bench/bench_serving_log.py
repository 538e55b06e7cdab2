"""Serving-log benchmark: ``.venv/bin/python bench/bench_serving_log.py [--rows N] [--rounds R]``.

Compares the typed serving log (``prefect_mlops.serving.log``) with the earlier JSON layout
(features, prediction and probabilities as JSON strings, one folder per day), on the same rows:

* writer thread: the cost of turning queued requests into a Parquet table (what the serving
  log's background thread spends, holding the GIL, beside the request path), for 5,000 1-row
  requests and 50 100-row requests: the typed ``_group_table`` against the earlier
  ``RequestRecord.rows()`` + ``to_frame`` + ``Table.from_pandas`` (copied below as it was);
* read: ``N`` rows x 20 features (10 double, 5 long, 5 string; a binary classifier) written by
  ``ServingLogWriter`` (requests of 100 rows, over 4 UTC days) against the same rows in the
  earlier layout; ``read_window`` (all columns; the common columns + ``prediction``, what the
  rollout watchers read; one day of four) against the earlier read (``pq.read_table`` of every
  file) + ``json.loads`` of every features / prediction / probabilities string into columns.

Each measured ``--rounds`` times (alternating), medians printed and written to
``bench/out/serving_log.json``. Nothing is written into bench/README.md by this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_mlops.serving.log import (
    COLUMNS,
    LEGACY_COLUMNS,
    PREDICTION,
    RequestRecord,
    ServingLogWriter,
    _group_table,
    read_window,
)
from prefect_mlops.serving.schema import ColumnSpec, InputSchema

MODEL = "churn-bench"
START = datetime(2026, 3, 1, tzinfo=UTC)
SCHEMA = InputSchema(
    tuple(ColumnSpec(f"d{i}", "double") for i in range(10))
    + tuple(ColumnSpec(f"l{i}", "long") for i in range(5))
    + tuple(ColumnSpec(f"s{i}", "string") for i in range(5))
)


def request_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One request's frame as ``schema.parse_body`` builds it."""
    cols: dict[str, Any] = {f"d{i}": rng.normal(size=n) for i in range(10)}
    cols.update({f"l{i}": rng.integers(0, 100, n) for i in range(5)})
    cats = np.array(["basic", "plus", "premium", "trial"], dtype=object)
    cols.update({f"s{i}": cats[rng.integers(0, 4, n)] for i in range(5)})
    return pd.DataFrame(cols)


def records(n_rows: int, rows_per_request: int, days: int, seed: int = 0) -> list[RequestRecord]:
    """``n_rows`` scored rows in requests of ``rows_per_request``, spread over ``days``."""
    rng = np.random.default_rng(seed)
    n_requests = n_rows // rows_per_request
    step = timedelta(days=days) / max(n_requests, 1)
    out = []
    for i in range(n_requests):
        frame = request_frame(rng, rows_per_request)  # every row drawn afresh
        proba = rng.random(rows_per_request)
        out.append(
            RequestRecord(
                f"req-{i:08d}", START + i * step, MODEL, "1", "champion", 5.0,
                features=frame, predictions=(proba > 0.5).astype(int).tolist(),
                probabilities=np.column_stack([1 - proba, proba]).tolist(), classes=[0, 1],
                input_schema=SCHEMA,
            )
        )  # fmt: skip
    return out


# -- the earlier layout, as its writer and reader were (before the typed layout) --------------


def legacy_rows(record: RequestRecord) -> list[dict[str, Any]]:
    """The earlier ``RequestRecord.rows()``: features, prediction, probabilities as JSON."""
    base = record.common()
    assert record.features is not None and record.predictions is not None
    lines = record.features.to_json(orient="records", lines=True, date_format="iso").splitlines()
    probs = record.probabilities
    return [
        {**base, "row_index": i, "features": lines[i],
         "prediction": json.dumps(record.predictions[i]),
         "probabilities": json.dumps(probs[i]) if probs is not None else None}
        for i in range(len(record.predictions))
    ]  # fmt: skip


def legacy_schema() -> pa.Schema:
    types = {"timestamp": pa.timestamp("us", tz="UTC"), "row_index": pa.int64(),
             "latency_ms": pa.float64()}  # fmt: skip
    return pa.schema([(c, types.get(c, pa.string())) for c in LEGACY_COLUMNS])


def legacy_table(items: list[RequestRecord]) -> pa.Table:
    """The earlier writer thread's work: rows, ``to_frame``, ``Table.from_pandas``."""
    rows = [row for r in items for row in legacy_rows(r)]
    frame = pd.DataFrame.from_records(rows, columns=list(LEGACY_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["row_index"] = frame["row_index"].astype("int64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    return pa.Table.from_pandas(frame, schema=legacy_schema(), preserve_index=False)


def write_legacy(directory: Path, items: list[RequestRecord], per_file: int = 5000) -> None:
    """The same rows in the earlier layout: ``<dir>/date=YYYY-MM-DD/part-*.parquet``."""
    batch: list[RequestRecord] = []
    rows = 0

    def flush(n: int) -> None:
        table = legacy_table(batch)
        frame_days = table.column("timestamp").to_pandas().dt.strftime("%Y-%m-%d")
        for day in sorted(set(frame_days)):
            mask = pa.array(frame_days == day)
            folder = directory / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(mask), folder / f"part-{n:06d}.parquet")

    for i, record in enumerate(items):
        batch.append(record)
        rows += len(record.predictions or ())
        if rows >= per_file:
            flush(i)
            batch, rows = [], 0
    if batch:
        flush(len(items))


def legacy_read(directory: Path) -> pd.DataFrame:
    """The earlier ``read_serving_log`` + decoding every JSON string into typed columns."""
    files = sorted(directory.glob("date=*/part-*.parquet"))
    frame = pa.concat_tables([pq.read_table(f, schema=legacy_schema()) for f in files]).to_pandas()
    frame = frame.sort_values(["timestamp", "request_id", "row_index"], kind="stable")
    features = pd.DataFrame.from_records([json.loads(s) for s in frame["features"]])
    features.columns = [f"feature.{c}" for c in features.columns]
    prediction = [json.loads(p) for p in frame["prediction"]]
    proba = np.array([json.loads(p) for p in frame["probabilities"]])
    out = frame.drop(columns=["features", "prediction", "probabilities"]).reset_index(drop=True)
    out = pd.concat([out, features], axis=1)
    out["prediction"] = prediction
    out["proba.0"], out["proba.1"] = proba[:, 0], proba[:, 1]
    return out


# -- measuring ---------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_times(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each of ``fns`` over ``rounds`` alternating rounds (order flips)."""
    seen: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            seen[name].append(timed(fns[name])[0])
    return {k: statistics.median(v) for k, v in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": args.rows,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "pandas": pd.__version__,
    }

    # Writer thread: expansion of one flush.
    one_row = records(5000, 1, 1, seed=1)
    hundred = records(5000, 100, 1, seed=2)
    result["writer"] = {
        "5000 x 1-row requests": median_times(
            {
                "typed": lambda: _group_table(list(one_row)),
                "json (earlier)": lambda: legacy_table(one_row),
            },
            args.rounds * 2 + 1,
        ),
        "50 x 100-row requests": median_times(
            {
                "typed": lambda: _group_table(list(hundred)),
                "json (earlier)": lambda: legacy_table(hundred),
            },
            args.rounds * 2 + 1,
        ),
    }
    print(json.dumps(result["writer"], indent=2))

    items = records(args.rows, 100, 4)
    with tempfile.TemporaryDirectory() as tmp:
        typed_dir, legacy_dir = Path(tmp) / "typed", Path(tmp) / "legacy"
        writer = ServingLogWriter(typed_dir, flush_rows=10**9, flush_seconds=3600)

        def write_typed() -> None:  # one flush per 5,000 rows, as the service's writer does
            for begin in range(0, len(items), 50):
                writer.log(items[begin : begin + 50])
                writer.flush()
            writer.close()

        t_write, _ = timed(write_typed)
        assert writer.stats.failures == 0, writer.stats.last_error
        t_legacy_write, _ = timed(lambda: write_legacy(legacy_dir, items))
        size = {
            "typed": sum(f.stat().st_size for f in typed_dir.rglob("*.parquet")),
            "json (earlier)": sum(f.stat().st_size for f in legacy_dir.rglob("*.parquet")),
        }
        result["write_seconds"] = {"typed": t_write, "json (earlier)": t_legacy_write}
        result["files"] = {
            "typed": len(list(typed_dir.rglob("*.parquet"))),
            "json (earlier)": len(list(legacy_dir.rglob("*.parquet"))),
        }
        result["bytes"] = size
        day = START + timedelta(days=2)
        watch_columns = [*COLUMNS, PREDICTION]
        result["read_seconds"] = median_times(
            {
                "read_window, all columns": lambda: read_window(typed_dir, MODEL),
                "read_window, common + prediction": lambda: read_window(
                    typed_dir, MODEL, columns=watch_columns
                ),
                "read_window, 1 day of 4": lambda: read_window(
                    typed_dir, MODEL, start=day, end=day + timedelta(days=1)
                ),
                "json (earlier): read + json.loads": lambda: legacy_read(legacy_dir),
            },
            args.rounds,
        )
        check = read_window(typed_dir, MODEL)
        assert len(check) == args.rows and check["feature.l0"].dtype == "int64"
    print(json.dumps({k: result[k] for k in ("write_seconds", "files", "bytes", "read_seconds")},
                     indent=2))  # fmt: skip
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "serving_log.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
