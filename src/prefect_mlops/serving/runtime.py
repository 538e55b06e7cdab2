"""Online serving core, free of BentoML and Prefect: request parsing against the MLflow model
signature, canary/shadow routing, model loading and hot swap, and a micro-batcher that merges
concurrent, already validated requests into one ``predict`` call.

``prefect_mlops.deployments.service`` is the thin BentoML layer over this module.

Request bodies (``POST /predict``), all JSON:

* ``{"records": [{"col": value, ...}, ...]}`` — one object per row;
* ``{"columns": {"col": [v0, v1, ...], ...}}`` — one list per column, all of the same length;
* ``[{"col": value, ...}, ...]`` — a bare list of records.

Each row is checked against the model signature before it can join a batch: a missing required
field, a value of the wrong type or an unparseable body raises :class:`RequestValidationError`
naming the field and the problem. Numbers (integers too) are accepted for ``double``/``float``
columns, ``null`` means a missing value for numeric columns and for columns the signature marks
optional; fields the signature does not know are ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from prefect_mlops.errors import ModelLoadError, RequestValidationError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from prefect_mlops.registry import Rollout
    from prefect_mlops.settings import Settings

Variant = Literal["champion", "challenger"]

logger = logging.getLogger(__name__)


# How the service's fatal start-up error begins (``service_process`` finds it in the log).
CANNOT_START = "prefect-mlops service cannot start"


# --------------------------------------------------------------------------------------------
# request parsing
# --------------------------------------------------------------------------------------------

_NUMERIC = {"double", "float", "long", "integer"}
_INTEGER = {"long", "integer"}


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model signature."""

    name: str
    type: str  # MLflow DataType name: double, float, long, integer, boolean, string, datetime
    required: bool = True

    @property
    def numeric(self) -> bool:
        return self.type in _NUMERIC


