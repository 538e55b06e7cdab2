"""The online prediction service: a thin BentoML layer over :mod:`prefect_mlops.serving.runtime`
(the request contract for users: ``docs/serving.md``).

Start it (configuration from ``MLOPS_*`` variables, see ``docs/serving-log.md``)::

    MLOPS_SERVE_MODEL_NAME=churn bentoml serve prefect_mlops.deployments.service:ModelService

Endpoints: ``POST /predict``, ``GET /metadata``, ``POST /reload`` and BentoML's own
``GET /healthz`` (process alive) and ``GET /readyz`` (a model is loaded). One handler per
endpoint answers both ways in:

* ``@bentoml.api`` methods ``predict``, ``metadata``, ``reload`` on the same routes, so
  ``/schema.json`` lists them and ``bentoml.SyncHTTPClient(url, token=...).predict(records=...)``
  (or ``columns=...``; ``AsyncHTTPClient`` too) works. Their input spec leaves the body unread
  and hands the HTTP request to the handler: the body is parsed once, by the model signature,
  so a bare list, malformed JSON and every error answer are the same as over raw HTTP;
* a mounted FastAPI app: it answers ``GET /metadata`` (BentoML's api routes are POST only and
  come first in its router) and documents all three paths, with request, answer and error
  schemas and the bearer scheme; BentoML merges that into ``/docs.json`` (UI at ``/``).

Adaptive batching: requests are validated one by one against the model signature, then merged
by :class:`prefect_mlops.serving.batching.MicroBatcher` into one ``predict`` call. BentoML's
``batchable=True`` is not used: it validates the merged batch, so one bad request fails all
requests batched with it, and it cannot return a per-request envelope (request id, version).

Start-up failures end the server with exit code 1 and a line ``prefect-mlops service cannot
start: <reason>``: the main process checks the token (a set but empty ``MLOPS_SERVE_TOKEN`` is
refused, never taken as "no auth"), the registry and the model metadata before any worker
starts; a champion whose artifact cannot be loaded (missing,
truncated, garbage) fails the worker, which is not respawned, so the server exits as soon as
BentoML sees no worker left (within its 10 s check). A rollout's challenger that cannot be
loaded only logs an error: the champion answers every request.
"""

from __future__ import annotations

import os

from prefect_mlops.processes import TELEMETRY_OFF

for _key, _value in {
    **TELEMETRY_OFF,
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

import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
import bentoml  # noqa: E402
from fastapi import FastAPI, Security  # noqa: E402
from fastapi.security import HTTPBearer  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402
from pydantic.json_schema import SkipJsonSchema  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import RedirectResponse, Response  # noqa: E402

from prefect_mlops.errors import ConfigError, ModelLoadError  # noqa: E402
from prefect_mlops.serving.auth import token_ok  # noqa: E402
from prefect_mlops.serving.contract import (  # noqa: E402
    COLUMNS_DOC,
    RECORDS_DOC,
    ErrorResponse,
    PredictResponse,
    ReloadResponse,
    predict_body_schema,
)
from prefect_mlops.serving.loading import CANNOT_START, preflight  # noqa: E402
from prefect_mlops.serving.process import check_token  # noqa: E402
from prefect_mlops.serving.runtime import ServingRuntime  # noqa: E402
from prefect_mlops.settings import get_settings  # noqa: E402

logger = logging.getLogger("prefect_mlops.service")
_settings = get_settings()  # the traffic limits below are read once, when BentoML imports this

_runtime: ServingRuntime | None = None


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
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


# -- the handlers: one per endpoint, shared by the BentoML api methods and the mounted app ---


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Callable[[Request, ServingRuntime], Awaitable[Response]]) -> Handler:
    """The endpoint: 503 while no model is loaded, 401 without the bearer token (when one is
    configured), else ``handler`` with the runtime."""

    async def endpoint(request: Request) -> Response:
        runtime = _runtime
        if runtime is None:
            return _json(503, {"error": "the service is starting; no model loaded yet"})
        if not token_ok(request.headers.get("authorization"), runtime.settings.serve_token):
            return _unauthorized()
        return await handler(request, runtime)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


@_guarded
async def predict_endpoint(request: Request, runtime: ServingRuntime) -> Response:
    """``POST /predict``: the body, unread, goes to ``ServingRuntime.predict``, which reads it
    up to ``MLOPS_SERVE_MAX_BODY_BYTES`` (its Content-Length first) and parses it once."""
    reply = await runtime.predict(
        request.stream(),
        request.headers.get("x-request-id"),
        declared_length=request.headers.get("content-length"),
    )
    return _json(reply.status, reply.body, reply.headers)


