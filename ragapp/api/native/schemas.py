"""The shapes of the native API's requests and replies, for the OpenAPI schema.

Request bodies refuse unknown fields (`extra="forbid"`): a field the API does
not take is a 400 naming it, never silently ignored or assigned (T03).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field

DocumentStatus = Literal["queued", "parsing", "embedding", "ready", "failed"]
MessageStatus = Literal[
    "answering", "answered", "not_found", "refused", "stopped", "failed", "interrupted"
]
Rating = Literal["up", "down"]


class Body(Schema):
    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str = Field(description="A short machine reason, e.g. `not_found`.")
    message: str = Field(description="What happened and what to do, for people.")
    param: str | None = Field(
        None, description="The request field at fault, when there is one."
    )


class ErrorOut(Schema):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The error replies a route may give, for the OpenAPI schema."""
    return dict.fromkeys((400, 401, 429, *statuses), ErrorOut)


# --- collections --------------------------------------------------------------------


class GroupOut(Schema):
    id: int
    name: str


class CollectionOut(Schema):
    id: int
    name: str
    slug: str
    description: str
    document_count: int = Field(description="Documents in the collection.")
    ready_count: int = Field(description="Documents that are searchable.")
    reader_groups: list[GroupOut] | None = Field(
        description="Groups whose members may read it; null unless you manage it."
    )
    created_at: datetime
    updated_at: datetime


class CollectionPage(Schema):
    data: list[CollectionOut]
    next_cursor: str | None


class CollectionCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    slug: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[-a-zA-Z0-9_]+$",
        description="Made from the name when omitted.",
    )
    description: str = Field("", max_length=10_000)
    reader_group_ids: list[int] = Field(
        default_factory=list,
        max_length=100,
        description="Groups whose members may read the collection.",
    )


class CollectionUpdate(Body):
    """Only the fields sent change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    reader_group_ids: list[int] | None = Field(None, max_length=100)


# --- documents ----------------------------------------------------------------------


class Progress(Schema):
    done: int = Field(description="Passages embedded so far.")
    total: int = Field(description="Passages to embed; 0 until parsing is done.")


class DocumentError(Schema):
    code: str
    message: str


class DocumentOut(Schema):
    id: int
    collection_id: int
    title: str
    filename: str
    content_type: str
    size_bytes: int
    page_count: int | None
    status: DocumentStatus
    progress: Progress
    error: DocumentError | None = Field(description="Why it failed, when it did.")
    warnings: list[str] = Field(
        description="Notes from parsing, e.g. pages without a text layer."
    )
    attributes: dict[str, Any]
    created_at: datetime
    indexed_at: datetime | None


class DocumentPage(Schema):
    data: list[DocumentOut]
    next_cursor: str | None


class DocumentListQuery(Schema):
    status: DocumentStatus | None = Field(None, description="Only documents in it.")


class UploadOut(Schema):
    created: bool = Field(
        description="False when the same content was already in the collection."
    )
    message: str
    document: DocumentOut


class UploadsOut(Schema):
    data: list[UploadOut]


# --- search -------------------------------------------------------------------------


class SearchIn(Body):
    query: str = Field(min_length=1, max_length=2000)
    collection_ids: list[int] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Search these; omit for every collection you may read.",
    )
    filters: dict[str, Any] | None = Field(
        None,
        description=(
            "Attribute filters, OpenAI's grammar: "
            '`{"type": "eq", "key": "author", "value": "Ada"}`, and '
            '`{"type": "and"|"or", "filters": [...]}`.'
        ),
    )
    limit: int = Field(10, ge=1, le=50)


class PassageOut(Schema):
    chunk_id: int
    document_id: int
    title: str
    collection_id: int
    heading: str
    page_start: int | None
    page_end: int | None
    text: str
    score: float = Field(description="Fused relevance; higher is better.")


class SearchOut(Schema):
    data: list[PassageOut]


# --- asking, threads, feedback -----------------------------------------------------


class AskIn(Body):
    question: str = Field(min_length=1, max_length=20_000)
    collection_ids: list[int] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description=(
            "Ask in these, from now on in this thread; omit to keep the "
            "thread's (a new thread: every collection you may read)."
        ),
    )
    thread_id: int | None = Field(None, description="Continue this conversation.")


class CitationOut(Schema):
    marker: int = Field(description="The [n] the answer cites it by.")
    document_id: int | None
    title: str
    page_start: int | None
    page_end: int | None
    quote: str


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AnswerOut(Schema):
    message_id: int
    thread_id: int
    status: MessageStatus
    answer: str
    refusal: str | None = Field(
        description="Why the content check refused or withheld the answer."
    )
    reason: str = Field(description="Why the answer is missing, stopped or cut off.")
    citations: list[CitationOut]
    usage: Usage


class FeedbackIn(Body):
    rating: Rating
    comment: str = Field("", max_length=2000)


class FeedbackOut(Schema):
    message_id: int
    rating: Rating
    comment: str
    updated_at: datetime


class MessageOut(Schema):
    id: int
    question: str
    answer: str
    status: MessageStatus
    reason: str
    citations: list[CitationOut]
    usage: Usage
    feedback: FeedbackOut | None
    created_at: datetime
    finished_at: datetime | None


class ThreadOut(Schema):
    id: int
    title: str
    collection_ids: list[int] = Field(
        description="The collections it asks in; empty: every one you may read."
    )
    created_at: datetime
    updated_at: datetime


class ThreadDetail(ThreadOut):
    messages: list[MessageOut]


class ThreadPage(Schema):
    data: list[ThreadOut]
    next_cursor: str | None