@dataclass(frozen=True)
class InputSchema:
    """The columns a model takes, in signature order."""

    columns: tuple[ColumnSpec, ...]

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """From an ``mlflow.models.ModelSignature`` with a column-based input schema."""
        if signature is None or signature.inputs is None:
            raise ModelLoadError("the model has no input signature; log it with one")
        specs = []
        for col in signature.inputs.inputs:
            name = getattr(col, "name", None)
            if name is None:
                raise ModelLoadError("the model signature is tensor-based; column names needed")
            dtype = getattr(col.type, "name", str(col.type))
            specs.append(ColumnSpec(name, str(dtype), bool(getattr(col, "required", True))))
        return cls(tuple(specs))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def parse_body(self, body: bytes | str, max_rows: int) -> pd.DataFrame:
        """Decode a JSON request body and validate it (see :meth:`parse`)."""
        if not body or not body.strip():
            raise RequestValidationError("body", "empty body; send a JSON object or list", 400)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestValidationError("body", f"malformed JSON: {exc}", 400) from exc
        return self.parse(payload, max_rows)

    def parse(self, payload: Any, max_rows: int) -> pd.DataFrame:
        """A DataFrame of the signature's columns from a decoded body, or RequestValidationError."""
        if isinstance(payload, list):
            return self._parse_records(payload, "records", max_rows)
        if not isinstance(payload, dict):
            raise RequestValidationError(
                "body",
                f"expected a JSON object with 'records' or 'columns' (or a list of records), "
                f"got {_json_type(payload)}",
            )
        if "records" in payload and "columns" in payload:
            raise RequestValidationError("body", "give either 'records' or 'columns', not both")
        if "records" in payload:
            records = payload["records"]
            if not isinstance(records, list):
                raise RequestValidationError(
                    "records", f"expected a list of objects, got {_json_type(records)}"
                )
            return self._parse_records(records, "records", max_rows)
        if "columns" in payload:
            return self._parse_columns(payload["columns"], max_rows)
        raise RequestValidationError(
            "body", "expected a key 'records' (list of objects) or 'columns' (object of lists)"
        )

    def _parse_records(self, records: list[Any], where: str, max_rows: int) -> pd.DataFrame:
        _check_size(len(records), where, max_rows)
        for i, row in enumerate(records):
            if not isinstance(row, dict):
                raise RequestValidationError(
                    f"{where}[{i}]", f"expected an object, got {_json_type(row)}"
                )
        data: dict[str, list[Any]] = {}
        for col in self.columns:
            values = [row.get(col.name, _MISSING) for row in records]
            data[col.name] = _check_values(col, values, (f"{where}[", f"].{col.name}"))
        return self._frame(data)

    def _parse_columns(self, columns: Any, max_rows: int) -> pd.DataFrame:
        if not isinstance(columns, dict):
            raise RequestValidationError(
                "columns", f"expected an object of lists, got {_json_type(columns)}"
            )
        n_rows: int | None = None
        for name, values in columns.items():
            if not isinstance(values, list):
                raise RequestValidationError(
                    f"columns.{name}", f"expected a list, got {_json_type(values)}"
                )
            if n_rows is None:
                n_rows = len(values)
            elif len(values) != n_rows:
                raise RequestValidationError(
                    f"columns.{name}", f"has {len(values)} values, other columns have {n_rows}"
                )
        _check_size(n_rows or 0, "columns", max_rows)
        assert n_rows is not None
        data: dict[str, list[Any]] = {}
        for col in self.columns:
            if col.name not in columns:
                if col.required:
                    raise RequestValidationError(f"columns.{col.name}", "missing required field")
                values = [None] * n_rows
            else:
                values = columns[col.name]
            data[col.name] = _check_values(col, values, (f"columns.{col.name}[", "]"))
        return self._frame(data)

    def _frame(self, data: dict[str, list[Any]]) -> pd.DataFrame:
        out: dict[str, Any] = {}
        for col in self.columns:
            values = data[col.name]
            if col.type in ("double", "float"):
                out[col.name] = np.array(values, dtype="float64")
            elif col.type in _INTEGER:
                if any(v is None for v in values):
                    out[col.name] = np.array(values, dtype="float64")
                else:
                    out[col.name] = np.array(values, dtype="int64")
            elif col.type == "datetime":
                out[col.name] = pd.to_datetime(pd.Series(values, dtype=object))
            elif None in values:
                # Missing text as NaN, as training and batch scoring read it
                # (data.normalize_missing): scikit-learn's encoders tell None from NaN.
                out[col.name] = np.array([np.nan if v is None else v for v in values], dtype=object)
            else:
                out[col.name] = np.array(values, dtype=object)
        # Plain arrays, no per-column Series: this runs on the request path (~0.5 ms saved).
        return pd.DataFrame(out, copy=False)


