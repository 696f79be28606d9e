"""/api/collections/{id}/documents and /api/documents: upload, status, actions."""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from ninja import File, Header, Query, Router, Status, UploadedFile

from ragapp.api.native import selectors, services
from ragapp.api.native.idempotency import HEADER, Reply, idempotent
from ragapp.api.native.pages import PageQuery, keyset_page
from ragapp.api.native.schemas import (
    DocumentListQuery,
    DocumentOut,
    DocumentPage,
    UploadsOut,
    error_responses,
)
from ragapp.api.native.shapes import document_out
from ragapp.documents.downloads import document_download_response

router = Router(tags=["documents"])

IDEMPOTENCY_KEY = Header(
    None,
    alias=HEADER,
    description=(
        "Send the same value again (within 24 h) to get the first reply "
        "instead of uploading twice."
    ),
)


@router.get(
    "/collections/{collection_id}/documents",
    response={200: DocumentPage, **error_responses(404)},
    summary="List a collection's documents",
)
def documents_list(
    request: HttpRequest,
    collection_id: int,
    page: Query[PageQuery],
    filters: Query[DocumentListQuery],
) -> dict:
    """Newest first, optionally only those in one status."""
    caller = request.auth
    collection = selectors.access_collection(caller=caller, collection_id=collection_id)
    rows = selectors.document_list_for(
        caller=caller, collection=collection, status=filters.status
    )
    found = keyset_page(
        rows,
        order=("-created_at", "-pk"),
        limit=page.limit,
        cursor=page.cursor,
        salt="documents",
    )
    return {
        "data": [document_out(d) for d in found.items],
        "next_cursor": found.next_cursor,
    }


@router.post(
    "/collections/{collection_id}/documents",
    response={200: UploadsOut, 201: UploadsOut, **error_responses(403, 404, 409, 422)},
    summary="Upload documents",
)
def documents_upload(
    request: HttpRequest,
    collection_id: int,
    files: File[list[UploadedFile]],
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> HttpResponse:
    """One or many files (multipart `files`), each queued for indexing or
    refused with the reason; content already in the collection is not
    indexed twice (`created: false`). 201 when any document was created."""
    caller = request.auth
    collection = selectors.access_collection(caller=caller, collection_id=collection_id)
    names = [f.name or "" for f in files]

    def upload() -> Reply:
        outcomes = services.documents_upload_for(
            caller=caller, collection=collection, files=files, names=names
        )
        body = UploadsOut.model_validate(
            {
                "data": [
                    {
                        "created": o.created,
                        "message": o.message,
                        "document": document_out(o.document),
                    }
                    for o in outcomes
                ]
            }
        ).model_dump(mode="json")
        return Reply(status=201 if any(o.created for o in outcomes) else 200, body=body)

    reply = idempotent(
        request,
        idempotency_key=idempotency_key,
        fingerprint=services.uploads_fingerprint(files, names),
        run=upload,
    )
    response = JsonResponse(reply.body, status=reply.status)
    if reply.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


@router.get(
    "/documents/{document_id}",
    response={200: DocumentOut, **error_responses(404)},
    summary="Retrieve a document",
)
def documents_retrieve(request: HttpRequest, document_id: int) -> dict:
    """Its status and, while embedding, its progress; why it failed, if it did."""
    return document_out(
        selectors.access_document(caller=request.auth, document_id=document_id)
    )


def _act(request: HttpRequest, document_id: int, action: str) -> dict:
    caller = request.auth
    document = selectors.access_document(caller=caller, document_id=document_id)
    services.document_act_for(caller=caller, document=document, action=action)
    return document_out(
        selectors.access_document(caller=caller, document_id=document_id)
    )


@router.post(
    "/documents/{document_id}/retry",
    response={202: DocumentOut, **error_responses(403, 404, 409)},
    summary="Retry a failed document",
)
def documents_retry(request: HttpRequest, document_id: int) -> Status:
    """Queue a failed document again (after a fix, or a model outage). Admins only."""
    return Status(202, _act(request, document_id, "retry"))


@router.post(
    "/documents/{document_id}/reindex",
    response={202: DocumentOut, **error_responses(403, 404, 409)},
    summary="Re-index a document",
)
def documents_reindex(request: HttpRequest, document_id: int) -> Status:
    """Index it again; its passages stay searchable until the new ones are in.
    Admins only."""
    return Status(202, _act(request, document_id, "reindex"))


@router.delete(
    "/documents/{document_id}",
    response={204: None, **error_responses(403, 404)},
    summary="Delete a document",
)
def documents_delete(request: HttpRequest, document_id: int) -> Status:
    """Delete it, its passages and its stored file. Admins only."""
    caller = request.auth
    document = selectors.access_document(caller=caller, document_id=document_id)
    services.document_act_for(caller=caller, document=document, action="delete")
    return Status(204, None)


@router.get(
    "/documents/{document_id}/file",
    response={
        200: None,
        **error_responses(404),
    },
    openapi_extra={
        "responses": {
            200: {
                "description": "The original file, as an attachment.",
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            }
        }
    },
    summary="Download the original",
)
def documents_file(request: HttpRequest, document_id: int) -> FileResponse:
    """The stored original, as an attachment that never runs in a browser."""
    document = selectors.access_document(caller=request.auth, document_id=document_id)
    return document_download_response(document)
