"""The NinjaAPI behind /api/: ragapp's own routes, its error shape, bearer keys."""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.operation import Operation

from ragapp.api import errors
from ragapp.api.auth import ApiKeyAuth
from ragapp.api.native import (
    ask_routes,
    collection_routes,
    document_routes,
    search_routes,
    thread_routes,
)
from ragapp.api.native.docs import NoncedSwagger


class NativeApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        """The view's name (`documents_upload`), not its module path."""
        return operation.view_func.__name__


api = NativeApi(
    title="ragapp API",
    version="1",
    description=(
        "Collections, documents, search and grounded answers with citations. "
        "Send an API key as `Authorization: Bearer rag_…` (make one on the "
        'API keys page). Errors are `{"error": {"code", "message"}}`; '
        "lists page with `?limit=&cursor=` and answer `{data, next_cursor}`."
    ),
    urls_namespace="api",
    auth=ApiKeyAuth(),
    docs=NoncedSwagger(settings={"persistAuthorization": False}),
)
errors.install(api, "native")
api.add_router("", collection_routes.router)
api.add_router("", document_routes.router)
api.add_router("", search_routes.router)
api.add_router("", ask_routes.router)
api.add_router("", thread_routes.router)