_FAST_TYPES: dict[str, tuple[type, ...]] = {
    "double": (float, int),
    "float": (float, int),
    "long": (int,),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_size(n_rows: int, where: str, max_rows: int) -> None:
    if n_rows == 0:
        raise RequestValidationError(where, "is empty; send at least one row")
    if n_rows > max_rows:
        raise RequestValidationError(
            where,
            f"has {n_rows} rows, more than the limit of {max_rows} (MLOPS_SERVE_MAX_ROWS)",
            413,
        )


def _check_values(col: ColumnSpec, values: list[Any], where: tuple[str, str]) -> list[Any]:
    """``values`` checked against ``col`` (missing → None where allowed); raises naming the row
    (``where``: the text before and after the row index)."""
    fast = _FAST_TYPES.get(col.type)
    if fast is not None and all(type(v) in fast for v in values):
        return values
    kind = col.type
    out: list[Any] = []
    for i, v in enumerate(values):
        if v is _MISSING:
            if col.required:
                raise RequestValidationError(f"{where[0]}{i}{where[1]}", "missing required field")
            out.append(None)
            continue
        if v is None:
            if col.required and not col.numeric:
                raise RequestValidationError(
                    f"{where[0]}{i}{where[1]}", f"null is not allowed ({kind} required)"
                )
            out.append(None)
            continue
        out.append(_check_value(kind, v, f"{where[0]}{i}{where[1]}"))
    return out


def _check_value(kind: str, v: Any, where: str) -> Any:
    if kind in ("double", "float"):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RequestValidationError(where, f"expected a number ({kind}), got {_json_type(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise RequestValidationError(where, "expected a finite number")
        return v
    if kind in _INTEGER:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise RequestValidationError(
                where, f"expected an integer ({kind}), got {_json_type(v)}"
            )
        return v
    if kind == "boolean":
        if not isinstance(v, bool):
            raise RequestValidationError(where, f"expected a boolean, got {_json_type(v)}")
        return v
    if kind == "datetime":
        if not isinstance(v, str):
            raise RequestValidationError(
                where, f"expected an ISO-8601 datetime string, got {_json_type(v)}"
            )
        try:
            pd.Timestamp(v)
        except ValueError as exc:
            raise RequestValidationError(where, f"unparseable datetime {v!r}") from exc
        return v
    if kind == "string":
        if not isinstance(v, str):
            raise RequestValidationError(where, f"expected a string, got {_json_type(v)}")
        return v
    return v  # binary and other types: passed through


# --------------------------------------------------------------------------------------------
# routing
# --------------------------------------------------------------------------------------------


def request_fraction(request_id: str) -> float:
    """A stable number in [0, 1) derived from ``request_id`` (same id → same number)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_variant(request_id: str, rollout: Rollout | None) -> Variant:
    """Which model answers: the challenger for a canary ``share`` of request ids, else the
    champion (shadow rollouts are always answered by the champion)."""
    if (
        rollout is not None
        and rollout.mode == "canary"
        and rollout.share > 0
        and request_fraction(request_id) < rollout.share
    ):
        return "challenger"
    return "champion"


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is in the logged sample (deterministic, like the routing)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    # Another salt than the routing, so the sample is independent of the canary split.
    return request_fraction("log:" + request_id) < rate


# --------------------------------------------------------------------------------------------
# loaded models and their swap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory, with what ``/metadata`` shows about it."""

    name: str
    version: str
    model: Any
    schema: InputSchema
    signature: dict[str, Any]
    tags: dict[str, str]
    run_id: str | None
    source: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.model, "classes_", None)
        if classes is None or not hasattr(self.model, "predict_proba"):
            return None
        return np.asarray(classes).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "signature": self.signature,
            "classes": self.classes,
            "lineage": {k: v for k, v in self.tags.items() if k.startswith("mlops.")},
        }


@dataclass(frozen=True)
class ServingState:
    """What the service answers with right now; replaced as a whole, never mutated."""

    champion: LoadedModel
    alias: str | None
    challenger: LoadedModel | None = None
    rollout: Rollout | None = None
    # Why the rollout's challenger is not loaded (the champion answers everything meanwhile).
    challenger_error: str | None = None

    def model_for(self, variant: Variant) -> LoadedModel:
        if variant == "challenger" and self.challenger is not None:
            return self.challenger
        return self.champion

    def route(self, request_id: str) -> Variant:
        if self.challenger is None:
            return "champion"
        return choose_variant(request_id, self.rollout)

    @property
    def shadow(self) -> LoadedModel | None:
        if self.rollout is not None and self.rollout.mode == "shadow":
            return self.challenger
        return None


def load_version(client: MlflowClient, name: str, version: str) -> LoadedModel:
    """Load ``models:/<name>/<version>`` (scikit-learn flavour) with its signature and tags."""
    import mlflow
    from mlflow.models import get_model_info

    uri = f"models:/{name}/{version}"
    try:
        mv = client.get_model_version(name, version)
        info = get_model_info(uri)
        model = mlflow.sklearn.load_model(uri)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {uri}: {type(exc).__name__}: {exc}") from exc
    signature = info.signature
    return LoadedModel(
        name=name,
        version=str(version),
        model=model,
        schema=InputSchema.from_signature(signature),
        signature=_signature_dict(signature),
        tags=dict(mv.tags),
        run_id=mv.run_id,
        source=str(mv.source),
    )


def _signature_dict(signature: Any) -> dict[str, Any]:
    if signature is None:
        return {}
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in signature.to_dict().items()}


