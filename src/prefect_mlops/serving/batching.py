"""Adaptive micro-batching: concurrent, already validated requests merged into one ``predict``
call, on one prediction thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from prefect_mlops.serving.loading import LoadedModel
from prefect_mlops.serving.prediction import Prediction, predict_frame, split_prediction


@dataclass
class _Pending:
    model: LoadedModel
    frame: pd.DataFrame
    future: asyncio.Future[Prediction]


class MicroBatcher:
    """Adaptive batching of validated requests.

    Requests submitted while a prediction runs are merged (per model version, up to
    ``max_batch_rows`` rows) into the next ``predict`` call, so at low load a request waits for
    nobody and at high load one call serves many requests. Predictions run on one thread:
    predict concurrency is bounded. Only validated frames are submitted, so a malformed request
    can never fail the others; if ``predict`` itself fails for a merged batch, each request of
    it is retried alone so the failure stays with the request that caused it.
    """

    def __init__(self, max_batch_rows: int = 10_000) -> None:
        self.max_batch_rows = max_batch_rows
        self._queue: list[_Pending] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-predict")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_requests = 0

    async def submit(self, model: LoadedModel, frame: pd.DataFrame) -> Prediction:
        """The prediction of ``model`` on ``frame``, computed in the next batch; raises what
        ``predict`` raised for this request alone."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append(_Pending(model, frame, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take()
                self.batches += 1
                self.batched_requests += len(batch)
                try:
                    results = await loop.run_in_executor(self._executor, _run_batch, batch)
                except Exception as exc:  # never dies: fail only this batch's requests
                    results = [exc] * len(batch)
                for item, result in zip(batch, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)

    def _take(self) -> list[_Pending]:
        first = self._queue[0]
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        rows = 0
        for item in self._queue:
            same = item.model is first.model
            if same and (not batch or rows + len(item.frame) <= self.max_batch_rows):
                batch.append(item)
                rows += len(item.frame)
            else:
                rest.append(item)
        self._queue = rest
        return batch

    def close(self) -> None:
        """Stop the batching task and the prediction thread (pending requests are dropped)."""
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _run_batch(batch: list[_Pending]) -> list[Prediction | BaseException]:
    model = batch[0].model
    if len(batch) == 1:
        try:
            return [predict_frame(model, batch[0].frame)]
        except Exception as exc:
            return [exc]
    try:
        merged = pd.concat([b.frame for b in batch], ignore_index=True)
        pred = predict_frame(model, merged)
        return list(split_prediction(pred, [len(b.frame) for b in batch]))
    except Exception:
        out: list[Prediction | BaseException] = []
        for b in batch:  # isolate the failing request
            try:
                out.append(predict_frame(model, b.frame))
            except Exception as exc:
                out.append(exc)
        return out
