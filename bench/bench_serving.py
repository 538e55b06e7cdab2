"""Online-serving benchmark: ``.venv/bin/python bench/bench_serving.py [--rounds N] [--no-readme]``.

Prints, from one run, the prediction service's req/s at concurrency 1 and 16 with p50/p99
latency, beside a plain FastAPI+uvicorn app serving the same model from the same registry
(``bench/plain_fastapi_app.py``) and beside in-process ``predict_proba``; and rows/s with
100-row requests. Goals: service req/s at concurrency 16 ≥ 0.9x the plain app's; service p50 at
concurrency 1 ≤ 1.3x the plain app's.

Method:

* set-up: a temp ``MLOPS_HOME``; ``generate_churn(20_000, seed=0)`` trained with the real
  ``continuous_training`` flow (``HistGradientBoostingClassifier(max_iter=100)``, validation
  off) under ``prefect_test_harness`` (a temporary Prefect API, stopped before any load runs);
* servers, both on 127.0.0.1, 1 worker, access log off, ``OMP_NUM_THREADS=1``, both up for the
  whole run: the service (``bentoml serve`` via ``prefect_mlops.serving.process.run_service``,
  registry polling off; ``POST /predict`` reaches its ``@bentoml.api`` method, the route the
  BentoML client calls) and the plain app (``uvicorn``, 1 worker);
* load: ``wrk`` (one client thread, a separate process; a Lua script rotates through 200
  distinct 1-row bodies, or 20 distinct 100-row bodies, ``{"records": [...]}``) in three
  phases: 1-row requests at concurrency 1 and 16 and 100-row requests at concurrency 4, for a
  fixed duration each; one unmeasured warm-up per server first. In each phase the two servers
  run back to back, and rounds alternate which goes first; the table shows medians over
  rounds. The CPU time of each server's process tree is read before and after each run (CPU
  ms per request);
* in-process: ``model.predict_proba`` on a prepared 1-row and 100-row DataFrame in a loop (same
  model, in the benchmark process while both servers idle), plain and under
  ``sklearn.config_context(assume_finite=True, skip_parameter_validation=True)`` as the
  service calls it.

Writes the table into the "Online serving" section of bench/README.md (between the serving
markers; the rest of that file is left alone) and the raw figures into bench/out/serving.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prefect_mlops.processes import TELEMETRY_OFF

for _key, _value in {
    **TELEMETRY_OFF,
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_key, _value)

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
README = BENCH / "README.md"
START, END = "<!-- serving:start -->", "<!-- serving:end -->"
MODEL = "churn-serving-bench"
GOAL_RPS_C16 = 0.9  # service req/s at c=16 >= 0.9x plain FastAPI
GOAL_P50_C1 = 1.3  # service p50 at c=1 <= 1.3x plain FastAPI

# (phase name, body file key, concurrency, seconds)
PHASES = [("c1", "rows1", 1, 8.0), ("c16", "rows1", 16, 10.0), ("rows100", "rows100", 4, 8.0)]

WRK_LUA = r"""
local reqs = {}
local n = 0
local i = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    n = n + 1
    reqs[n] = wrk.format("POST", "/predict", {["Content-Type"] = "application/json"}, line)
  end
  f:close()
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, \"connect\": %d, " ..
    "\"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, \"p50_us\": %d, " ..
    "\"p90_us\": %d, \"p99_us\": %d, \"mean_us\": %.1f, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


# --------------------------------------------------------------------------- set-up


def train(work: Path) -> str:
    """Train the churn model with the real flow into ``$MLOPS_HOME``; returns the version."""
    from bench_common import served_model_config
    from prefect.testing.utilities import prefect_test_harness

    from prefect_mlops.data.demo import generate_churn
    from prefect_mlops.flows.training import continuous_training

    path = work / "train.parquet"
    generate_churn(20_000, seed=0).to_parquet(path, index=False)
    config = served_model_config(MODEL, path)
    with prefect_test_harness(server_startup_timeout=180):
        outcome = continuous_training(config)
    if "champion" not in (outcome.aliases or []):
        raise RuntimeError(f"the trained version is not champion: {outcome}")
    return str(outcome.version)