def resolve_state(
    client: MlflowClient,
    settings: Settings,
    current: ServingState | None = None,
    loader: Callable[[MlflowClient, str, str], LoadedModel] = load_version,
) -> ServingState:
    """The state the registry asks for now: the champion (``serve_alias``, or the pinned
    ``serve_version``) and, during a rollout, the challenger. Versions already in ``current``
    are reused, new ones are loaded completely before the caller swaps the reference.

    A challenger that cannot be loaded does not fail the state: the champion answers every
    request and ``challenger_error`` says why (a canary must never take the champion down).
    Raises ModelLoadError when the registry cannot be read or the champion cannot be loaded.
    """
    from prefect_mlops import registry

    name = settings.serve_model_name
    if not name:
        raise ModelLoadError("MLOPS_SERVE_MODEL_NAME is not set: which registered model to serve?")
    try:
        if settings.serve_version:
            alias = None
            version = str(settings.serve_version)
            rollout = None
        else:
            alias = settings.serve_alias
            mv = registry.get_alias_version(client, name, alias)
            if mv is None:
                raise ModelLoadError(
                    f"registered model {name!r} has no version with alias {alias!r} "
                    f"in the registry at {settings.resolved_registry_uri}"
                )
            version = str(mv.version)
            rollout = registry.get_rollout(client, name)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read model {name!r} from the registry at {settings.resolved_registry_uri}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    loaded: dict[str, LoadedModel] = {}
    if current is not None:
        for m in (current.champion, current.challenger):
            if m is not None:
                loaded[m.version] = m

    def get(v: str) -> LoadedModel:
        if v not in loaded:
            loaded[v] = loader(client, name, v)
        return loaded[v]

    champion = get(version)
    challenger, challenger_error = None, None
    if rollout is not None and rollout.challenger_version != version:
        try:
            challenger = get(rollout.challenger_version)
        except ModelLoadError as exc:
            challenger_error = f"the {rollout.mode} challenger is not served: {exc}"
    else:
        rollout = None
    return ServingState(champion, alias, challenger, rollout, challenger_error)


def preflight(settings: Settings) -> ServingState:
    """Check, without loading any model, that the registry answers and names the versions to
    serve, and that their model metadata can be read. Returns the state with ``model=None``
    (the champion and, during a rollout, the challenger or ``challenger_error``). Raises
    ModelLoadError naming the model and the reason.

    Cheap on purpose: loading the model here would cost every start-up the scikit-learn and
    skops imports a second time (~10 s); an artifact that cannot be loaded fails the worker
    instead, and the service stops the server then (see ``prefect_mlops.deployments.service``).
    """
    from prefect_mlops.registry import configure_mlflow, mlflow_client

    def describe(client: Any, name: str, version: str) -> LoadedModel:
        from mlflow.models import get_model_info

        uri = f"models:/{name}/{version}"
        try:
            info = get_model_info(uri)
        except Exception as exc:
            raise ModelLoadError(f"cannot read {uri}: {type(exc).__name__}: {exc}") from exc
        return LoadedModel(
            name, version, None, InputSchema.from_signature(info.signature), {}, {}, None, uri
        )

    try:
        configure_mlflow(settings)
        client = mlflow_client(settings)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot open the registry at {settings.resolved_registry_uri}: {exc}"
        ) from exc
    return resolve_state(client, settings, None, describe)


def same_state(a: ServingState | None, b: ServingState) -> bool:
    """Whether ``a`` and ``b`` serve the same versions in the same way."""
    if a is None:
        return False
    ch_a = a.challenger.version if a.challenger else None
    ch_b = b.challenger.version if b.challenger else None
    return (a.champion.version, ch_a, a.rollout) == (b.champion.version, ch_b, b.rollout)


# --------------------------------------------------------------------------------------------
# prediction and micro-batching
# --------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """Predictions of one request's rows."""

    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None


