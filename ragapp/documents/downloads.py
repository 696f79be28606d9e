"""Serving a stored original back as a download that can never run as our page.

The Manage pages and the native API both hand out originals; one rule for
both (T11): always an attachment, typed as bytes, sandboxed and unsniffable,
whatever the uploader named or put in the file.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from django.http import FileResponse, Http404

from ragapp.documents.models import Document


def attachment_disposition(name: str, *, fallback_name: str = "document") -> str:
    """Content-Disposition for downloading `name`, whatever it contains (T11).

    Always an attachment, with an ASCII `filename` for old clients and the
    RFC 6266 / RFC 5987 `filename*` with the real name percent-encoded.
    Control, format (e.g. right-to-left override) and separator characters
    are dropped first, so no name can split the header or disguise its
    extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
    ).strip()
    name = name or fallback_name
    fallback = "".join(
        ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in name
    )
    return (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    )


def document_download_response(document: Document) -> FileResponse:
    """The document's stored original as a sandboxed attachment; Http404 without one.

    An upload refused before it was stored has no file to give back.
    """
    if not document.file:
        raise Http404
    name = document.original_filename or document.title or "document"
    response = FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=name,
        content_type="application/octet-stream",
    )
    response["Content-Disposition"] = attachment_disposition(name)
    response["Content-Security-Policy"] = "sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
