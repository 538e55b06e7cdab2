"""The validation step beside Great Expectations' own BOOLEAN_ONLY validation of the same suite.

    python bench/validation_bench.py --data FILE.parquet --rounds 5 --out RESULT.json

In one process: read the table, take the suite the flow would take
(``prefect_mlops.data.suites.choose_suite``: inferred from the data itself), then time
``prefect_mlops.data.validation.validate_frame(df, suite)`` against plain GX 1.x (an ephemeral
context, a pandas data source, a whole-DataFrame batch, ``batch.validate(suite,
result_format="BOOLEAN_ONLY")``) on the very same expectations. Each is warmed once; the rounds
alternate which one goes first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import great_expectations as gx
from bench_common import bench_config
from great_expectations.data_context.types.base import ProgressBarsConfig

from prefect_mlops.data.sources import read_table
from prefect_mlops.data.suites import choose_suite
from prefect_mlops.data.validation import validate_frame


def plain_gx(suite: dict):
    """GX's own objects for ``suite``: a whole-DataFrame batch definition and the suite."""
    context = gx.get_context(mode="ephemeral")
    # The same setting validate_frame uses (PINS.md: turn off GX's tqdm bars).
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_pandas("bench")
    asset = datasource.add_dataframe_asset("churn")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = gx.ExpectationSuite(
        name=suite["name"],
        expectations=[
            {"type": e["type"], "kwargs": dict(e["kwargs"]), "meta": dict(e["meta"])}
            for e in suite["expectations"]
        ],
    )
    return batch_definition, gx_suite


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    config = bench_config(args.data)
    df = read_table(config.data)
    suite = choose_suite(config, df, reference=None)
    batch_definition, gx_suite = plain_gx(suite)
    assert len(gx_suite.expectations) == len(suite["expectations"])

    def ours() -> bool:
        return validate_frame(df, suite, data_name=config.data.describe()).success

    def baseline() -> bool:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        return batch.validate(gx_suite, result_format="BOOLEAN_ONLY").success

    runners = {"validate_frame": ours, "gx_boolean_only": baseline}
    for name, fn in runners.items():  # warm-up (GX context, metric registry, caches)
        assert fn(), f"{name}: the suite inferred from this very frame must pass"

    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(args.rounds):
        order = list(runners) if i % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "rows": len(df),
        "columns": len(df.columns),
        "expectations": len(suite["expectations"]),
        "rounds": args.rounds,
        "times_s": times,
        "median_s": medians,
        "ratio": medians["validate_frame"] / medians["gx_boolean_only"],
        "round_ratios": [
            a / b for a, b in zip(times["validate_frame"], times["gx_boolean_only"], strict=True)
        ],
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"validation: validate_frame {medians['validate_frame']:.3f} s, "
        f"GX BOOLEAN_ONLY {medians['gx_boolean_only']:.3f} s, ratio {result['ratio']:.2f}x"
    )


if __name__ == "__main__":
    main()
