"""The NinjaAPI behind /v1: OpenAI's routes, its error shape, bearer keys."""

from __future__ import annotations

from ninja import NinjaAPI

from ragapp.api import errors
from ragapp.api.auth import ApiKeyAuth
from ragapp.api.v1 import (
    chat,
    embeddings,
    files,
    models_routes,
    moderations,
    responses,
    vector_stores,
)

api = NinjaAPI(
    title="ragapp — OpenAI-compatible API",
    version="1",
    description=(
        "OpenAI's API shapes over ragapp's collections: point an OpenAI SDK's "
        "base_url at /v1 and use a ragapp API key."
    ),
    urls_namespace="openai",
    auth=ApiKeyAuth(),
    docs_url=None,
)
errors.install(api, "openai")
api.add_router("", models_routes.router)
api.add_router("", chat.router)
api.add_router("", embeddings.router)
api.add_router("", moderations.router)
api.add_router("", files.router)
api.add_router("", vector_stores.router)
api.add_router("", responses.router)
