"""The serving runtime, what the HTTP layer calls: the served models and their hot swap (a poll
thread re-reads alias and rollout), one request's path (validate against the signature, route,
micro-batch, answer, log; shadow-score off the response path), and ``/metadata``'s counters.

``prefect_mlops.deployments.service`` is the thin BentoML layer over it. The pieces it puts
together, one concern a module: ``schema`` (the body into a frame), ``request_ids``, ``routing``,
``loading`` (models and states), ``prediction``, ``batching``, ``log`` (the serving log);
``contract`` documents the answers, ``auth`` checks the token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefect_mlops.errors import ModelLoadError, RequestValidationError
from prefect_mlops.secrets import mask_text
from prefect_mlops.serving.batching import MicroBatcher
from prefect_mlops.serving.loading import (
    LoadedModel,
    ServingState,
    load_version,
    resolve_state,
    same_state,
)
from prefect_mlops.serving.log import RequestRecord, ServingLogWriter
from prefect_mlops.serving.request_ids import RequestId, accept_request_id
from prefect_mlops.serving.routing import sampled
from prefect_mlops.serving.schema import read_body

if TYPE_CHECKING:
    from prefect_mlops.settings import Settings

logger = logging.getLogger(__name__)


class Counter:
    """A thread-safe counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        """Add ``n``."""
        with self._lock:
            self.value += n