def predict_frame(model: LoadedModel, frame: pd.DataFrame) -> Prediction:
    """Predictions (and class probabilities for classifiers) of ``model`` on ``frame``."""
    import sklearn

    est = model.model
    classes = model.classes
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        if classes is not None:
            proba = np.asarray(est.predict_proba(frame))
            if argmax_is_predict(est):  # one call instead of two (the per-call cost dominates)
                preds = np.asarray(est.classes_)[proba.argmax(axis=1)]
            else:
                preds = np.asarray(est.predict(frame))
            return Prediction(_to_json_list(preds), proba.tolist(), classes)
        return Prediction(_to_json_list(np.asarray(est.predict(frame))), None, None)


# Classifiers whose ``predict`` is exactly ``classes_[argmax(predict_proba)]``.
_ARGMAX_CLASSIFIERS = {
    "HistGradientBoostingClassifier",
    "GradientBoostingClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "LogisticRegression",
    "LogisticRegressionCV",
    "DummyClassifier",
}


def argmax_is_predict(estimator: Any) -> bool:
    """Whether ``estimator`` (or a Pipeline's last step) predicts the most probable class."""
    final = estimator
    while hasattr(final, "steps"):
        final = final.steps[-1][1]
    return type(final).__name__ in _ARGMAX_CLASSIFIERS and type(final).__module__.startswith(
        "sklearn."
    )


def _to_json_list(values: np.ndarray) -> list[Any]:
    return values.tolist()


