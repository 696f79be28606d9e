"""What an answer stream says, in order: started, deltas and citations, finished.

The web page, the native API and the OpenAI-compatible surface all consume
these same events; `encode_sse` is the one place they become bytes on the
wire. Every payload is JSON with non-ASCII escaped, so no text a document or
model produces (newlines, "data:", "event: done", lone surrogates) can end an
event early or forge another one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Started:
    kind: ClassVar[str] = "started"
    message_id: int
    thread_id: int
    answerer: str


@dataclass(frozen=True)
class Delta:
    kind: ClassVar[str] = "delta"
    text: str


@dataclass(frozen=True)
class CitationAdded:
    kind: ClassVar[str] = "citation"
    marker: int
    chunk_id: int
    document_id: int
    document_title: str
    page_start: int | None
    page_end: int | None
    quote: str


@dataclass(frozen=True)
class Finished:
    """The last event. `reason` says in plain words why an answer is missing,
    stopped or cut off; `retract` tells a client to hide what it showed (an
    answer stopped by moderation)."""

    kind: ClassVar[str] = "finished"
    message_id: int
    status: str
    reason: str = ""
    retract: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


AnswerEvent = Started | Delta | CitationAdded | Finished


def event_payload(event: AnswerEvent) -> dict:
    return {"type": event.kind, **asdict(event)}


def encode_sse(event: AnswerEvent) -> bytes:
    """One server-sent event; the JSON escapes every character that could frame."""
    data = json.dumps(event_payload(event), ensure_ascii=True)
    return f"event: {event.kind}\ndata: {data}\n\n".encode("ascii")
