"""/v1/vector_stores: OpenAI's Vector Stores API over ragapp's collections.

A vector store is a collection the caller may read; a vector-store file is a
document in it, whose id is the id of the File it was made from (documents
uploaded in the web pages get one of their own). Attaching a file copies its
bytes into a new document and queues it for indexing; its `status` follows
the pipeline: queued, parsing and embedding are `in_progress`, ready is
`completed`, failed is `failed` with `last_error`. GETs of files and batches
carry `openai-poll-after-ms`, which the SDK's poll helpers wait for.

Search runs `chunk_search` on the store's collection narrowed by the key's
scope, so access is part of the query. Its fused score is a weighted sum of
z-scores (unbounded, relative to the query's candidates); replies give the
logistic of it, `1 / (1 + e^-score)`, which keeps the order, lies in (0, 1)
as the spec requires, and is 0.5 for a candidate of average relevance, so
`score_threshold` 0.5 keeps the better half. Each result's attributes are
the document's plus the chunk's `page_start`/`page_end`.

Where the spec leaves room: `chunking_strategy` is checked and accepted, but
ragapp chunks by document structure, so files report `{"type": "other"}`;
`rewrite_query` has no model to rewrite with and echoes the query;
`expires_after` is kept and echoed, and stores never expire.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import ConfigDict, Field

from ragapp.api.exceptions import ApiError
from ragapp.api.models import VectorStore, VectorStoreFile, VectorStoreFileBatch
from ragapp.api.v1 import stores_service as stores
from ragapp.api.v1.pages import Order, cursor_page
from ragapp.documents.models import Document
from ragapp.documents.parsing.errors import MESSAGES as PARSE_ERRORS
from ragapp.retrieval.filters import FilterError, document_filter_q
from ragapp.retrieval.search import Passage, chunk_search

router = Router(tags=["vector_stores"])

POLL_AFTER_MS = "500"
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]
UNSUPPORTED_CODES = frozenset(
    {
        "unsupported_type",
        "executable",
        "image",
        "media",
        "archive",
        "not_docx",
        "binary",
        "type_mismatch",
    }
)


# --- Shapes -----------------------------------------------------------------------


def _unix(moment: Any) -> int:
    return int(moment.timestamp())


def vector_store_object(store: VectorStore) -> dict:
    in_progress = store.in_progress_count
    body: dict[str, Any] = {
        "id": store.public_id,
        "object": "vector_store",
        "created_at": _unix(store.created_at),
        "name": store.collection.name,
        "usage_bytes": store.usage_bytes or 0,
        "file_counts": {
            "in_progress": in_progress,
            "completed": store.completed_count,
            "failed": store.failed_count,
            "cancelled": 0,
            "total": store.total_count,
        },
        "status": "in_progress" if in_progress else "completed",
        "last_active_at": _unix(store.last_active_at or store.created_at),
        "metadata": store.metadata or {},
        "expires_at": None,
    }
    if store.expires_after:
        body["expires_after"] = store.expires_after
    return body


def file_status(document: Document) -> str:
    if document.status == Document.Status.READY:
        return "completed"
    if document.status == Document.Status.FAILED:
        return "failed"
    return "in_progress"


def last_error(document: Document) -> dict[str, str] | None:
    """OpenAI's three codes: the file's type, the file itself, or ragapp."""
    if document.status != Document.Status.FAILED:
        return None
    if document.error_code in UNSUPPORTED_CODES:
        code = "unsupported_file"
    elif document.error_code in PARSE_ERRORS or document.error_code == "too_large":
        code = "invalid_file"
    else:
        code = "server_error"
    message = document.error_message or _("The file could not be indexed.")
    return {"code": code, "message": message}


def vector_store_file_object(store: VectorStore, row: VectorStoreFile) -> dict:
    document = row.document
    return {
        "id": row.public_id,
        "object": "vector_store.file",
        "usage_bytes": document.size_bytes,
        "created_at": _unix(row.created_at),
        "vector_store_id": store.public_id,
        "status": file_status(document),
        "last_error": last_error(document),
        "chunking_strategy": {"type": "other"},
        "attributes": stores.output_attributes(document.attributes),
    }


def file_batch_object(store: VectorStore, batch: VectorStoreFileBatch) -> dict:
    counts = stores.vector_store_file_batch_counts(batch)
    if counts["in_progress"]:
        status = "in_progress"
    elif batch.cancelled_at is not None:
        status = "cancelled"
    elif counts["total"] and counts["failed"] == counts["total"]:
        status = "failed"
    else:
        status = "completed"
    return {
        "id": batch.public_id,
        "object": "vector_store.files_batch",
        "created_at": _unix(batch.created_at),
        "vector_store_id": store.public_id,
        "status": status,
        "file_counts": counts,
    }


def _poll_after(response: HttpResponse) -> None:
    response["openai-poll-after-ms"] = POLL_AFTER_MS


# --- Requests ---------------------------------------------------------------------


class ExpiresAfter(Schema):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


def chunking_strategy_clean(value: Any, *, param: str = "chunking_strategy") -> None:
    """Check OpenAI's ChunkingStrategyRequestParam (it is accepted, not applied)."""
    if value is None:
        return
    if not isinstance(value, dict) or value.get("type") not in ("auto", "static"):
        raise ApiError(
            _("'%(p)s' is {'type': 'auto'} or {'type': 'static', 'static': {...}}.")
            % {"p": param},
            param=f"{param}.type",
        )
    if value["type"] == "auto":
        if set(value) != {"type"}:
            raise ApiError(
                _("An auto chunking strategy takes no options."), param=param
            )
        return
    static = value.get("static")
    if set(value) != {"type", "static"} or not isinstance(static, dict):
        raise ApiError(
            _("A static chunking strategy needs 'static'."), param=f"{param}.static"
        )
    size = static.get("max_chunk_size_tokens")
    overlap = static.get("chunk_overlap_tokens")
    if set(static) != {"max_chunk_size_tokens", "chunk_overlap_tokens"}:
        raise ApiError(
            _("'static' takes max_chunk_size_tokens and chunk_overlap_tokens."),
            param=f"{param}.static",
        )
    if isinstance(size, bool) or not isinstance(size, int) or not 100 <= size <= 4096:
        raise ApiError(
            _("max_chunk_size_tokens is between 100 and 4096."),
            param=f"{param}.static.max_chunk_size_tokens",
        )
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, int)
        or not 0 <= overlap <= size // 2
    ):
        raise ApiError(
            _("chunk_overlap_tokens is at least 0 and at most half the chunk size."),
            param=f"{param}.static.chunk_overlap_tokens",
        )


class VectorStoreCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class VectorStoreUpdate(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, Any] | None = None


class StoreListQuery(Schema):
    limit: int = Field(default=20, ge=1, le=100)
    order: Order = "desc"
    after: str | None = None
    before: str | None = None


class FileListQuery(StoreListQuery):
    filter: FileStatus | None = None


class VectorStoreFileCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None


class VectorStoreFileUpdate(Schema):
    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any] | None


class FileBatchCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=2000)
    files: list[VectorStoreFileCreate] | None = Field(
        default=None, min_length=1, max_length=2000
    )
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None


class RankingOptions(Schema):
    model_config = ConfigDict(extra="forbid")

    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)


class SearchRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    query: str | list[str]
    rewrite_query: bool = False
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None


# --- Vector stores ------------------------------------------------------------------


@router.post("/vector_stores", summary="Create a vector store")
def vector_stores_create(request: HttpRequest, body: VectorStoreCreate) -> dict:
    chunking_strategy_clean(body.chunking_strategy)
    store = stores.vector_store_create(
        caller=request.auth,
        name=body.name,
        metadata=body.metadata,
        expires_after=body.expires_after.dict() if body.expires_after else None,
        file_ids=body.file_ids,
    )
    return vector_store_object(store)


@router.get("/vector_stores", summary="List vector stores")
def vector_stores_list(request: HttpRequest, query: Query[StoreListQuery]) -> dict:
    return cursor_page(
        stores.vector_store_list(caller=request.auth),
        limit=query.limit,
        order=query.order,
        after=query.after,
        before=query.before,
        shape=vector_store_object,
    )


@router.get("/vector_stores/{vector_store_id}", summary="Retrieve a vector store")
def vector_stores_retrieve(request: HttpRequest, vector_store_id: str) -> dict:
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    return vector_store_object(store)