def split_prediction(pred: Prediction, sizes: Sequence[int]) -> list[Prediction]:
    """Cut a merged prediction back into per-request pieces of ``sizes`` rows."""
    out, start = [], 0
    for n in sizes:
        stop = start + n
        out.append(
            Prediction(
                pred.predictions[start:stop],
                pred.probabilities[start:stop] if pred.probabilities is not None else None,
                pred.classes,
            )
        )
        start = stop
    return out


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

    def __init__(
        self,
        predict: Callable[[LoadedModel, pd.DataFrame], Prediction] = predict_frame,
        max_batch_rows: int = 10_000,
    ) -> None:
        self._predict = predict
        self.max_batch_rows = max_batch_rows
        self._queue: list[_Pending] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-predict")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_requests = 0

    async def submit(self, model: LoadedModel, frame: pd.DataFrame) -> Prediction:
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
                    results = await loop.run_in_executor(self._executor, self._run_batch, batch)
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

    def _run_batch(self, batch: list[_Pending]) -> list[Prediction | BaseException]:
        model = batch[0].model
        if len(batch) == 1:
            try:
                return [self._predict(model, batch[0].frame)]
            except Exception as exc:
                return [exc]
        try:
            merged = pd.concat([b.frame for b in batch], ignore_index=True)
            pred = self._predict(model, merged)
            return list(split_prediction(pred, [len(b.frame) for b in batch]))
        except Exception:
            out: list[Prediction | BaseException] = []
            for b in batch:  # isolate the failing request
                try:
                    out.append(self._predict(model, b.frame))
                except Exception as exc:
                    out.append(exc)
            return out

    def predict_now(self, model: LoadedModel, frame: pd.DataFrame) -> Prediction:
        """Predict synchronously on the prediction thread (used off the response path)."""
        return self._executor.submit(self._predict, model, frame).result()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class Counter:
    """A thread-safe counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


# --------------------------------------------------------------------------------------------
# the HTTP contract as pydantic models: OpenAPI (/docs.json) and the BentoML client's schema
# --------------------------------------------------------------------------------------------

# Documentation only: bodies are parsed and checked by InputSchema (against the model
# signature, which these generic models cannot know), never by pydantic.
RECORDS_DOC = (
    "One object per row, feature name to value; names and types are the model signature "
    "(GET /metadata → signature.inputs). Fields the signature does not know are ignored."
)
COLUMNS_DOC = "One list per feature, all of the same length (row i = the i-th value of each)."


class RecordsBody(BaseModel):
    """``{"records": [{...}, ...]}``."""

    records: list[dict[str, Any]] = Field(description=RECORDS_DOC, min_length=1)


class ColumnsBody(BaseModel):
    """``{"columns": {"feature": [...], ...}}``."""

    columns: dict[str, list[Any]] = Field(description=COLUMNS_DOC)


class PredictResponse(BaseModel):
    """The answer of ``POST /predict`` (``ServingRuntime.predict``, status 200)."""

    request_id: str = Field(
        description="The client's X-Request-ID, else a fresh id (also in the X-Request-ID header)."
    )
    model_name: str = Field(description="Registered model name.")
    model_version: str = Field(description="Registered version that answered.")
    alias: str = Field(description="Alias served (e.g. champion), or 'challenger' in a canary.")
    variant: Variant = Field(description="Which model of a rollout answered.")
    predictions: list[Any] = Field(description="One prediction per row, in request order.")
    probabilities: list[list[float]] | None = Field(
        description="Classifiers: per row, one probability per class (order of 'classes')."
    )
    classes: list[Any] | None = Field(description="Classifiers: the class labels; null otherwise.")


class ErrorResponse(BaseModel):
    """Every error answer: what failed and, for a bad request, the field and the problem."""

    error: str = Field(
        description="What went wrong, naming the field: 'records[0].age: expected a number ...'."
    )
    field: str | None = Field(
        None,
        description="Where: 'body', 'records[i].<feature>', 'columns.<feature>[i]', ...",
    )
    problem: str | None = Field(None, description="What is wrong with that field.")
    request_id: str | None = Field(None, description="The request id (predict only).")


class ReloadResponse(BaseModel):
    """The answer of ``POST /reload``."""

    changed: bool = Field(description="Whether the served models changed.")
    model_version: str = Field(description="Champion version served now.")
    challenger_version: str | None = Field(description="Rollout challenger loaded, if any.")
    challenger_error: str | None = Field(description="Why a rollout's challenger could not load.")
    rollout: dict[str, Any] | None = Field(description="The active rollout (mode, share...).")


def predict_body_schema() -> dict[str, Any]:
    """The JSON schema of a ``POST /predict`` body: records, columns or a bare list of records."""
    bare = {
        "type": "array",
        "title": "List of records",
        "description": RECORDS_DOC,
        "items": {"type": "object", "additionalProperties": True},
        "minItems": 1,
    }
    return {"anyOf": [RecordsBody.model_json_schema(), ColumnsBody.model_json_schema(), bare]}


# --------------------------------------------------------------------------------------------
# the serving runtime: what the HTTP layer calls
# --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """An HTTP answer: status code and JSON body."""

    status: int
    body: dict[str, Any]


def new_request_id(given: str | None = None) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a fresh uuid4 hex."""
    if given and len(given) <= 128 and given.isprintable() and " " not in given:
        return given
    return uuid.uuid4().hex


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (always true when no
    token is configured). Constant-time comparison."""
    if not token:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def bearer_headers(token: str | None) -> dict[str, str]:
    """The headers a client of the service sends: ``Authorization: Bearer <token>`` when a
    token is configured, else none."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class ServingRuntime:
    """Models in memory, their hot swap, request handling and the serving log.

    ``start()`` loads the model the registry names (raising ModelLoadError when it cannot) and
    starts the poll thread that re-reads alias and rollout every ``serve_reload_seconds``;
    a failed poll keeps the loaded models (counted in ``metadata()['reload']``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        log_writer: Any = None,
        loader: Callable[[Any, str, str], LoadedModel] = load_version,
    ) -> None:
        from prefect_mlops.serving.log import ServingLogWriter

        self.settings = settings
        self._client = client
        self._loader = loader
        self.state: ServingState | None = None
        self.batcher = MicroBatcher(max_batch_rows=settings.serve_max_rows)
        self.log = log_writer or ServingLogWriter(
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
        if self._client is None:
            from prefect_mlops.registry import mlflow_client

            self._client = mlflow_client(self.settings)
        return self._client

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ServingState:
        """Load the served model(s); start polling the registry."""
        from prefect_mlops.registry import configure_mlflow

        configure_mlflow(self.settings)
        self.state = resolve_state(self.client, self.settings, None, self._loader)
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
                new = resolve_state(self.client, self.settings, self.state, self._loader)
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
        """What ``POST /reload`` answers (:class:`ReloadResponse`)."""
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
                self.last_reload_error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._stop.set()
        self.batcher.close()
        self.log.close()

    # -- requests -------------------------------------------------------------------------------

    async def predict(self, body: bytes, request_id: str | None = None) -> Reply:
        """Validate, route, predict (micro-batched), log; never raises."""
        from prefect_mlops.serving.log import RequestRecord

        t0 = time.perf_counter()
        arrived = datetime.now(UTC)
        rid = new_request_id(request_id)
        self.requests.add()
        state = self.state
        if state is None:
            return Reply(503, {"error": "no model loaded yet", "request_id": rid})
        variant = state.route(rid)
        model = state.model_for(variant)
        try:
            frame = model.schema.parse_body(body, self.settings.serve_max_rows)
            pred = await self.batcher.submit(model, frame)
        except RequestValidationError as exc:
            return self._refuse(rid, arrived, t0, model, variant, exc.status, exc.to_dict())
        except Exception as exc:
            detail = {"error": f"prediction failed: {type(exc).__name__}: {exc}"}
            return self._refuse(rid, arrived, t0, model, variant, 500, detail)
        reply = {
            "request_id": rid,
            "model_name": model.name,
            "model_version": model.version,
            "alias": state.alias if variant == "champion" else "challenger",
            "variant": variant,
            "predictions": pred.predictions,
            "probabilities": pred.probabilities,
            "classes": pred.classes,
        }
        latency = (time.perf_counter() - t0) * 1000
        if sampled(rid, self.settings.serving_log_sample_rate):
            self.log.log(
                [
                    RequestRecord(
                        rid,
                        arrived,
                        model.name,
                        model.version,
                        variant,
                        latency,
                        features=frame,
                        predictions=pred.predictions,
                        probabilities=pred.probabilities,
                    )
                ]
            )
            shadow = state.shadow
            if shadow is not None:
                task = asyncio.get_running_loop().create_task(
                    self._score_shadow(shadow, body, frame, model, rid, arrived)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return Reply(200, reply)

    def _refuse(
        self,
        rid: str,
        arrived: datetime,
        t0: float,
        model: LoadedModel,
        variant: str,
        status: int,
        detail: dict[str, Any],
    ) -> Reply:
        from prefect_mlops.serving.log import RequestRecord

        self.errors.add()
        latency = (time.perf_counter() - t0) * 1000
        if sampled(rid, self.settings.serving_log_sample_rate):
            record = RequestRecord(
                rid, arrived, model.name, model.version, variant, latency, str(status)
            )
            record.error = str(detail.get("error"))
            self.log.log([record])
        return Reply(status, {**detail, "request_id": rid})

    async def _score_shadow(
        self,
        shadow: LoadedModel,
        body: bytes,
        frame: pd.DataFrame,
        primary: LoadedModel,
        rid: str,
        arrived: datetime,
    ) -> None:
        """Score the request with the shadow model and log it (off the response path)."""
        from prefect_mlops.serving.log import RequestRecord

        t0 = time.perf_counter()
        try:
            if shadow.schema != primary.schema:
                frame = shadow.schema.parse_body(body, self.settings.serve_max_rows)
            pred = await self.batcher.submit(shadow, frame)
        except Exception as exc:
            status = str(exc.status) if isinstance(exc, RequestValidationError) else "500"
            latency = (time.perf_counter() - t0) * 1000
            record = RequestRecord(
                rid, arrived, shadow.name, shadow.version, "shadow", latency, status, str(exc)
            )
            self.log.log([record])
            return
        latency = (time.perf_counter() - t0) * 1000
        self.log.log(
            [
                RequestRecord(
                    rid,
                    arrived,
                    shadow.name,
                    shadow.version,
                    "shadow",
                    latency,
                    features=frame,
                    predictions=pred.predictions,
                    probabilities=pred.probabilities,
                )
            ]
        )

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
