"""/v1/files: OpenAI's Files API, each file private to the user who uploaded it.

Files are the bytes a client later attaches to vector stores
(ragapp.api.v1.vector_stores). Another user's file id is a 404, like an id
that was never issued. The content comes back as an attachment that a
browser can never run as one of ragapp's pages (T11).

Two choices where OpenAI's schemas leave a gap: `purpose: "evals"` is
accepted and listed under that purpose, but a file's `purpose` field says
`user_data` for it, since the spec's OpenAIFile (and the SDK's strict type)
has no `evals`. `expires_after` is accepted and ignored: ragapp does not
expire files, so none has an `expires_at`.
"""

from __future__ import annotations

import unicodedata
from typing import Literal
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.utils.translation import gettext as _
from ninja import File, Form, Query, Router, Schema, UploadedFile
from pydantic import Field

from ragapp.api.exceptions import PayloadTooLargeError
from ragapp.api.models import ApiFile
from ragapp.api.v1 import stores_service as stores
from ragapp.api.v1.pages import Order, cursor_page

router = Router(tags=["files"])

Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
# OpenAIFile.purpose has no "evals" (see the module docstring).
SHOWN_PURPOSE = {"evals": "user_data"}


def file_object(api_file: ApiFile) -> dict:
    return {
        "id": api_file.public_id,
        "object": "file",
        "bytes": api_file.bytes,
        "created_at": int(api_file.created_at.timestamp()),
        "filename": api_file.filename,
        "purpose": SHOWN_PURPOSE.get(api_file.purpose, api_file.purpose),
        "status": "processed",
    }


def attachment_disposition(name: str) -> str:
    """Content-Disposition for downloading `name`, whatever it contains (T11).

    The same rule as the Manage pages' download (web.manage_views, which the
    api app may not import): an attachment with an ASCII `filename` and the
    RFC 6266 / RFC 5987 `filename*`; control, format and separator characters
    are dropped, so no name can split the header or disguise its extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
    ).strip()
    name = name or "file"
    fallback = "".join(
        ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in name
    )
    return (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    )


@router.post("/files", summary="Upload a file")
def files_create(
    request: HttpRequest,
    file: File[UploadedFile],
    purpose: Form[Purpose],
) -> dict:
    caller = request.auth
    stores.require_writable_key(caller)
    limit = settings.MAX_UPLOAD_BYTES
    if file.size > limit:
        raise PayloadTooLargeError(
            _("The file is %(size).1f MB; the limit is %(limit).0f MB.")
            % {"size": file.size / 1_048_576, "limit": limit / 1_048_576},
            param="file",
        )
    api_file = stores.api_file_create(
        user=caller.user, stream=file, filename=file.name or "", purpose=purpose
    )
    return file_object(api_file)


class FileListQuery(Schema):
    purpose: str = ""
    limit: int = Field(default=10000, ge=1, le=10000)
    order: Order = "desc"
    after: str | None = None


@router.get("/files", summary="List files")
def files_list(request: HttpRequest, query: Query[FileListQuery]) -> dict:
    files = stores.api_file_list(user=request.auth.user, purpose=query.purpose)
    return cursor_page(
        files,
        limit=query.limit,
        order=query.order,
        after=query.after,
        shape=file_object,
    )


@router.get("/files/{file_id}", summary="Retrieve a file")
def files_retrieve(request: HttpRequest, file_id: str) -> dict:
    return file_object(stores.access_api_file(user=request.auth.user, file_id=file_id))


@router.delete("/files/{file_id}", summary="Delete a file")
def files_delete(request: HttpRequest, file_id: str) -> dict:
    caller = request.auth
    api_file = stores.access_api_file(user=caller.user, file_id=file_id)
    stores.require_writable_key(caller)
    stores.api_file_delete(api_file=api_file)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content", summary="Retrieve a file's content")
def files_content(request: HttpRequest, file_id: str) -> FileResponse:
    api_file = stores.access_api_file(user=request.auth.user, file_id=file_id)
    response = FileResponse(
        api_file.file.open("rb"), content_type="application/octet-stream"
    )
    response["Content-Disposition"] = attachment_disposition(api_file.filename)
    response["Content-Security-Policy"] = "sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
