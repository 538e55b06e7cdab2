"""The online prediction service: a thin BentoML layer over :mod:`prefect_mlops.serving`.

Start it (configuration from ``MLOPS_*`` variables, see ``docs/serving-log.md``)::

    MLOPS_SERVE_MODEL_NAME=churn bentoml serve prefect_mlops.deployments.service:ModelService

Endpoints: ``POST /predict``, ``GET /metadata``, ``POST /reload`` (this module, mounted as an ASGI
app so each request is parsed and answered exactly as documented) and BentoML's own
``GET /healthz`` (process alive) and ``GET /readyz`` (a model is loaded).

Adaptive batching: requests are validated one by one against the model signature, then merged
by :class:`prefect_mlops.serving.MicroBatcher` into one ``predict`` call. BentoML's
``batchable=True`` is not used: it validates the merged batch, so one bad request fails all
requests batched with it, and it cannot return a per-request envelope (request id, version).

Start-up failures end the server with exit code 1 and a line ``prefect-mlops service cannot
start: <reason naming the model URI>``: the main process checks the registry and the model
metadata before any worker starts; a champion whose artifact cannot be loaded (missing,
truncated, garbage) fails the worker, which is not respawned, so the server exits as soon as
BentoML sees no worker left (within its 10 s check). A rollout's challenger that cannot be
loaded only logs an error: the champion answers every request.
"""

from __future__ import annotations

import os

for _key, _value in {
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    # HistGradientBoosting's OpenMP threads spin-wait; one thread predicts at a time anyway.
    "OMP_NUM_THREADS": "1",
    # Fail fast (a clear error, not minutes of retries) when the registry is unreachable.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    # A worker that dies is not respawned (BentoML's behaviour in its own containers): with no
    # worker left, `bentoml serve` exits 1 and the supervisor (Kubernetes, systemd, Docker, the
    # deployment flow's infra-validation) sees it. Respawning would loop forever on a model
    # whose artifact cannot be loaded. Read when `bentoml serve` creates its worker watcher,
    # after it imported this module.
    "BENTOML_CONTAINERIZED": "true",
}.items():
    os.environ.setdefault(_key, _value)

import json  # noqa: E402
import logging  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
import bentoml  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from prefect_mlops.serving import (  # noqa: E402
    CANNOT_START,
    ModelLoadError,
    ServingRuntime,
    preflight,
    token_ok,
)
from prefect_mlops.settings import get_settings  # noqa: E402

logger = logging.getLogger("prefect_mlops.service")

_runtime: ServingRuntime | None = None


def _json(status: int, body: dict[str, Any], request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _unauthorized() -> Response:
    return Response(
        json.dumps({"error": "missing or wrong bearer token", "field": "Authorization"}),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _get_runtime() -> ServingRuntime | None:
    return _runtime


async def predict(request: Request) -> Response:
    runtime = _get_runtime()
    if runtime is None:
        return _json(503, {"error": "the service is starting; no model loaded yet"})
    if not token_ok(request.headers.get("authorization"), runtime.settings.serve_token):
        return _unauthorized()
    body = await request.body()
    reply = await runtime.predict(body, request.headers.get("x-request-id"))
    return _json(reply.status, reply.body, reply.body.get("request_id"))


async def metadata(request: Request) -> Response:
    runtime = _get_runtime()
    if runtime is None:
        return _json(503, {"error": "the service is starting; no model loaded yet"})
    if not token_ok(request.headers.get("authorization"), runtime.settings.serve_token):
        return _unauthorized()
    return _json(200, runtime.metadata())


async def reload(request: Request) -> Response:
    runtime = _get_runtime()
    if runtime is None:
        return _json(503, {"error": "the service is starting; no model loaded yet"})
    if not token_ok(request.headers.get("authorization"), runtime.settings.serve_token):
        return _unauthorized()
    try:
        changed = await anyio.to_thread.run_sync(runtime.reload)
    except ModelLoadError as exc:
        meta = runtime.metadata()
        return _json(
            503,
            {
                "error": f"reload failed, still serving the loaded model: {exc}",
                "model_version": meta.get("model_version"),
            },
        )
    meta = runtime.metadata()
    return _json(
        200,
        {
            "changed": changed,
            "model_version": meta["model_version"],
            "challenger_version": (meta["challenger"] or {}).get("model_version"),
            "challenger_error": meta["challenger_error"],
            "rollout": meta["rollout"],
        },
    )


app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/reload", reload, methods=["POST"]),
    ]
)


@bentoml.service(
    name="mlops_model_service",
    workers=1,
    traffic={"timeout": 60},
    # Lean serving (see PINS.md): no OpenTelemetry spans on the hot paths, no access log,
    tracing={"excluded_urls": ["/predict", "/metadata", "/healthz", "/readyz", "/livez"]},
    logging={"access": {"enabled": False}},
    # Prometheus middleware off too (~0.3 ms a request); /metadata and the serving log count.
    metrics={"enabled": False},
)
@bentoml.asgi_app(app, path="/")
class ModelService:
    """Serves ``models:/<MLOPS_SERVE_MODEL_NAME>@<MLOPS_SERVE_ALIAS>`` (or a pinned version)."""

    @bentoml.on_deployment
    def check_registry() -> None:
        """Runs once in the main process before any worker starts: a registry that cannot be
        read or a model that cannot be found stops ``bentoml serve`` with a clear message and
        a non-zero exit. It reads metadata only; a model whose artifact cannot be loaded fails
        the worker, which then stops the server (workers are not respawned, see above)."""
        try:
            state = preflight(get_settings())
        except ModelLoadError as exc:
            raise SystemExit(f"{CANNOT_START}: {exc}") from exc
        logger.info("registry check passed: will serve %s", state.champion.source)
        if state.challenger_error:
            logger.error("%s; the champion answers every request", state.challenger_error)

    def __init__(self) -> None:
        global _runtime
        runtime = ServingRuntime(get_settings())
        try:
            state = runtime.start()
        except ModelLoadError as exc:
            runtime.close()
            message = f"{CANNOT_START}: {exc}"
            logger.error(message)  # the worker exits; with no worker left, the server exits 1
            raise SystemExit(message) from exc
        _runtime = runtime
        self.runtime = runtime
        logger.info(
            "serving %s version %s (alias %s)",
            state.champion.name,
            state.champion.version,
            state.alias,
        )

    def __is_ready__(self) -> bool:
        return self.runtime.state is not None

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        global _runtime
        self.runtime.close()
        _runtime = None
