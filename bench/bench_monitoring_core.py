"""Time the monitoring core: window_stats + detect_drift on 1M rows x 20 columns, against
Evidently's DataDriftPreset Report.run on 100k rows (pass --evidently-rows 1000000 for 1M).

    .venv/bin/python bench/bench_monitoring_core.py [--rows 1000000] [--evidently-rows 100000]

Prints Evidently's time first (in a child process started before anything is allocated, so
its peak RSS is its own), then the profile's build time and JSON size, the time of one pass of
window_stats, of the same window in 8 partitions merged, of detect_drift, and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from prefect_mlops.monitoring.drift import detect_drift
from prefect_mlops.monitoring.profile import build_profile
from prefect_mlops.monitoring.window import merge, window_stats

NUMERIC = [f"num_{i}" for i in range(12)]
CATEGORICAL = [f"cat_{i}" for i in range(8)]


def make_frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """12 numeric columns (normal, lognormal, integers, few-valued) and 8 categorical ones;
    every other column shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        s = shift if i % 2 else 0.0
        kind = i % 4
        if kind == 0:
            data[name] = rng.normal(s, 1.0, rows)
        elif kind == 1:
            data[name] = rng.lognormal(s, 0.7, rows)
        elif kind == 2:
            data[name] = np.rint(rng.exponential(14 * (1 + s), rows))
        else:
            data[name] = rng.integers(0, 4, rows).astype(float)
        data[name][rng.random(rows) < 0.01] = np.nan
    labels = np.array([f"level_{j}" for j in range(12)], dtype=object)
    for i, name in enumerate(CATEGORICAL):
        p = np.linspace(2.0, 1.0, 12)
        if i % 2:
            p[0] += 3 * shift
        data[name] = labels[rng.choice(12, rows, p=p / p.sum())]
    return pd.DataFrame(data)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_evidently(rows: int) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = make_frame(rows, 0, 0.0)
    current = make_frame(rows, 1, 0.3)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    start = time.perf_counter()
    Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    print(
        f"evidently DataDriftPreset, {rows:,} rows: {time.perf_counter() - start:.2f} s, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--evidently-rows", type=int, default=100_000)
    parser.add_argument("--evidently-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evidently_child:
        run_evidently(args.evidently_child)
        return
    if args.evidently_rows:
        # First, while this process is small: Linux carries the peak RSS across exec.
        subprocess.run(
            [sys.executable, __file__, "--evidently-child", str(args.evidently_rows)], check=True
        )

    reference = make_frame(args.reference_rows, 0, 0.0)
    start = time.perf_counter()
    profile = build_profile(reference, numeric=NUMERIC, categorical=CATEGORICAL)
    built = time.perf_counter() - start
    size = len(json.dumps(profile.to_dict()))
    print(f"profile of {args.reference_rows:,} rows x 20 columns: {built:.2f} s, {size:,} B JSON")
    del reference

    window = make_frame(args.rows, 1, 0.3)
    print(f"window: {args.rows:,} rows x {window.shape[1]} columns, RSS {peak_rss_mb():.0f} MB")
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        stats = window_stats(window, profile)
        timings.append(time.perf_counter() - start)
    print(f"window_stats, one pass: best {min(timings):.3f} s of {[round(t, 3) for t in timings]}")
    typed = window.astype({name: "category" for name in CATEGORICAL})
    start = time.perf_counter()
    window_stats(typed, profile)
    print(
        f"window_stats, categorical columns as category dtype: {time.perf_counter() - start:.3f} s"
    )
    start = time.perf_counter()
    parts = [window_stats(part, profile) for part in np.array_split(window, 8)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge(merged, part)
    print(f"window_stats on 8 partitions + merge: {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    result = detect_drift(profile, stats)
    print(
        f"detect_drift: {time.perf_counter() - start:.3f} s; {result.drifted_columns}/"
        f"{result.tested_columns} drifted, dataset drift {result.dataset_drift}"
    )
    same = [
        a.drifted == b.drifted
        for a, b in zip(result.columns, detect_drift(profile, merged).columns, strict=True)
    ]
    print(f"merged partitions give the same verdicts: {all(same)}")
    print(f"peak RSS (profile, window frame, statistics): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