@router.post("/vector_stores/{vector_store_id}", summary="Modify a vector store")
def vector_stores_update(
    request: HttpRequest, vector_store_id: str, body: VectorStoreUpdate
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    store = stores.vector_store_update(
        caller=caller,
        store=store,
        name=body.name,
        metadata=body.metadata,
        expires_after=body.expires_after.dict() if body.expires_after else None,
        fields=set(body.model_fields_set),
    )
    return vector_store_object(store)


@router.delete("/vector_stores/{vector_store_id}", summary="Delete a vector store")
def vector_stores_delete(request: HttpRequest, vector_store_id: str) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    stores.vector_store_delete(caller=caller, store=store)
    return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}


# --- Vector-store files -------------------------------------------------------------


def _attachment(
    caller: Any, file_id: str, attributes: Any, param: str
) -> stores.Attachment:
    return stores.Attachment(
        api_file=stores.access_api_file(user=caller.user, file_id=file_id),
        attributes=stores.attributes_clean(attributes, param=param),
    )


@router.post("/vector_stores/{vector_store_id}/files", summary="Attach a file")
def vector_store_files_create(
    request: HttpRequest, vector_store_id: str, body: VectorStoreFileCreate
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    chunking_strategy_clean(body.chunking_strategy)
    attachment = _attachment(caller, body.file_id, body.attributes, "attributes")
    (row,) = stores.vector_store_files_attach(
        caller=caller, store=store, attachments=[attachment]
    )
    row = stores.access_vector_store_file(store=store, file_id=row.public_id)
    return vector_store_file_object(store, row)


@router.get("/vector_stores/{vector_store_id}/files", summary="List files of a store")
def vector_store_files_list(
    request: HttpRequest,
    vector_store_id: str,
    query: Query[FileListQuery],
    response: HttpResponse,
) -> dict:
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    _poll_after(response)
    return cursor_page(
        stores.vector_store_file_list(store=store, status=query.filter),
        limit=query.limit,
        order=query.order,
        after=query.after,
        before=query.before,
        shape=lambda row: vector_store_file_object(store, row),
    )


@router.get(
    "/vector_stores/{vector_store_id}/files/{file_id}", summary="Retrieve a file"
)
def vector_store_files_retrieve(
    request: HttpRequest, vector_store_id: str, file_id: str, response: HttpResponse
) -> dict:
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    row = stores.access_vector_store_file(store=store, file_id=file_id)
    _poll_after(response)
    return vector_store_file_object(store, row)


@router.post(
    "/vector_stores/{vector_store_id}/files/{file_id}",
    summary="Update a file's attributes",
)
def vector_store_files_update(
    request: HttpRequest,
    vector_store_id: str,
    file_id: str,
    body: VectorStoreFileUpdate,
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    row = stores.access_vector_store_file(store=store, file_id=file_id)
    attributes = stores.attributes_clean(body.attributes)
    row = stores.vector_store_file_update(
        caller=caller, vector_store_file=row, attributes=attributes
    )
    return vector_store_file_object(store, row)


@router.delete(
    "/vector_stores/{vector_store_id}/files/{file_id}",
    summary="Remove a file from a store",
)
def vector_store_files_delete(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    row = stores.access_vector_store_file(store=store, file_id=file_id)
    stores.vector_store_file_delete(caller=caller, vector_store_file=row)
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


@router.get(
    "/vector_stores/{vector_store_id}/files/{file_id}/content",
    summary="Retrieve a file's parsed text",
)
def vector_store_files_content(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> dict:
    """The file's passages as indexed, in reading order; overlapping sentences repeat."""
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    row = stores.access_vector_store_file(store=store, file_id=file_id)
    return {
        "object": "vector_store.file_content.page",
        "data": [
            {"type": "text", "text": text}
            for text in stores.vector_store_file_chunks(row)
        ],
        "has_more": False,
        "next_page": None,
    }


# --- File batches ---------------------------------------------------------------


@router.post(
    "/vector_stores/{vector_store_id}/file_batches", summary="Create a file batch"
)
def file_batches_create(
    request: HttpRequest, vector_store_id: str, body: FileBatchCreate
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    if not body.file_ids and not body.files:
        raise ApiError(_("Give 'file_ids' or 'files'."), param="file_ids")
    chunking_strategy_clean(body.chunking_strategy)
    shared = stores.attributes_clean(body.attributes)
    attachments = [
        _attachment(caller, file_id, shared, "attributes")
        for file_id in body.file_ids or []
    ]
    for index, item in enumerate(body.files or []):
        chunking_strategy_clean(
            item.chunking_strategy, param=f"files[{index}].chunking_strategy"
        )
        attributes = shared if item.attributes is None else item.attributes
        attachments.append(
            _attachment(caller, item.file_id, attributes, f"files[{index}].attributes")
        )
    batch = stores.vector_store_file_batch_create(
        caller=caller, store=store, attachments=attachments
    )
    return file_batch_object(store, batch)


@router.get(
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}",
    summary="Retrieve a file batch",
)
def file_batches_retrieve(
    request: HttpRequest, vector_store_id: str, batch_id: str, response: HttpResponse
) -> dict:
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    batch = stores.access_vector_store_file_batch(store=store, batch_id=batch_id)
    _poll_after(response)
    return file_batch_object(store, batch)


@router.post(
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    summary="Cancel a file batch",
)
def file_batches_cancel(
    request: HttpRequest, vector_store_id: str, batch_id: str
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    batch = stores.access_vector_store_file_batch(store=store, batch_id=batch_id)
    batch = stores.vector_store_file_batch_cancel(caller=caller, batch=batch)
    return file_batch_object(store, batch)


@router.get(
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    summary="List the files of a batch",
)
def file_batches_files(
    request: HttpRequest,
    vector_store_id: str,
    batch_id: str,
    query: Query[FileListQuery],
    response: HttpResponse,
) -> dict:
    store = stores.access_vector_store(
        caller=request.auth, vector_store_id=vector_store_id
    )
    batch = stores.access_vector_store_file_batch(store=store, batch_id=batch_id)
    _poll_after(response)
    return cursor_page(
        stores.vector_store_file_list(store=store, status=query.filter, batch=batch),
        limit=query.limit,
        order=query.order,
        after=query.after,
        before=query.before,
        shape=lambda row: vector_store_file_object(store, row),
    )


# --- Search -----------------------------------------------------------------------


@router.post("/vector_stores/{vector_store_id}/search", summary="Search a store")
def vector_stores_search(
    request: HttpRequest, vector_store_id: str, body: SearchRequest
) -> dict:
    caller = request.auth
    store = stores.access_vector_store(caller=caller, vector_store_id=vector_store_id)
    try:
        document_filter_q(body.filters)
    except FilterError as exc:
        param = str(exc).split(":", 1)[0]
        raise ApiError(str(exc), param=param) from None
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    options = body.ranking_options or RankingOptions()
    scope = caller.scope([store.collection_id])
    best: dict[int, tuple[float, Passage]] = {}
    for text in queries:
        for passage in chunk_search(
            user=caller.user,
            query=text,
            collection_ids=scope,
            filters=body.filters,
            limit=body.max_num_results,
        ):
            score = stores.relevance(passage.score)
            if score < options.score_threshold:
                continue
            known = best.get(passage.chunk_id)
            if known is None or score > known[0]:
                best[passage.chunk_id] = (score, passage)
    ranked = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].chunk_id))
    ranked = ranked[: body.max_num_results]
    stores.vector_store_files_ensure(store)
    document_ids = {passage.document_id for _score, passage in ranked}
    rows = {
        row.document_id: row
        for row in VectorStoreFile.objects.filter(
            vector_store=store, document_id__in=document_ids
        ).select_related("document")
    }
    data = []
    for score, passage in ranked:
        row = rows.get(passage.document_id)
        if row is None:  # deleted since the search read it
            continue
        pages = {
            name: value
            for name, value in (
                ("page_start", passage.page_start),
                ("page_end", passage.page_end),
            )
            if value is not None
        }
        document = row.document
        data.append(
            {
                "file_id": row.public_id,
                "filename": document.original_filename or document.title,
                "score": score,
                "attributes": stores.output_attributes(document.attributes, pages),
                "content": [{"type": "text", "text": passage.text}],
            }
        )
    stores.vector_store_touch(store)
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
