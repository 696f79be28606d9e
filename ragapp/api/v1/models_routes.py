"""GET /v1/models and /v1/models/{model}: what this key may name as `model`."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from ragapp.api.v1.catalog import OWNER, ModelEntry, model_catalog, model_resolve

router = Router(tags=["models"])


def model_object(entry: ModelEntry) -> dict:
    return {
        "id": entry.id,
        "object": "model",
        "created": entry.created,
        "owned_by": OWNER,
    }


@router.get("/models", summary="List models")
def models_list(request: HttpRequest) -> dict:
    return {
        "object": "list",
        "data": [model_object(e) for e in model_catalog(request.auth)],
    }


@router.get("/models/{path:model}", summary="Retrieve a model")
def models_retrieve(request: HttpRequest, model: str) -> dict:
    entry = model_resolve(
        request.auth, model, kinds=("collection", "extractive", "chat", "embedding")
    )
    return model_object(entry)