def write_bodies(work: Path, features: list[str]) -> dict[str, Path]:
    """Request bodies, one JSON document a line: 200 distinct 1-row and 20 100-row requests."""
    from prefect_mlops.data.demo import generate_churn

    rows = json.loads(generate_churn(2_000, seed=1)[features].to_json(orient="records"))
    files = {"rows1": work / "bodies-1.jsonl", "rows100": work / "bodies-100.jsonl"}
    files["rows1"].write_text(
        "".join(json.dumps({"records": [r]}) + "\n" for r in rows[:200]), encoding="utf-8"
    )
    files["rows100"].write_text(
        "".join(json.dumps({"records": rows[i : i + 100]}) + "\n" for i in range(0, 2_000, 100)),
        encoding="utf-8",
    )
    return files


@contextmanager
def plain_app(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """``uvicorn plain_fastapi_app:app`` on a free loopback port, ready: (its URL, its pid);
    stopped when the block ends."""
    from prefect_mlops.processes import free_port, http_ok, start_server, stop_process, wait_until
    from prefect_mlops.serving.process import private_working_dir

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    uvicorn = Path(sys.executable).parent / "uvicorn"
    command = [
        str(uvicorn), "plain_fastapi_app:app",
        "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with private_working_dir() as cwd:
        server = start_server(command, env=env, cwd=cwd, log_path=log_path)
        try:
            # Its lifespan loads the model before it answers: /healthz 200 means ready.
            code = wait_until(server, lambda: http_ok(url + "/healthz"), timeout=180)
            if code is not None:
                raise RuntimeError(f"uvicorn exited with code {code}:\n{server.log_tail()}")
            yield url, server.process.pid
        finally:
            stop_process(server.process)


# --------------------------------------------------------------------------- measuring


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_wrk(
    url: str, body_file: Path, lua: Path, concurrency: int, seconds: float
) -> dict[str, Any]:
    command = [
        "wrk",
        *("-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"),
        *("-s", str(lua), url + "/predict", "--", str(body_file)),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(line[len("WRKJSON ") :])
    errors = sum(out[k] for k in ("connect", "read", "write", "status", "timeout"))
    if errors:
        raise RuntimeError(f"wrk saw {errors} failed requests against {url}: {out}")
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


def batching_stats(url: str) -> tuple[int, int] | None:
    """(predict calls, requests batched) from the service's /metadata."""
    import httpx

    try:
        meta = httpx.get(url + "/metadata", timeout=10).json()
        return int(meta["batching"]["predict_calls"]), int(meta["batching"]["requests_batched"])
    except Exception:
        return None


def measure_phase(
    name: str, url: str, pid: int, phase: tuple[str, str, int, float], bodies: dict[str, Path],
    lua: Path, scale: float,
) -> dict[str, Any]:  # fmt: skip
    """One wrk run of ``phase`` against one server, with its CPU time and batching."""
    label, key, concurrency, seconds = phase
    batching = batching_stats(url) if name == "bentoml" else None
    cpu0 = tree_cpu_seconds(pid)
    res = run_wrk(url, bodies[key], lua, concurrency, seconds * scale)
    res["cpu_ms_per_request"] = (tree_cpu_seconds(pid) - cpu0) * 1000 / res["requests"]
    res["concurrency"] = concurrency
    res["rows_per_request"] = 100 if key == "rows100" else 1
    res["rows_per_s"] = res["rps"] * res["rows_per_request"]
    if batching is not None:
        after = batching_stats(url)
        if after is not None:
            calls = after[0] - batching[0]
            res["predict_calls"] = calls
            res["requests_per_predict_call"] = (after[1] - batching[1]) / max(calls, 1)
    print(
        f"    {name:8s} {label:8s} c={concurrency:<2d} {res['rps']:8.1f} req/s  "
        f"p50 {res['p50_us'] / 1000:7.2f} ms  p99 {res['p99_us'] / 1000:7.2f} ms  "
        f"{res['rows_per_s']:9,.0f} rows/s  cpu {res['cpu_ms_per_request']:.2f} ms/req"
        + (
            f"  {res['requests_per_predict_call']:.2f} req/predict"
            if "requests_per_predict_call" in res
            else ""
        ),
        flush=True,
    )
    time.sleep(1.0)  # let background work (the service's serving-log flush) settle
    return res


def measure_in_process(model: Any, frames: dict[str, Any], seconds: float) -> dict[str, Any]:
    import sklearn

    out: dict[str, Any] = {}
    for key, frame in frames.items():
        for lean in (False, True):
            label = f"{key}{'-lean' if lean else ''}"
            times: list[float] = []
            cpu0 = time.process_time()
            deadline = time.perf_counter() + seconds
            with ExitStack() as stack:
                if lean:
                    stack.enter_context(
                        sklearn.config_context(assume_finite=True, skip_parameter_validation=True)
                    )
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    model.predict_proba(frame)
                    times.append(time.perf_counter() - t0)
            cpu_ms = (time.process_time() - cpu0) * 1000 / len(times)
            times.sort()
            calls_s = len(times) / sum(times)
            out[label] = {
                "calls": len(times),
                "rps": calls_s,
                "p50_us": times[len(times) // 2] * 1e6,
                "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6,
                "rows_per_request": len(frame),
                "rows_per_s": calls_s * len(frame),
                "cpu_ms_per_request": cpu_ms,
            }
    return out


# --------------------------------------------------------------------------- report


def _median(rounds: list[dict[str, Any]], *path: str) -> float:
    values = []
    for r in rounds:
        v: Any = r
        for p in path:
            v = v[p]
        values.append(float(v))
    return statistics.median(values)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    fields = ("rps", "p50_us", "p99_us", "rows_per_s", "cpu_ms_per_request")
    summary: dict[str, Any] = {}
    for server in ("fastapi", "bentoml"):
        summary[server] = {
            phase: {f: _median(rounds, server, phase, f) for f in fields} for phase, *_ in PHASES
        }
        if server == "bentoml":
            for phase, *_ in PHASES:
                if all("requests_per_predict_call" in r[server][phase] for r in rounds):
                    summary[server][phase]["requests_per_predict_call"] = _median(
                        rounds, server, phase, "requests_per_predict_call"
                    )
    summary["in_process"] = {
        label: {f: _median(rounds, "in_process", label, f) for f in fields}
        for label in rounds[0]["in_process"]
    }
    per_round_rps = [r["bentoml"]["c16"]["rps"] / r["fastapi"]["c16"]["rps"] for r in rounds]
    per_round_p50 = [r["bentoml"]["c1"]["p50_us"] / r["fastapi"]["c1"]["p50_us"] for r in rounds]
    summary["ratios"] = {
        "rps_c16": summary["bentoml"]["c16"]["rps"] / summary["fastapi"]["c16"]["rps"],
        "rps_c16_per_round": per_round_rps,
        "p50_c1": summary["bentoml"]["c1"]["p50_us"] / summary["fastapi"]["c1"]["p50_us"],
        "p50_c1_per_round": per_round_p50,
    }
    return summary


def render(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    def ms(us: float) -> str:
        return f"{us / 1000:.2f}"

    labels = {
        "c1": ("1", "1"),
        "c16": ("16", "1"),
        "rows100": ("4", "100"),
    }
    names = {
        "bentoml": "prefect-mlops service (`bentoml serve`)",
        "fastapi": "plain FastAPI + uvicorn",
    }
    lines = [
        "| server | concurrency | rows/request | req/s | p50 ms | p99 ms | rows/s | "
        "server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in ("bentoml", "fastapi"):
        for phase, *_ in PHASES:
            s = summary[server][phase]
            conc, rows = labels[phase]
            extra = ""
            if "requests_per_predict_call" in s:
                extra = f" ({s['requests_per_predict_call']:.1f} req/predict call)"
            lines.append(
                f"| {names[server]} | {conc} | {rows} | {s['rps']:,.1f} | {ms(s['p50_us'])} | "
                f"{ms(s['p99_us'])} | {s['rows_per_s']:,.0f} | "
                f"{s['cpu_ms_per_request']:.2f}{extra} |"
            )
    ip_names = {
        "rows1": ("in-process `predict_proba`", "1"),
        "rows1-lean": ("in-process, `config_context(assume_finite, skip_param…)`", "1"),
        "rows100": ("in-process `predict_proba`", "100"),
        "rows100-lean": ("in-process, `config_context(assume_finite, skip_param…)`", "100"),
    }
    for label, s in summary["in_process"].items():
        name, rows = ip_names[label]
        lines.append(
            f"| {name} | 1 (loop) | {rows} | {s['rps']:,.1f} | {ms(s['p50_us'])} | "
            f"{ms(s['p99_us'])} | {s['rows_per_s']:,.0f} | {s['cpu_ms_per_request']:.2f} |"
        )
    r = summary["ratios"]
    ok_rps = r["rps_c16"] >= GOAL_RPS_C16
    ok_p50 = r["p50_c1"] <= GOAL_P50_C1
    per_rps = ", ".join(f"{x:.2f}" for x in r["rps_c16_per_round"])
    per_p50 = ", ".join(f"{x:.2f}" for x in r["p50_c1_per_round"])
    goals = [
        "| goal | service | plain FastAPI | ratio | target | met |",
        "|---|---:|---:|---:|---:|---|",
        f"| req/s at concurrency 16 (per round: {per_rps}) | "
        f"{summary['bentoml']['c16']['rps']:,.1f} | {summary['fastapi']['c16']['rps']:,.1f} | "
        f"{r['rps_c16']:.2f}x | ≥ {GOAL_RPS_C16}x | {'✅' if ok_rps else '❌'} |",
        f"| p50 latency at concurrency 1 (per round: {per_p50}) | "
        f"{ms(summary['bentoml']['c1']['p50_us'])} ms | "
        f"{ms(summary['fastapi']['c1']['p50_us'])} ms | {r['p50_c1']:.2f}x | "
        f"≤ {GOAL_P50_C1}x | {'✅' if ok_p50 else '❌'} |",
    ]
    header = (
        f"Run on {meta['date']} ({meta['minutes']:.1f} min in all). Machine: {meta['cpus']} cores, "
        f"Python {meta['python']}, {meta['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f". Model: `{MODEL}` v{meta['model_version']}, HistGradientBoostingClassifier"
        "(max_iter=100) pipeline on `generate_churn(20_000, seed=0)`, 9 features. "
        f"Medians of {meta['rounds']} alternating rounds; `wrk` durations per round: "
        + ", ".join(f"{p} {s * meta['scale']:.0f} s" for p, _, _, s in PHASES)
        + ". Both servers: 1 worker, access log off, `OMP_NUM_THREADS=1`, 127.0.0.1. "
        "1-min load average before / after the run: "
        + " / ".join(f"{x:.1f}" for x in meta["loadavg_1m_before_after"])
        + " (the machine is shared: absolute figures are noisy, the ratios come from "
        "rounds run side by side)."
    )
    return header + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(goals)


def write_readme(table: str) -> None:
    body = (
        f"{START}\n## Online serving\n\n"
        "`.venv/bin/python bench/bench_serving.py` (about 6 min; method in its docstring) "
        "compares the prediction service (`prefect_mlops.deployments.service`, `bentoml serve`) "
        "with a plain FastAPI + uvicorn app loading the same `models:/…@champion` "
        "(`bench/plain_fastapi_app.py`: `pd.DataFrame(records)` → `predict_proba`, nothing "
        "else) and with in-process `predict_proba`. Load from `wrk` (1 thread, separate "
        'process) with `{"records": [...]}` bodies; p50/p99 are `wrk`\'s, per request. The '
        "service answers them in its `@bentoml.api` method `predict` (the route BentoML's "
        "client calls; the raw body goes to the service's one handler). It also validates "
        "every row against the signature, adds a request id and writes every row to the "
        "serving log; its adaptive batcher merges concurrent requests into one "
        "`predict_proba` call (req/predict call, from its `/metadata`). Server CPU is the "
        "server process tree's CPU time per request (the machine has 2 cores, shared with "
        "`wrk`). At concurrency 1 both servers spend most of each request in the same "
        "`predict_proba` call, so the p50 ratio moves with the shared machine's load from "
        "round to round: read the per-round values beside it. Raw figures: "
        "`bench/out/serving.json`.\n\n"
        f"{table}\n\n"
        "Re-run: `.venv/bin/python bench/bench_serving.py` (needs `wrk`: `apt-get install -y "
        "wrk`).\n"
        f"{END}"
    )
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    README.write_text(text)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (default 3).")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply phase durations.")
    parser.add_argument("--no-readme", action="store_true", help="Leave bench/README.md alone.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so the servers and the Prefect test API are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = work / "mlops-home"
    os.environ["MLOPS_HOME"] = str(home)
    for key in ("MLOPS_TRACKING_URI", "MLOPS_REGISTRY_URI", "MLOPS_SERVING_LOG_DIR"):
        os.environ.pop(key, None)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}; training {MODEL} with the flow ...", flush=True)
    t = time.perf_counter()
    model_version = train(work)
    print(f"trained {MODEL} v{model_version} in {time.perf_counter() - t:.1f} s", flush=True)

    import httpx
    import mlflow
    import numpy as np
    import pandas as pd

    from prefect_mlops.registry import configure_mlflow
    from prefect_mlops.serving.process import run_service
    from prefect_mlops.settings import get_settings

    settings = get_settings()
    configure_mlflow(settings)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    bodies = write_bodies(work, [str(c) for c in model.feature_names_in_])
    lua = work / "post.lua"
    lua.write_text(WRK_LUA)
    first1 = json.loads(bodies["rows1"].read_text().splitlines()[0])["records"]
    first100 = json.loads(bodies["rows100"].read_text().splitlines()[0])["records"]
    frames = {"rows1": pd.DataFrame(first1), "rows100": pd.DataFrame(first100)}

    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    server_env.update(
        {
            "MLOPS_HOME": str(home),
            "OMP_NUM_THREADS": "1",
            "BENTOML_HOME": str(work / "bentoml"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        t = time.perf_counter()
        plain_url, plain_pid = stack.enter_context(
            plain_app({**server_env, "PLAIN_MODEL_NAME": MODEL}, work / "uvicorn.log")
        )
        service = stack.enter_context(
            run_service(
                {
                    **server_env,
                    "MLOPS_SERVE_MODEL_NAME": MODEL,
                    "MLOPS_SERVE_RELOAD_SECONDS": "0",
                }
            )
        )
        print(f"both servers ready in {time.perf_counter() - t:.1f} s", flush=True)
        servers = {
            "fastapi": (plain_url, plain_pid),
            "bentoml": (service.url, service.process.pid),
        }
        # Same answers: both servers and the in-process model, row for row.
        expected = model.predict_proba(frames["rows100"])
        for name, (url, _) in servers.items():
            resp = httpx.post(url + "/predict", json={"records": first100}, timeout=60)
            resp.raise_for_status()
            got = np.asarray(resp.json()["probabilities"])
            if not np.allclose(got, expected, atol=1e-12):
                raise RuntimeError(f"{name} answers differ from in-process predict_proba")
        print("warm-up (unmeasured) ...", flush=True)
        for url, _ in servers.values():
            run_wrk(url, bodies["rows1"], lua, 16, 3)
            run_wrk(url, bodies["rows1"], lua, 1, 2)
            run_wrk(url, bodies["rows100"], lua, 4, 2)
        for frame in frames.values():
            for _ in range(20):
                model.predict_proba(frame)
        for i in range(args.rounds):
            order = ["fastapi", "bentoml"] if i % 2 == 0 else ["bentoml", "fastapi"]
            first = " then ".join(order)
            print(f"round {i + 1}/{args.rounds} (each phase: {first}; then in-process)")
            result: dict[str, Any] = {name: {} for name in order}
            for phase in PHASES:  # the two servers back to back in each phase
                for name in order:
                    url, pid = servers[name]
                    result[name][phase[0]] = measure_phase(
                        name, url, pid, phase, bodies, lua, args.scale
                    )
            result["in_process"] = measure_in_process(model, frames, 3.0 * args.scale)
            for label, s in result["in_process"].items():
                print(
                    f"    in-process {label:13s} {s['rps']:8.1f} calls/s  "
                    f"p50 {s['p50_us'] / 1000:6.2f} ms  {s['rows_per_s']:9,.0f} rows/s  "
                    f"cpu {s['cpu_ms_per_request']:.2f} ms/call"
                )
            rounds.append(result)
        service_meta = httpx.get(service.url + "/metadata", timeout=10).json()

    summary = summarize(rounds)
    meta = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "minutes": (time.perf_counter() - began) / 60,
        "cpus": os.cpu_count(),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": {
            pkg: version(pkg)
            for pkg in (
                "bentoml",
                "fastapi",
                "uvicorn",
                "starlette",
                "scikit-learn",
                "mlflow",
                "pandas",
            )
        }
        | {"wrk": _wrk_version()},
        "model_version": model_version,
        "rounds": args.rounds,
        "scale": args.scale,
    }
    table = render(summary, meta)
    print()
    print(table)
    (OUT / "serving.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "phases": PHASES,
                "summary": summary,
                "rounds": rounds,
                "service_metadata": {
                    k: service_meta.get(k) for k in ("requests", "batching", "serving_log")
                },
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nraw figures: {OUT / 'serving.json'}")
    if not args.no_readme:
        write_readme(table)
        print(f"wrote the 'Online serving' section of {README}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _wrk_version() -> str:
    proc = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk\s+(\S+)", proc.stdout + proc.stderr)
    return match.group(1) if match else "?"


if __name__ == "__main__":
    sys.exit(main())
