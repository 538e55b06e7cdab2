"""The serving benchmark's baseline: a minimal FastAPI app serving the same registered model.

Run (``bench/bench_serving.py`` starts it as a subprocess, 1 worker, access log off)::

    MLOPS_HOME=... PLAIN_MODEL_NAME=churn OMP_NUM_THREADS=1 \
        uvicorn plain_fastapi_app:app --app-dir bench --host 127.0.0.1 --port 8000 \
        --workers 1 --no-access-log

At start-up it loads ``models:/<PLAIN_MODEL_NAME>@champion`` with ``mlflow.sklearn.load_model``
from ``MLFLOW_TRACKING_URI`` (default ``sqlite:///<MLOPS_HOME>/mlflow.db``, as prefect-mlops).
``POST /predict`` takes ``{"records": [{...}, ...]}``, builds ``pd.DataFrame(records)``, calls
``predict_proba`` and answers ``{"predictions": [...], "probabilities": [[...], ...]}``. Nothing
else: no validation against the signature, no request id, no serving log, no batching — what
a user would write by hand.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

_model: dict[str, Any] = {}


def _tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = Path(os.environ.get("MLOPS_HOME", ".mlops")).expanduser().resolve()
    return f"sqlite:///{home / 'mlflow.db'}"


@asynccontextmanager
async def lifespan(_: FastAPI):
    import mlflow

    uri = _tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI", uri))
    name = os.environ["PLAIN_MODEL_NAME"]
    model = mlflow.sklearn.load_model(f"models:/{name}@champion")
    _model["model"] = model
    _model["classes"] = np.asarray(model.classes_)
    yield
    _model.clear()


app = FastAPI(lifespan=lifespan)


class PredictRequest(BaseModel):
    records: list[dict[str, Any]]


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]]


@app.post("/predict")
def predict(request: PredictRequest) -> PredictResponse:
    model = _model["model"]
    frame = pd.DataFrame(request.records)
    proba = model.predict_proba(frame)
    predictions = _model["classes"][proba.argmax(axis=1)]
    return PredictResponse(predictions=predictions.tolist(), probabilities=proba.tolist())


@app.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": "model" in _model}