@_guarded
async def metadata_endpoint(request: Request, runtime: ServingRuntime) -> Response:
    """``GET /metadata`` (and ``POST``, for the BentoML client)."""
    return _json(200, runtime.metadata())


@_guarded
async def reload_endpoint(request: Request, runtime: ServingRuntime) -> Response:
    """``POST /reload``: re-read the registry now."""
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
    return _json(200, runtime.reload_summary(changed))


# -- OpenAPI: the mounted FastAPI app documents the three paths (BentoML merges them into
# /docs.json, replacing what it would generate for its api routes of the same path) ---------

_AUTH_DOC = (
    "Needs `Authorization: Bearer <token>` when the service runs with MLOPS_SERVE_TOKEN "
    "(else 401 with `WWW-Authenticate: Bearer`)."
)


# Documents the bearer scheme (Swagger's "Authorize"); never refuses: the handlers check the
# token themselves, with or without this app.
_BEARER = [Security(HTTPBearer(auto_error=False, description="MLOPS_SERVE_TOKEN"))]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_UNAUTHORIZED = _error("Missing or wrong bearer token (field 'Authorization').")
_STARTING = _error("No model loaded yet (the service is starting).")

app = FastAPI(
    title="prefect-mlops model service",
    openapi_tags=[{"name": "Service APIs"}],  # BentoML's group for its api endpoints
    docs_url=None,  # BentoML serves the UI (/) and the merged spec (/docs.json)
    redoc_url=None,
    openapi_url=None,
)


async def _docs_redirect(request: Request) -> Response:
    return RedirectResponse("/")  # BentoML's Swagger UI is its index page


app.add_route("/docs", _docs_redirect, include_in_schema=False)


def _document(
    method: str,
    path: str,
    endpoint: Handler,
    summary: str,
    description: str,
    responses: dict[int | str, dict[str, Any]],
    **extra: Any,
) -> None:
    """Add ``endpoint`` to ``app`` with what every endpoint shares: the bearer scheme, its 401,
    the 503 while starting, and the tag BentoML gives its own api endpoints."""
    app.add_api_route(
        path,
        endpoint,
        methods=[method],
        operation_id=f"{path.strip('/')}_{method.lower()}",
        tags=["Service APIs"],
        summary=summary,
        description=f"{description} {_AUTH_DOC}",
        response_model=None,
        dependencies=_BEARER,
        responses={401: _UNAUTHORIZED, 503: _STARTING, **responses},
        **extra,
    )


_document(
    "POST",
    "/predict",
    predict_endpoint,
    "Predict rows with the served model",
    'Body: `{"records": [{...}, ...]}`, `{"columns": {"feature": [...]}}` or a bare list of '
    "records. Each row is checked against the model signature (GET /metadata) before it joins "
    "a batch; errors name the field. `NaN` and `null` are a missing value. Every answer has the "
    "server's `request_id` (also its `X-Request-ID` header; the canary split hashes it); a "
    "client's `X-Request-ID` of 1-128 printable ASCII characters comes back as "
    "`client_request_id`, another is dropped and the answer's `X-Request-ID-Refused` header "
    "says why.",
    {
        200: {"model": PredictResponse, "description": "Predictions, one per row."},
        400: _error(
            "A body that cannot be decoded into rows: empty, malformed JSON, nested too deeply, "
            "a number with too many digits (field 'body')."
        ),
        413: _error(
            "A body of more bytes than MLOPS_SERVE_MAX_BODY_BYTES (field 'body', refused before "
            "it is parsed) or more rows than MLOPS_SERVE_MAX_ROWS."
        ),
        422: _error(
            "A field breaks the model signature (wrong type, missing, not a finite number), "
            "or no row was sent."
        ),
        429: {
            "description": "More requests at once than MLOPS_SERVE_MAX_CONCURRENCY "
            '(BentoML\'s `{"error": "Too many requests"}`): retry later.'
        },
        500: _error(
            "The model failed on valid input (the answer names no exception; the server log "
            "and the serving log do)."
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": predict_body_schema()}},
        }
    },
)
for _method in ("GET", "POST"):
    _document(
        _method,
        "/metadata",
        metadata_endpoint,
        "Served model: version, signature, lineage, rollout, reload and log counters",
        "GET and POST (the BentoML client's `metadata()`) answer alike.",
        {200: {"description": "The served model and the service's counters."}},
    )
