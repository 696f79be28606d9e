"""Rows as the native API shows them: the replies' dicts, one function each."""

from __future__ import annotations

from typing import Any

from ragapp.answers.models import Citation, Feedback, Message, Thread
from ragapp.documents.models import Collection, Document
from ragapp.retrieval.search import Passage

RATING_NAMES = {Feedback.Rating.UP: "up", Feedback.Rating.DOWN: "down"}


def collection_out(collection: Collection, *, managed: bool) -> dict[str, Any]:
    groups = None
    if managed:
        groups = [
            {"id": group.pk, "name": group.name}
            for group in collection.reader_groups.all()
        ]
    return {
        "id": collection.pk,
        "name": collection.name,
        "slug": collection.slug,
        "description": collection.description,
        "document_count": getattr(collection, "document_count", 0),
        "ready_count": getattr(collection, "ready_count", 0),
        "reader_groups": groups,
        "created_at": collection.created_at,
        "updated_at": collection.updated_at,
    }


def document_out(document: Document) -> dict[str, Any]:
    """What the Manage page's row shows: status, progress while embedding, why
    it failed, and the parser's warnings."""
    error = None
    if document.status == Document.Status.FAILED:
        error = {
            "code": document.error_code or "failed",
            "message": document.error_message
            or "Indexing failed; no reason was recorded.",
        }
    return {
        "id": document.pk,
        "collection_id": document.collection_id,
        "title": document.title,
        "filename": document.original_filename,
        "content_type": document.content_type,
        "size_bytes": document.size_bytes,
        "page_count": document.page_count,
        "status": document.status,
        "progress": {"done": document.progress_done, "total": document.progress_total},
        "error": error,
        "warnings": [str(w) for w in document.warnings or []],
        "attributes": document.attributes or {},
        "created_at": document.created_at,
        "indexed_at": document.indexed_at,
    }


def passage_out(passage: Passage) -> dict[str, Any]:
    return {
        "chunk_id": passage.chunk_id,
        "document_id": passage.document_id,
        "title": passage.document_title,
        "collection_id": passage.collection_id,
        "heading": passage.heading,
        "page_start": passage.page_start,
        "page_end": passage.page_end,
        "text": passage.text,
        "score": passage.score,
    }


def citation_out(citation: Citation) -> dict[str, Any]:
    return {
        "marker": citation.marker,
        "document_id": citation.document_id,
        "title": citation.document_title,
        "page_start": citation.page_start,
        "page_end": citation.page_end,
        "quote": citation.quote,
    }


def usage_out(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def feedback_out(feedback: Feedback) -> dict[str, Any]:
    return {
        "message_id": feedback.message_id,
        "rating": RATING_NAMES[feedback.rating],
        "comment": feedback.comment,
        "updated_at": feedback.updated_at,
    }


def message_out(message: Message) -> dict[str, Any]:
    """A message with the citations its reader may see (`visible_citations`)."""
    feedback = message.feedback if _has_feedback(message) else None
    return {
        "id": message.pk,
        "question": message.question,
        "answer": "" if message.withheld else message.answer,
        "status": message.status,
        "reason": message.status_reason,
        "citations": [citation_out(c) for c in message.visible_citations],
        "usage": usage_out(message.prompt_tokens, message.completion_tokens),
        "feedback": feedback_out(feedback) if feedback else None,
        "created_at": message.created_at,
        "finished_at": message.finished_at,
    }


def _has_feedback(message: Message) -> bool:
    try:
        message.feedback  # noqa: B018 (the reverse one-to-one may be missing)
    except Feedback.DoesNotExist:
        return False
    return True


def thread_out(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.pk,
        "title": thread.title,
        "collection_ids": sorted(c.pk for c in thread.collections.all()),
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
    }
