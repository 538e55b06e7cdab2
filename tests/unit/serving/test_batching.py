"""The micro-batcher with a real scikit-learn pipeline: concurrent requests merged into fewer
predict calls, a request the model fails on failing alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serving_cases import ROW

from prefect_mlops.serving.batching import MicroBatcher
from prefect_mlops.serving.loading import LoadedModel
from prefect_mlops.serving.schema import InputSchema


def test_micro_batcher_merges_and_isolates_failures(schema: InputSchema, pipeline: Any) -> None:
    loaded = LoadedModel("m", "1", pipeline, schema, {}, {}, None, "src")
    batcher = MicroBatcher()
    rows = [[{**ROW, "tenure": t}] * (1 + t % 3) for t in range(20)]
    rows[5] = [{**ROW, "contract": "weekly"}]  # valid for the signature; the encoder refuses it
    frames = [schema.parse_body(json.dumps(r), 10) for r in rows]

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(batcher.submit(loaded, f) for f in frames), return_exceptions=True
        )

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    assert isinstance(results[5], ValueError) and "unknown categor" in str(results[5])
    for t, result in enumerate(results):
        if t != 5:
            assert result.predictions == pipeline.predict(frames[t]).tolist(), t
    assert batcher.batched_requests == 20
    assert batcher.batches < 20  # requests were merged into fewer predict calls


def test_batches_respect_the_row_limit(schema: InputSchema, pipeline: Any) -> None:
    loaded = LoadedModel("m", "1", pipeline, schema, {}, {}, None, "src")
    batcher = MicroBatcher(max_batch_rows=4)
    frames = [schema.parse_body(json.dumps([ROW] * 3), 10) for _ in range(6)]

    async def run() -> list[Any]:
        return await asyncio.gather(*(batcher.submit(loaded, f) for f in frames))

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    assert [len(r.predictions) for r in results] == [3] * 6
    assert batcher.batches == 6  # 3 + 3 rows is over the limit of 4: one request a call