@dataclass
class Reply:
    """An HTTP answer: status code, JSON body and the headers to send with it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class ServingRuntime:
    """Models in memory, their hot swap, request handling and the serving log.

    ``start()`` loads the model the registry names (raising ModelLoadError when it cannot) and
    starts the poll thread that re-reads alias and rollout every ``serve_reload_seconds``;
    a failed poll keeps the loaded models (counted in ``metadata()['reload']``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self.state: ServingState | None = None
        self.batcher = MicroBatcher(max_batch_rows=settings.serve_max_rows)
        self.log = ServingLogWriter(
            settings.resolved_serving_log_dir,
            settings.serving_log_db_url,
            flush_seconds=settings.serving_log_flush_seconds,
        )
        self.reload_count = 0
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self.last_reload_at: float | None = None
        self.requests = Counter()
        self.errors = Counter()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def client(self) -> Any:
        """The MLflow client of the configured registry (made on first use)."""
        if self._client is None:
            from prefect_mlops.registry import mlflow_client

            self._client = mlflow_client(self.settings)
        return self._client

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ServingState:
        """Load the served model(s) and start polling the registry; returns the state served.
        Raises ModelLoadError when the registry cannot be read or the champion cannot load."""
        from prefect_mlops.registry import configure_mlflow

        configure_mlflow(self.settings)
        self.state = resolve_state(self.client, self.settings, None, load_version)
        self._report_challenger(self.state)
        self.last_reload_at = time.time()
        interval = self.settings.serve_reload_seconds
        if interval > 0 and not self.settings.serve_version:
            self._poller = threading.Thread(
                target=self._poll, args=(interval,), name="mlops-reload", daemon=True
            )
            self._poller.start()
        return self.state

    def reload(self) -> bool:
        """Re-read the registry and swap to the models it names (loaded fully before the swap).
        Returns whether anything changed; raises ModelLoadError (the old models stay)."""
        with self._reload_lock:
            try:
                new = resolve_state(self.client, self.settings, self.state, load_version)
            except ModelLoadError as exc:
                self.reload_failures += 1
                self.last_reload_error = str(exc)
                raise
            self.last_reload_at = time.time()
            if same_state(self.state, new):
                return False
            self.state = new  # one reference assignment: requests see old or new, never a mix
            self.reload_count += 1
            self._report_challenger(new)
            return True

    def reload_summary(self, changed: bool) -> dict[str, Any]:
        """What ``POST /reload`` answers (``contract.ReloadResponse``)."""
        meta = self.metadata()
        return {
            "changed": changed,
            "model_version": meta["model_version"],
            "challenger_version": (meta["challenger"] or {}).get("model_version"),
            "challenger_error": meta["challenger_error"],
            "rollout": meta["rollout"],
        }

    @staticmethod
    def _report_challenger(state: ServingState) -> None:
        if state.challenger_error:
            logger.error("%s; the champion answers every request", state.challenger_error)

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if self.reload():
                    assert self.state is not None
                    logger.info("serving version %s now", self.state.champion.version)
            except ModelLoadError as exc:
                logger.warning("registry poll failed, serving the loaded model: %s", exc)
            except Exception as exc:  # never let the poller die
                self.reload_failures += 1
                self.last_reload_error = mask_text(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Stop polling and batching; flush and close the serving log."""
        self._stop.set()
        self.batcher.close()
        self.log.close()

    # -- requests -------------------------------------------------------------------------------

    async def predict(
        self,
        body: bytes | AsyncIterable[bytes],
        request_id: str | None = None,
        *,
        declared_length: str | None = None,
    ) -> Reply:
        """Read (at most ``serve_max_body_bytes``: ``declared_length`` is the Content-Length),
        validate, route, predict (micro-batched), log; returns the answer, never raises.

        ``request_id`` is the client's ``X-Request-ID``, kept as ``client_request_id``; the
        request is routed, sampled and logged under an id the server makes (``request_ids``).
        A 4xx is the request's fault (every failure to read or parse the body included); only
        the model failing on a validated frame is a 500, whose answer names no exception.
        """
        t0 = time.perf_counter()
        arrived = datetime.now(UTC)
        rid = accept_request_id(request_id)
        self.requests.add()
        state = self.state
        if state is None:
            body_503 = {"error": "no model loaded yet", **_ids(rid)}
            return Reply(503, body_503, rid.headers())
        variant = state.route(rid.value)
        model = state.model_for(variant)
        try:
            raw = await read_body(body, declared_length, self.settings.serve_max_body_bytes)
            frame = model.schema.parse_body(raw, self.settings.serve_max_rows)
        except RequestValidationError as exc:
            return self._refuse(rid, arrived, t0, model, variant, exc.status, exc.to_dict())
        except Exception as exc:  # what the parser did not foresee is still the body's fault
            problem = f"cannot be turned into rows ({type(exc).__name__})"
            detail = RequestValidationError("body", problem, 400).to_dict()
            return self._refuse(rid, arrived, t0, model, variant, 400, detail)
        try:
            pred = await self.batcher.submit(model, frame)
        except Exception as exc:
            reason = f"prediction failed: {type(exc).__name__}: {exc}"
            logger.error("request %s: %s v%s: %s", rid.value, model.name, model.version, reason)
            detail = {"error": MODEL_FAILED}
            return self._refuse(rid, arrived, t0, model, variant, 500, detail, reason)
        reply = {
            **_ids(rid),
            "model_name": model.name,
            "model_version": model.version,
            "alias": state.alias if variant == "champion" else "challenger",
            "variant": variant,
            "predictions": pred.predictions,
            "probabilities": pred.probabilities,
            "classes": pred.classes,
        }
        latency = (time.perf_counter() - t0) * 1000
        if sampled(rid.value, self.settings.serving_log_sample_rate):
            record = RequestRecord(
                rid.value,
                arrived,
                model.name,
                model.version,
                variant,
                latency,
                error=_id_note(rid),
                client_request_id=rid.client,
                features=frame,
                predictions=pred.predictions,
                probabilities=pred.probabilities,
                classes=pred.classes,
                input_schema=model.schema,
            )
            self.log.log([record])
            shadow = state.shadow
            if shadow is not None:
                task = asyncio.get_running_loop().create_task(
                    self._score_shadow(shadow, raw, frame, model, rid, arrived)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return Reply(200, reply, rid.headers())

    def _refuse(
        self,
        rid: RequestId,
        arrived: datetime,
        t0: float,
        model: LoadedModel,
        variant: str,
        status: int,
        detail: dict[str, Any],
        log_error: str | None = None,
    ) -> Reply:
        """The error answer (``detail`` and the ids), logged with ``log_error`` (default: the
        answer's error) and the note on a refused ``X-Request-ID``."""
        self.errors.add()
        latency = (time.perf_counter() - t0) * 1000
        if sampled(rid.value, self.settings.serving_log_sample_rate):
            note = _id_note(rid)
            error = (log_error or str(detail.get("error"))) + (f"; {note}" if note else "")
            record = RequestRecord(
                rid.value, arrived, model.name, model.version, variant, latency, str(status),
                error, client_request_id=rid.client,
            )  # fmt: skip
            self.log.log([record])
        return Reply(status, {**detail, **_ids(rid)}, rid.headers())

    async def _score_shadow(
        self,
        shadow: LoadedModel,
        body: bytes,
        frame: pd.DataFrame,
        primary: LoadedModel,
        rid: RequestId,
        arrived: datetime,
    ) -> None:
        """Score the request with the shadow model and log it (off the response path)."""
        t0 = time.perf_counter()
        try:
            if shadow.schema != primary.schema:
                frame = shadow.schema.parse_body(body, self.settings.serve_max_rows)
            pred = await self.batcher.submit(shadow, frame)
        except Exception as exc:
            status = str(exc.status) if isinstance(exc, RequestValidationError) else "500"
            latency = (time.perf_counter() - t0) * 1000
            record = RequestRecord(
                timestamp=arrived, model_name=shadow.name, model_version=shadow.version,
                variant="shadow", latency_ms=latency, status=status, error=str(exc),
                request_id=rid.value, client_request_id=rid.client,
            )  # fmt: skip
            self.log.log([record])
            return
        latency = (time.perf_counter() - t0) * 1000
        record = RequestRecord(
            timestamp=arrived, model_name=shadow.name, model_version=shadow.version,
            variant="shadow", latency_ms=latency, features=frame, predictions=pred.predictions,
            probabilities=pred.probabilities, classes=pred.classes, input_schema=shadow.schema,
            request_id=rid.value, client_request_id=rid.client,
        )  # fmt: skip
        self.log.log([record])

    def metadata(self) -> dict[str, Any]:
        """What ``GET /metadata`` shows."""
        state = self.state
        out: dict[str, Any] = {
            "model_name": self.settings.serve_model_name,
            "alias": state.alias if state else None,
            "pinned_version": self.settings.serve_version,
            "ready": state is not None,
        }
        if state is not None:
            out["champion"] = state.champion.describe()
            out["model_version"] = state.champion.version
            out["signature"] = state.champion.signature
            out["lineage"] = out["champion"]["lineage"]
            out["challenger"] = state.challenger.describe() if state.challenger else None
            out["challenger_error"] = state.challenger_error
            out["rollout"] = asdict(state.rollout) if state.rollout else None
        out["reload"] = {
            "interval_seconds": self.settings.serve_reload_seconds,
            "swaps": self.reload_count,
            "failures": self.reload_failures,
            "last_error": self.last_reload_error,
            "last_success_at": self.last_reload_at,
        }
        out["serving_log"] = {
            "directory": str(self.settings.resolved_serving_log_dir),
            "sql": bool(self.settings.serving_log_db_url),
            "sample_rate": self.settings.serving_log_sample_rate,
            **self.log.stats.to_dict(),
        }
        out["requests"] = {"total": self.requests.value, "refused_or_failed": self.errors.value}
        out["batching"] = {
            "predict_calls": self.batcher.batches,
            "requests_batched": self.batcher.batched_requests,
        }
        return out


MODEL_FAILED = (
    "prediction failed: the model could not predict these rows (valid for its signature); "
    "the server's log names the reason under this request_id"
)


def _ids(rid: RequestId) -> dict[str, str | None]:
    """The ids every answer carries: the server's ``request_id`` and the client's id."""
    return {"request_id": rid.value, "client_request_id": rid.client}


def _id_note(rid: RequestId) -> str | None:
    """What the serving log's ``error`` column says of a refused ``X-Request-ID``."""
    return f"X-Request-ID refused: {rid.refused}" if rid.refused else None