_document(
    "POST",
    "/reload",
    reload_endpoint,
    "Re-read the registry now and swap to the models it names",
    "The old models answer until the new ones are loaded.",
    {
        200: {"model": ReloadResponse, "description": "What is served now."},
        503: _error("The registry cannot be read or the model cannot load: still serving."),
    },
)


# -- BentoML api methods: listed in /schema.json, so bentoml.SyncHTTPClient/AsyncHTTPClient
# get predict(), metadata() and reload() ---------------------------------------------------


class UnreadRequest(bentoml.IODescriptor):
    """An input spec that leaves the body unparsed: the api method gets the HTTP request and
    hands it to the shared handler, so the body is parsed once, against the model signature
    (a bare list, malformed JSON and every error answer stay exactly as documented)."""

    http_request: SkipJsonSchema[Any] = Field(None, exclude=True)

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> UnreadRequest:
        return cls.model_construct(http_request=request)


class AnyJSONObject(bentoml.IODescriptor):
    """The client's output spec: the JSON answer handed over as it is. A schema with properties
    would make the client filter the answer by them and walk ``null`` where it expects a list
    (``probabilities`` of a regressor); the documented schemas are in the mounted app."""

    model_config = ConfigDict(extra="allow")


class PredictInput(UnreadRequest):
    """``client.predict(records=[...])`` or ``client.predict(columns={...})``."""

    records: list[dict[str, Any]] | None = Field(None, description=RECORDS_DOC)
    columns: dict[str, list[Any]] | None = Field(None, description=COLUMNS_DOC)


@bentoml.service(
    name="mlops_model_service",
    workers=1,
    # At most this many requests in the worker at once (more: 429 at once): with the body limit
    # it bounds the memory requests can take. Probes (/healthz, /readyz) are never limited.
    traffic={"timeout": 60, "max_concurrency": _settings.serve_max_concurrency},
    # Lean serving (see PINS.md): no OpenTelemetry spans on the hot paths, no access log,
    tracing={"excluded_urls": ["/predict", "/metadata", "/healthz", "/readyz", "/livez"]},
    logging={"access": {"enabled": False}},
    # Prometheus middleware off too (~0.3 ms a request); /metadata and the serving log count.
    metrics={"enabled": False},
)
@bentoml.asgi_app(app, path="/")
class ModelService:
    """Serves ``models:/<MLOPS_SERVE_MODEL_NAME>@<MLOPS_SERVE_ALIAS>`` (or a pinned version)."""

    # BentoML's router tries its api routes before the mounted app, so POST /predict,
    # /metadata and /reload reach these methods; GET /metadata reaches the mounted app.
    # Both call the same handler.

    @bentoml.api(route="/predict", input_spec=PredictInput, output_spec=AnyJSONObject)
    async def predict(
        self,
        records: list[dict[str, Any]] | None = None,
        columns: dict[str, list[Any]] | None = None,
        http_request: Any = None,
    ) -> Response:
        """Predictions for ``records`` (one object per row) or ``columns`` (one list per
        feature); answers as ``POST /predict``."""
        # records/columns describe the client's call; they arrive unset (UnreadRequest): the
        # handler reads the body itself.
        return await predict_endpoint(http_request)

    @bentoml.api(route="/metadata", input_spec=UnreadRequest, output_spec=AnyJSONObject)
    async def metadata(self, http_request: Any = None) -> Response:
        """The served model: version, signature, lineage, rollout; as ``GET /metadata``."""
        return await metadata_endpoint(http_request)

    @bentoml.api(route="/reload", input_spec=UnreadRequest, output_spec=AnyJSONObject)
    async def reload(self, http_request: Any = None) -> Response:
        """Re-read the registry now; as ``POST /reload``."""
        return await reload_endpoint(http_request)

    @bentoml.on_deployment
    def check_registry() -> None:
        """Runs once in the main process before any worker starts: a registry that cannot be
        read or a model that cannot be found stops ``bentoml serve`` with a clear message and
        a non-zero exit. It reads metadata only; a model whose artifact cannot be loaded fails
        the worker, which then stops the server (workers are not respawned, see above)."""
        try:
            settings = get_settings()
            check_token(settings.serve_token)
            state = preflight(settings)
        except (ConfigError, ModelLoadError) as exc:
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
        # Everything loaded so far (libraries, the model) lives as long as the worker: move it
        # out of the garbage collector's reach. Otherwise a full collection walks it every few
        # seconds and stalls one request ~300 ms (measured: p99 at concurrency 1).
        gc.collect()
        gc.freeze()
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
