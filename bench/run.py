"""Benchmark of the continuous-training flow: `make bench` (or `.venv/bin/python bench/run.py`).

Prints from one run, and writes into bench/README.md (section "Results") and bench/out/results.json:

* the training pipeline's wall time at 100k and 1M rows, the real Prefect flow
  (``continuous_training`` against a local ``prefect server``) beside the same library calls as a
  plain script (bench/plain.py), pairs alternating, medians, ratio flow / plain (goal <= 1.10x);
* the peak RSS growth of the pipeline against the input DataFrame's size (goal <= 3x);
* the validation step (``validate_frame``) beside GX's own BOOLEAN_ONLY validation of the same
  suite (goal <= 1.2x).

``--quick`` runs 10k and 100k rows, one pair each, and leaves bench/README.md alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_common import child_env

from prefect_mlops.processes import (
    ServerProcess,
    free_port,
    http_ok,
    start_server,
    stop_process,
    wait_until,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
README = BENCH / "README.md"
PYTHON = sys.executable
START, END = "<!-- results:start -->", "<!-- results:end -->"

GOAL_WALL = 1.10
GOAL_RSS = 3.0
GOAL_VALIDATION = 1.2
STEP_ORDER = [
    "ingest-data",
    "resolve-reference",
    "validate-data",
    "split-data",
    "train-model",
    "evaluate-model",
    "load-champion",
    "bless-candidate",
    "log-model",
    "register-model-version",
    "assign-aliases",
]


# --------------------------------------------------------------------------- Prefect server


class PrefectServer:
    """One ``prefect server start`` for the whole benchmark; we keep the server's own Popen."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.home = home
        self.log_path = log_path
        self.port = free_port()
        self.server: ServerProcess | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 180.0) -> float:
        prefect = Path(PYTHON).parent / "prefect"
        env = child_env(PREFECT_HOME=str(self.home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        started = time.perf_counter()
        command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self.server = start_server(command, env=env, cwd=self.home, log_path=self.log_path)
        try:
            code = wait_until(
                self.server, lambda: http_ok(f"{self.api_url}/health"), timeout=timeout
            )
        except TimeoutError:
            raise RuntimeError(
                f"prefect server not healthy after {timeout:.0f} s; see {self.log_path}"
            ) from None
        if code is not None:
            raise RuntimeError(f"prefect server exited early; see {self.log_path}")
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.server is not None:
            stop_process(self.server.process)
            self.server = None


# --------------------------------------------------------------------------- runs


def make_data(tmp: Path, rows: int) -> Path:
    from prefect_mlops.data.demo import generate_churn

    path = tmp / f"churn-{rows}.parquet"
    generate_churn(rows, seed=0).to_parquet(path, index=False)
    return path


def run_worker(variant: str, data: Path, rows: int, tag: str, tmp: Path, api_url: str) -> dict:
    """One pipeline run in a fresh process with a fresh MLOPS_HOME; returns its result JSON."""
    home = tmp / f"mlops-{variant}-{rows}-{tag}"
    out = OUT / "runs" / f"{variant}-{rows}-{tag}.json"
    log = OUT / "logs" / f"{variant}-{rows}-{tag}.log"
    env = child_env(
        MLOPS_HOME=str(home),
        PREFECT_HOME=str(tmp / "prefect-client"),
        PREFECT_API_URL=api_url,
    )
    with log.open("wb") as fh:
        proc = subprocess.run(
            [
                PYTHON,
                str(BENCH / "worker.py"),
                *("--variant", variant, "--data", str(data)),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    shutil.rmtree(home, ignore_errors=True)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{variant} run at {rows} rows failed (log {log}):\n{tail}")
    result = json.loads(out.read_text())
    result["rss_ratio"] = (result["rss_peak"] - result["rss_baseline"]) / result["df_bytes"]
    print(
        f"  {variant:5s} {rows:>9,} rows: {result['wall_s']:7.2f} s, "
        f"peak RSS +{(result['rss_peak'] - result['rss_baseline']) / 2**20:,.0f} MiB "
        f"= {result['rss_ratio']:.2f}x the input frame ({result['df_bytes'] / 2**20:,.0f} MiB)",
        flush=True,
    )
    return result


def run_validation(data: Path, rounds: int, tmp: Path) -> dict:
    out = OUT / "runs" / "validation.json"
    log = OUT / "logs" / "validation.log"
    env = child_env(MLOPS_HOME=str(tmp / "mlops-validation"), PREFECT_HOME=str(tmp / "pc"))
    with log.open("wb") as fh:
        proc = subprocess.run(
            [
                PYTHON,
                str(BENCH / "validation_bench.py"),
                "--data",
                str(data),
                *("--rounds", str(rounds), "--out", str(out)),
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"validation benchmark failed (log {log}):\n{tail}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- report


def summarize_size(rows: int, runs: list[dict]) -> dict[str, Any]:
    flows = [r for r in runs if r["variant"] == "flow"]
    plains = [r for r in runs if r["variant"] == "plain"]
    med = statistics.median
    flow_wall, plain_wall = med(r["wall_s"] for r in flows), med(r["wall_s"] for r in plains)
    pair_ratios = [f["wall_s"] / p["wall_s"] for f, p in zip(flows, plains, strict=False)]
    steps: dict[str, dict[str, float]] = {}
    for variant, group in (("flow", flows), ("plain", plains)):
        names = {k for r in group for k in r["steps"]}
        steps[variant] = {k: med(r["steps"].get(k, 0.0) for r in group) for k in names}
    return {
        "rows": rows,
        "pairs": len(pair_ratios),
        "flow_wall_s": flow_wall,
        "plain_wall_s": plain_wall,
        "wall_ratio": flow_wall / plain_wall,
        "pair_ratios": pair_ratios,
        "df_bytes": flows[0]["df_bytes"],
        "flow_rss_ratio": med(r["rss_ratio"] for r in flows),
        "plain_rss_ratio": med(r["rss_ratio"] for r in plains),
        "flow_rss_growth": med(r["rss_peak"] - r["rss_baseline"] for r in flows),
        "plain_rss_growth": med(r["rss_peak"] - r["rss_baseline"] for r in plains),
        "read_snapshot_s": med(r["read_snapshot_s"] for r in plains),
        "same_metrics": all(r["metrics"] == runs[0]["metrics"] for r in runs),
        "steps": steps,
    }


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def results_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run on {report['date']} ({'quick' if report['quick'] else 'full'} run, "
        f"{report['total_min']:.1f} min in all). Machine: {m['nproc']} cores, "
        f"Python {m['python']}, {m['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + ". `OMP_NUM_THREADS=1` in both variants; the machine is shared and noisy, so every "
        "ratio below comes from runs made side by side in this one run, alternating.",
        "",
        "| measure | flow (Prefect) | plain script | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for s in report["sizes"]:
        pairs = ", ".join(f"{r:.3f}" for r in s["pair_ratios"])
        lines.append(
            f"| pipeline wall time, {s['rows']:,} rows (median of {s['pairs']} pair"
            f"{'s' if s['pairs'] > 1 else ''}; per pair: {pairs}) | {s['flow_wall_s']:.2f} s "
            f"| {s['plain_wall_s']:.2f} s | {s['wall_ratio']:.3f}x | ≤ {GOAL_WALL:.2f}x "
            f"| {_mark(s['wall_ratio'] <= GOAL_WALL)} |"
        )
    for s in report["sizes"]:
        lines.append(
            f"| peak RSS growth ÷ input frame ({_mib(s['df_bytes'])}), {s['rows']:,} rows "
            f"| {s['flow_rss_ratio']:.2f}x (+{_mib(s['flow_rss_growth'])}) "
            f"| {s['plain_rss_ratio']:.2f}x (+{_mib(s['plain_rss_growth'])}) | — "
            f"| ≤ {GOAL_RSS:.0f}x (flow) | {_mark(s['flow_rss_ratio'] <= GOAL_RSS)} |"
        )
    v = report["validation"]
    lines += [
        "",
        "| validation, "
        f"{v['rows']:,} rows x {v['columns']} columns, {v['expectations']} expectations "
        f"(median of {v['rounds']} alternating rounds) | time | ratio | goal | met |",
        "|---|---|---|---|---|",
        f"| `validate_frame(df, suite)` | {v['median_s']['validate_frame']:.3f} s "
        f"| {v['ratio']:.3f}x | ≤ {GOAL_VALIDATION}x | {_mark(v['ratio'] <= GOAL_VALIDATION)} |",
        f'| GX `batch.validate(suite, result_format="BOOLEAN_ONLY")` '
        f"| {v['median_s']['gx_boolean_only']:.3f} s | 1 | | |",
        "",
    ]
    largest = report["sizes"][-1]
    flow_steps, plain_steps = largest["steps"]["flow"], largest["steps"]["plain"]
    lines += [
        f"Where the time goes at {largest['rows']:,} rows (medians, seconds; flow: task-run "
        "durations as the Prefect API recorded them; plain: the same calls timed in-process). "
        f"One `read_snapshot` of this table takes {largest['read_snapshot_s']:.2f} s.",
        "",
        "| step | flow task run | plain script |",
        "|---|---|---|",
    ]
    for name in STEP_ORDER + sorted(set(flow_steps) | set(plain_steps)):
        if name in flow_steps or name in plain_steps:
            f = f"{flow_steps[name]:.2f}" if name in flow_steps else "—"
            p = f"{plain_steps[name]:.2f}" if name in plain_steps else "—"
            lines.append(f"| {name} | {f} | {p} |")
            flow_steps = {k: x for k, x in flow_steps.items() if k != name}
            plain_steps = {k: x for k, x in plain_steps.items() if k != name}
    lines += [
        f"| **pipeline wall time** | **{largest['flow_wall_s']:.2f}** "
        f"| **{largest['plain_wall_s']:.2f}** |",
        "",
        "Re-run: `make bench` (about 20 min; `.venv/bin/python bench/run.py --quick` for a "
        "smoke run). Raw figures: `bench/out/results.json`.",
    ]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if START not in text:
        text += f"\n## Results\n\n{START}\n{END}\n"
    new = re.sub(
        re.escape(START) + ".*?" + re.escape(END),
        lambda _: f"{START}\n{section}\n{END}",
        text,
        flags=re.S,
    )
    README.write_text(new)


def machine() -> dict[str, Any]:
    import os

    names = ["prefect", "mlflow", "great_expectations", "scikit-learn", "pandas", "pyarrow"]
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "packages": {n: version(n) for n in names},
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows, one pair each")
    parser.add_argument("--pairs-100k", type=int, default=3)
    parser.add_argument("--pairs-1m", type=int, default=2)
    parser.add_argument("--validation-rounds", type=int, default=5)
    parser.add_argument(
        "--budget-min", type=float, default=22.0, help="skip further pairs past this"
    )
    args = parser.parse_args()
    plan = (
        [(10_000, 1), (100_000, 1)]
        if args.quick
        else [
            (100_000, args.pairs_100k),
            (1_000_000, args.pairs_1m),
        ]
    )
    began = time.perf_counter()
    for sub in ("runs", "logs"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="prefect-mlops-bench-"))
    (tmp / "prefect-server").mkdir()
    server = PrefectServer(tmp / "prefect-server", OUT / "logs" / "prefect-server.log")
    report: dict[str, Any] = {"quick": args.quick, "machine": machine(), "sizes": []}
    try:
        print("generating data ...", flush=True)
        data = {rows: make_data(tmp, rows) for rows, _ in plan}
        warm_data = make_data(tmp, 5_000)
        print("starting prefect server ...", flush=True)
        report["server_start_s"] = server.start()
        print(f"  healthy after {report['server_start_s']:.1f} s at {server.api_url}", flush=True)
        print("warm-up (not measured): one flow and one plain run at 5,000 rows", flush=True)
        report["warmup"] = [
            run_worker(v, warm_data, 5_000, "warmup", tmp, server.api_url)
            for v in ("flow", "plain")
        ]
        all_runs: dict[int, list[dict]] = {}
        for rows, pairs in plan:
            print(f"{rows:,} rows, {pairs} alternating pair(s):", flush=True)
            runs: list[dict] = []
            last_pair_min = 0.0
            for i in range(pairs):
                elapsed_min = (time.perf_counter() - began) / 60
                if i and elapsed_min + last_pair_min > args.budget_min:
                    print(f"  skipping pair {i + 1}: time budget of {args.budget_min} min")
                    break
                pair_start = time.perf_counter()
                order = ("flow", "plain") if i % 2 == 0 else ("plain", "flow")
                for variant in order:
                    runs.append(run_worker(variant, data[rows], rows, str(i), tmp, server.api_url))
                last_pair_min = (time.perf_counter() - pair_start) / 60
            all_runs[rows] = runs
            report["sizes"].append(summarize_size(rows, runs))
        server.stop()
        largest = plan[-1][0]
        print(f"validation at {largest:,} rows ...", flush=True)
        rounds = 3 if args.quick else args.validation_rounds
        report["validation"] = run_validation(data[largest], rounds, tmp)
        report["runs"] = {str(k): v for k, v in all_runs.items()}
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["total_min"] = (time.perf_counter() - began) / 60
    section = results_markdown(report)
    name = "results-quick.json" if args.quick else "results.json"
    (OUT / name).write_text(json.dumps(report, indent=2, default=str))
    print()
    print(section)
    if not args.quick:
        write_readme(section)
        print(f"\nwritten: {README.relative_to(ROOT)}, {(OUT / name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
