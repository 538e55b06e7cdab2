"""One measured run of the training pipeline in a fresh process; bench/run.py starts it.

    python bench/worker.py --variant flow|plain --data FILE.parquet --out RESULT.json

``flow`` runs the real ``continuous_training`` flow against the Prefect API in PREFECT_API_URL;
``plain`` runs the same library calls without Prefect (bench/plain.py). Both import the heavy
libraries before the clock starts. The result JSON holds the wall time, the RSS before the
pipeline, the peak RSS, the input frame's size and a per-step breakdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

# Heavy imports first: both variants pay them before the clock starts.
import great_expectations  # noqa: F401
import mlflow
import mlflow.sklearn  # noqa: F401
import prefect  # noqa: F401
import sklearn.ensemble  # noqa: F401
import skops.io  # noqa: F401
from bench_common import (
    Steps,
    bench_config,
    peak_rss_bytes,
    reset_peak_rss,
    rss_now_bytes,
    ru_maxrss_bytes,
)

from prefect_mlops.data.sources import read_table
from prefect_mlops.flows.training import continuous_training

warnings.filterwarnings("ignore", category=FutureWarning)


def run_flow(config) -> tuple[dict, dict]:
    reset_peak_rss()
    baseline = rss_now_bytes()
    began_at = time.time()
    start = time.perf_counter()
    state = continuous_training(config, return_state=True)
    wall = time.perf_counter() - start
    ended_at = time.time()
    peak = peak_rss_bytes()
    outcome = state.result()
    flow_run_id = state.state_details.flow_run_id
    measured = {"wall_s": wall, "rss_baseline": baseline, "rss_peak": peak}
    measured["ru_maxrss"] = ru_maxrss_bytes()
    summary = {
        "status": outcome.status,
        "version": outcome.version,
        "aliases": outcome.aliases,
        "metrics": outcome.metrics,
        "snapshot_digest": outcome.snapshot_digest,
        "flow_run_id": str(flow_run_id),
        "steps": task_breakdown(flow_run_id, began_at, ended_at),
    }
    return measured, summary


def task_breakdown(flow_run_id, began_at: float, ended_at: float) -> dict[str, float]:
    """Wall time of each task run of the flow run, as the Prefect API recorded it, and the time
    before the flow run started and after it ended (seen from the calling process)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        for _ in range(20):  # task-run states reach the API as events, processed a bit later
            flow_run = client.read_flow_run(flow_run_id)
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if flow_run.end_time and all(tr.end_time for tr in task_runs):
                break
            time.sleep(0.5)
    steps: dict[str, float] = {}
    for tr in task_runs:
        if tr.start_time and tr.end_time:
            name = tr.name.rsplit("-", 1)[0]  # "ingest-data-a1b" -> "ingest-data"
            seconds = (tr.end_time - tr.start_time).total_seconds()
            steps[name] = steps.get(name, 0.0) + seconds
    if flow_run.start_time and flow_run.end_time:
        start, end = flow_run.start_time.timestamp(), flow_run.end_time.timestamp()
        in_tasks = sum(steps.values())
        steps["(flow run, API)"] = end - start
        steps["(flow body outside tasks)"] = end - start - in_tasks
        steps["(before the flow run started)"] = start - began_at
        steps["(after the flow run ended)"] = ended_at - end
    return steps


def run_plain(config) -> tuple[dict, dict]:
    from plain import run_plain as pipeline

    steps = Steps()
    reset_peak_rss()
    baseline = rss_now_bytes()
    start = time.perf_counter()
    summary, df = pipeline(config, steps)
    wall = time.perf_counter() - start
    peak = peak_rss_bytes()
    del df
    # The cost of one snapshot read, which every flow task after ingest pays again.
    from prefect_mlops.data.snapshots import read_snapshot

    from_snapshot = Path(os.environ["MLOPS_HOME"]) / "snapshots" / f"{summary['snapshot_digest']}"
    t0 = time.perf_counter()
    read_snapshot(f"{from_snapshot}.parquet")
    summary["read_snapshot_s"] = time.perf_counter() - t0
    summary["steps"] = steps.seconds
    measured = {"wall_s": wall, "rss_baseline": baseline, "rss_peak": peak}
    measured["ru_maxrss"] = ru_maxrss_bytes()
    return measured, summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=["flow", "plain"], required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    config = bench_config(args.data)
    # Create the MLflow SQLite store (schema migrations, ~9 s) before the clock, in both variants:
    # a continuous-training deployment runs against an existing store.
    from prefect_mlops.registry import mlflow_client
    from prefect_mlops.settings import get_settings

    mlflow_client(get_settings()).search_experiments()
    measured, summary = run_flow(config) if args.variant == "flow" else run_plain(config)
    df = read_table(config.data)
    result = {
        "variant": args.variant,
        **measured,
        "df_bytes": int(df.memory_usage(deep=True).sum()),
        "rows": len(df),
        **summary,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(f"{args.variant}: {measured['wall_s']:.2f} s")


if __name__ == "__main__":
    main()
