"""The HTTP contract as pydantic models: what ``/docs.json`` (OpenAPI) and the BentoML client's
schema show for ``POST /predict``, ``GET /metadata`` and ``POST /reload``.

Documentation only: bodies are parsed and checked by :class:`~prefect_mlops.serving.schema.
InputSchema` (against the model signature, which these generic models cannot know), never by
pydantic. A unit test checks them against real answers of the runtime.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from prefect_mlops.serving.routing import Variant

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
        description="The server's id of the request (also in the X-Request-ID header): the "
        "serving log's key, the one the canary split hashes."
    )
    client_request_id: str | None = Field(
        description="The client's X-Request-ID when kept (1-128 printable ASCII), else null."
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
    request_id: str | None = Field(None, description="The server's request id (predict only).")
    client_request_id: str | None = Field(
        None, description="The client's X-Request-ID when kept (predict only)."
    )


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
