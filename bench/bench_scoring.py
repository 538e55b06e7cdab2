"""Batch-scoring benchmark: ``.venv/bin/python bench/bench_scoring.py [--rows N] [--no-readme]``.

Trains a churn model with the real ``continuous_training`` flow (validation off) into a fresh
MLflow store, generates ``--rows`` rows of new data as Parquet, then measures rows/s of

* raw in-process ``model.predict`` on the whole frame already in memory (the ceiling), and the
  same with reading the Parquet and writing the predictions ("raw, with I/O");
* the ``batch-scoring`` flow on Prefect's default runner (one ``score-chunks`` task run:
  ``parallelism`` 2 threads predict row slices of each chunk, one OpenMP thread each, two chunks
  in flight, nothing staged on disk), ``--rounds`` times, each round right after its own raw
  ``predict`` timing (the machine is shared: a ratio is only fair between runs made side by
  side); the median round is reported;
* the flow on a local Dask cluster with 1 and with 2 worker processes (1 thread each).

For the flows, "wall" is the whole flow body (model resolution, reading the input — which
overlaps scoring; on Dask also staging it into chunk files —, Dask cluster start-up, scoring);
"scoring" is the span from the first chunk's start to the last chunk's end. Goal: flow
(default runner, wall) ≥ 0.8x raw predict. Prints a table and writes it into the "Batch
scoring" section of bench/README.md (between the batch-scoring markers; the rest of that file
is left alone, and so is a notes block between the batch-scoring-notes markers inside the
section).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect_mlops.processes import TELEMETRY_OFF

for _key, _value in {
    **TELEMETRY_OFF,
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(_key, _value)

README = Path(__file__).with_name("README.md")
START, END = "<!-- batch-scoring:start -->", "<!-- batch-scoring:end -->"
NOTES = re.compile(r"<!-- batch-scoring-notes:start -->.*?<!-- batch-scoring-notes:end -->", re.S)


def _train(home: Path, data_dir: Path) -> str:
    from bench_common import served_model_config

    from prefect_mlops.data.demo import generate_churn
    from prefect_mlops.flows.training import continuous_training

    train_path = data_dir / "train.parquet"
    generate_churn(20_000, seed=1).to_parquet(train_path, index=False)
    config = served_model_config("churn-bench", train_path)
    outcome = continuous_training(config)
    return outcome.version


def _raw(path: Path, out_dir: Path) -> tuple[dict[str, float], Any]:
    """Raw figures, and a function timing one more raw ``predict`` (best of 2) for a round."""
    import mlflow
    import pandas as pd

    model = mlflow.sklearn.load_model("models:/churn-bench@champion")
    features = list(model.feature_names_in_)
    frame = pd.read_parquet(path)
    X = frame[features]
    model.predict(X.head(1000))  # warm
    best = min(_timed(lambda: model.predict(X)) for _ in range(3))
    rows = len(frame)

    def predict_again() -> float:
        return min(_timed(lambda: model.predict(X)) for _ in range(2))

    def with_io() -> None:
        df = pd.read_parquet(path, columns=[*features, "customer_id"])
        out = pd.DataFrame({"customer_id": df["customer_id"], "prediction": model.predict(df)})
        out.to_parquet(out_dir / "raw.parquet", index=False)

    best_io = min(_timed(with_io) for _ in range(2))
    return {"rows": rows, "predict_s": best, "predict_io_s": best_io}, predict_again


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _flow(path: Path, out: Path, chunk_size: int, **kwargs: Any) -> Any:
    from prefect_mlops.flows.scoring import run_batch_scoring
    from prefect_mlops.scoring.config import ScoringConfig
    from prefect_mlops.scoring.model import clear_model_cache

    clear_model_cache()  # the flow process loads the model afresh each run
    shutil.rmtree(out, ignore_errors=True)
    config = ScoringConfig(
        model_name="churn-bench",
        data={"path": str(path)},
        output_dir=str(out),
        chunk_size=chunk_size,
        id_column="customer_id",
        **kwargs,
    )
    return run_batch_scoring(config)


def _dask_runs(path: Path, out: Path, chunk_size: int, workers: int) -> list[tuple[str, Any]]:
    """Two flow runs against one local Dask cluster (``dask_address``): cold (worker processes
    import the libraries and load the model) and warm (the model is cached in the workers, as
    on a long-lived cluster)."""
    from distributed import LocalCluster

    from prefect_mlops.flows.scoring import WORKER_ENV

    runs = []
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env=dict(WORKER_ENV),
    ) as cluster:
        address = cluster.scheduler_address
        for phase in ("cold", "warm"):
            summary = _flow(path, out, chunk_size, runner="dask", dask_address=address)
            runs.append((f"flow, Dask, {workers} worker(s), {phase}", summary))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows to score.")
    from prefect_mlops.scoring.config import ScoringConfig

    default_chunk = ScoringConfig.model_fields["chunk_size"].default
    parser.add_argument(
        "--chunk-size", type=int, default=default_chunk, help="Rows per chunk (the flow's default)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="Default-runner rounds.")
    parser.add_argument("--no-readme", action="store_true", help="Leave bench/README.md alone.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    os.environ["MLOPS_HOME"] = str(work / "mlops-home")
    data_dir = work / "data"
    data_dir.mkdir()
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_mlops.data.demo import generate_churn
    from prefect_mlops.registry import configure_mlflow
    from prefect_mlops.settings import get_settings

    print(f"work dir {work}; starting a local Prefect API ...", flush=True)
    server = SubprocessASGIServer()
    server.start(timeout=180)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            configure_mlflow(get_settings())
            t = time.perf_counter()
            version = _train(work / "mlops-home", data_dir)
            print(f"trained churn-bench v{version} in {time.perf_counter() - t:.1f} s", flush=True)
            path = data_dir / "score.parquet"
            generate_churn(args.rows, seed=7).to_parquet(path, index=False)
            size_mb = path.stat().st_size / 1e6
            raw, predict_again = _raw(path, work)
            print(f"raw predict {raw['predict_s']:.2f} s", flush=True)
            # Warm-up: Prefect's first flow run in a process pays one-off costs.
            _flow(path, work / "warm", args.chunk_size)
            rounds: list[tuple[float, Any]] = []
            for _ in range(args.rounds):
                raw_s = predict_again()
                summary = _flow(path, work / "out", args.chunk_size, parallelism=2)
                rounds.append((raw_s, summary))
                print(
                    f"default runner: raw {raw_s:.2f} s, wall {summary.wall_seconds:.2f} s "
                    f"({raw_s / summary.wall_seconds:.2f}x)",
                    flush=True,
                )
            rounds.sort(key=lambda r: r[0] / r[1].wall_seconds)
            median = rounds[len(rounds) // 2]
            results: list[tuple[str, Any]] = [("flow, default runner (2 threads)", median[1])]
            for workers in (1, 2):
                for label, summary in _dask_runs(path, work / "out", args.chunk_size, workers):
                    results.append((label, summary))
                    print(f"{label}: wall {summary.wall_seconds:.2f} s", flush=True)
    finally:
        server.stop()
    table = _table(args, raw, results, size_mb, rounds)
    print()
    print(table)
    if not args.no_readme:
        _write_readme(table)
        print(f"\nwrote the 'Batch scoring' section of {README}")
    shutil.rmtree(work, ignore_errors=True)


def _table(
    args: Any,
    raw: dict[str, float],
    results: list[tuple[str, Any]],
    mb: float,
    rounds: list[tuple[float, Any]],
) -> str:
    rows = raw["rows"]
    base = rows / raw["predict_s"]
    note = (
        " Python runs with PYTHONDONTWRITEBYTECODE=1 here (no .pyc caches), so every new process"
        " compiles its imports: a cold worker spends most of its time importing."
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else ""
    )
    lines = [
        "| variant | wall s | rows/s (wall) | x raw predict | scoring s | rows/s (scoring) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| raw `model.predict`, frame in memory | {raw['predict_s']:.2f} | {base:,.0f} | 1.00 | "
        "- | - |",
        f"| raw, read Parquet + predict + write | {raw['predict_io_s']:.2f} | "
        f"{rows / raw['predict_io_s']:,.0f} | {raw['predict_s'] / raw['predict_io_s']:.2f} "
        "| - | - |",
    ]
    for label, s in results:
        scoring_rate = rows / s.scoring_seconds if s.scoring_seconds else 0.0
        # The default runner is compared with the raw predict timed just before it.
        own = next((r for r, run in rounds if run is s), None)
        x_raw = own / s.wall_seconds if own else s.rows_per_second / base
        lines.append(
            f"| {label} | {s.wall_seconds:.2f} | {s.rows_per_second:,.0f} | "
            f"{x_raw:.2f} | {s.scoring_seconds:.2f} | {scoring_rate:,.0f} |"
        )
    if rounds:
        raw_s, median = rounds[len(rounds) // 2]
        ratio = raw_s / median.wall_seconds
        io_ratio = median.rows_per_second / (rows / raw["predict_io_s"])
        per_round = ", ".join(
            f"{r:.2f} s / {s.wall_seconds:.2f} s = {r / s.wall_seconds:.2f}x" for r, s in rounds
        )
        lines.append("")
        lines.append(
            f"Goal (default runner >= 0.8x raw predict): {'met' if ratio >= 0.8 else 'NOT met'} "
            f"({ratio:.3f}x raw in-memory predict timed just before it, median of "
            f"{len(rounds)} rounds; {io_ratio:.2f}x raw read + predict + write). Rounds (raw "
            f"predict / flow wall): {per_round}."
        )
    from importlib.metadata import version

    header = (
        f"{rows:,} rows ({mb:.0f} MB Parquet, churn table, 9 features), chunk size "
        f"{args.chunk_size:,} ({-(-rows // args.chunk_size)} chunks); HistGradientBoosting"
        f"(max_iter=100) pipeline; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"prefect {version('prefect')}, prefect-dask {version('prefect-dask')}, "
        f"distributed {version('distributed')}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"load average at the end {os.getloadavg()[0]:.1f}."
    )
    return header + note + "\n\n" + "\n".join(lines)


def _write_readme(table: str) -> None:
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    section = re.search(re.escape(START) + r".*?" + re.escape(END), text, flags=re.S)
    notes = NOTES.search(section.group(0)) if section else None
    body = (
        f"{START}\n## Batch scoring\n\n"
        "`.venv/bin/python bench/bench_scoring.py` (see its docstring for the method). Raw "
        "`predict` uses the model's default OpenMP threads on the whole frame. On the default "
        "runner the flow scores in one task run: two threads predict row slices of each chunk "
        "(one OpenMP thread each) while the next chunk is read and the previous one written; "
        "on Dask each chunk is staged as a file and scored by its own task run on a worker. "
        "*Wall* is the whole flow body (model resolution, reading — and on Dask staging — the "
        "input, overlapping scoring, Dask cluster start-up, scoring); *scoring* is first chunk "
        "start → last chunk end. Goal: default runner ≥ 0.8x raw predict.\n\n"
        f"{table}\n" + (f"\n{notes.group(0)}\n" if notes else "") + END
    )
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    README.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
