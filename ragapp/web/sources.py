"""Showing a cited source: the page image, the original file, the passage in context.

Callers have already checked access (ragapp.answers.selectors): a citation
is reachable only by the asker, while they may read its collection, and a
document only by readers of its collection.

Uploaded files are hostile until proven otherwise (T11): they download as
attachments under a sandboxing CSP, except a PDF opened in the browser's own
viewer (so `#page=N` lands on the cited page); see original_file_response.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpResponse
from django.urls import reverse

from ragapp.answers.models import Citation
from ragapp.documents.exceptions import PageImageError
from ragapp.documents.models import Chunk, Document
from ragapp.documents.page_images import page_image

PDF = "application/pdf"
# Pages of one citation shown as images (a passage rarely spans more).
MAX_PAGES_SHOWN = 3


def citation_context(citation: Citation) -> dict:
    """What the source panel and page show for one citation."""
    document = citation.document
    is_pdf = (
        document is not None and document.content_type == PDF and bool(document.file)
    )
    pages: list[int] = []
    if is_pdf and citation.page_start:
        last = citation.page_end or citation.page_start
        pages = list(range(citation.page_start, last + 1))[:MAX_PAGES_SHOWN]
    message_id, marker = citation.message_id, citation.marker
    return {
        "citation": citation,
        "document": document,
        "is_pdf": is_pdf,
        "page_images": [
            {
                "page": page,
                "src": reverse("web:citation-page", args=[message_id, marker, page]),
            }
            for page in pages
        ],
        "open_url": (
            reverse("web:document-file", args=[document.pk])
            + (f"#page={citation.page_start}" if citation.page_start else "")
            if is_pdf
            else None
        ),
        "context_url": (
            reverse("web:document-passages", args=[document.pk])
            + f"?chunk={citation.chunk_id}#chunk-{citation.chunk_id}"
            if document is not None and citation.chunk_id
            else None
        ),
    }


def page_image_response(citation: Citation, *, page: int) -> HttpResponse:
    """The PNG of a page the citation spans, with its quote highlighted."""
    first = citation.page_start
    last = citation.page_end or first
    if citation.document is None or first is None or not first <= page <= last:
        raise Http404
    try:
        png = page_image(
            document=citation.document, page_number=page, highlight=citation.quote
        )
    except PageImageError:
        raise Http404 from None
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def original_file_response(
    document: Document, *, download: bool = False
) -> FileResponse:
    """The stored upload, served so that it can never run as our page.

    Every type downloads as an attachment under a sandboxing CSP, except a
    PDF opened to read: Chromium refuses to start its PDF viewer in a
    sandboxed document ("This page has been blocked"), so the viewer's copy
    goes out inline with the type fixed to application/pdf (the content was
    checked to be a PDF at upload) and nosniff, so it can only ever be shown
    as a PDF, whose scripts run in the viewer's own process, not our origin.
    """
    if not document.file:
        raise Http404
    name = document.original_filename or document.title or "document"
    inline = document.content_type == PDF and not download
    response = FileResponse(
        document.file.open("rb"),
        as_attachment=not inline,
        filename=name,
        content_type=PDF if inline else "application/octet-stream",
    )
    response["Content-Security-Policy"] = (
        "default-src 'none'; frame-ancestors 'none'" if inline else "sandbox"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def document_context(document: Document, *, highlighted_chunk: int | None) -> dict:
    """The document's searchable passages in order, one of them highlighted."""
    chunks = Chunk.objects.filter(
        document=document, version=document.indexed_version
    ).order_by("ordinal")
    return {
        "document": document,
        "chunks": chunks,
        "highlighted": highlighted_chunk,
        "is_pdf": document.content_type == PDF and bool(document.file),
    }
