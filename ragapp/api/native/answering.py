"""Asking through the API: start the answer, then follow it whole or as SSE.

The answer is written by the background runner (ragapp.answers.runner), as
the web page's is, and read here from the same event log
(ragapp.api.follow). So moderation, the concurrency caps and the record of
the message are the web page's; a question the content check refuses is an
ordinary answer whose status is `refused`, never an error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _

from ragapp.answers import runner
from ragapp.answers.events import CitationAdded, Delta, Finished, Started
from ragapp.answers.models import Message
from ragapp.answers.services import QuestionError
from ragapp.api.callers import Caller
from ragapp.api.exceptions import (
    ApiError,
    AuthenticationError,
    RateLimitedError,
    UnavailableError,
)
from ragapp.api.follow import KeyGoneError, follow
from ragapp.api.limits import StreamSlot
from ragapp.api.native.selectors import access_thread, collections_named
from ragapp.api.native.shapes import usage_out
from ragapp.api.usage import AnswerCharge

MODERATED = frozenset({Message.Status.REFUSED, Message.Status.STOPPED})


def answer_begin(
    *,
    caller: Caller,
    question: str,
    collection_ids: list[int] | None,
    thread_id: int | None,
    charge: AnswerCharge,
) -> Message:
    """Record the question and start its answer; raise before anything is
    recorded when the question, the thread or a collection is not usable."""
    thread = (
        access_thread(caller=caller, thread_id=thread_id)
        if thread_id is not None
        else None
    )
    wanted = collections_named(caller=caller, collection_ids=collection_ids)
    if wanted is None and thread is not None and caller.key_scope is not None:
        # Keep the thread's own scope (within the key's, or the key would
        # not see the thread) rather than widen it to the whole key's.
        wanted = list(thread.collections.values_list("pk", flat=True)) or None
    scope = caller.scope(wanted)
    if scope is not None and not scope:
        # ask() reads an empty scope as "every collection": never for a key.
        raise ApiError(
            _("None of these collections is within this API key's scope."),
            param="collection_ids",
        )
    try:
        return runner.answer_start(
            user=caller.user,
            question=question,
            thread=thread,
            collection_ids=scope,
            on_end=charge.at_end,
        )
    except runner.AnswerBusyError as exc:
        raise RateLimitedError(exc.message, headers={"Retry-After": "5"}) from exc
    except QuestionError as exc:
        raise ApiError(str(exc), param="question") from exc


@dataclass
class AnswerSoFar:
    """What the answer's events have said; `out()` is the AnswerOut reply."""

    message_id: int
    thread_id: int
    status: str = Message.Status.ANSWERING
    text: str = ""
    reason: str = ""
    refusal: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def take(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Apply one event; return the (event, data) to stream for it, if any."""
        kind = payload.get("type")
        if kind == Started.kind:
            return kind, {"message_id": self.message_id, "thread_id": self.thread_id}
        if kind == Delta.kind:
            self.text += payload["text"]
            return kind, {"text": payload["text"]}
        if kind == CitationAdded.kind:
            citation = {
                "marker": payload["marker"],
                "document_id": payload["document_id"],
                "title": payload["document_title"],
                "page_start": payload.get("page_start"),
                "page_end": payload.get("page_end"),
                "quote": payload.get("quote", ""),
            }
            self.citations.append(citation)
            return kind, citation
        if kind == Finished.kind:
            self.status = payload.get("status", Message.Status.FAILED)
            self.reason = payload.get("reason", "")
            self.prompt_tokens = payload.get("prompt_tokens", 0)
            self.completion_tokens = payload.get("completion_tokens", 0)
            if payload.get("retract"):
                # Withheld: what was shown must be hidden, and is not kept.
                self.text, self.citations = "", []
            if self.status in MODERATED:
                self.refusal = self.reason or _(
                    "The content check stopped this answer."
                )
            return kind, self.out()
        return None

    def out(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "status": self.status,
            "answer": self.text,
            "refusal": self.refusal,
            "reason": self.reason,
            "citations": self.citations,
            "usage": usage_out(self.prompt_tokens, self.completion_tokens),
        }


async def answer_whole(
    caller: Caller, message: Message, charge: AnswerCharge
) -> dict[str, Any]:
    """Wait for the answer to end; a failed one (model or content check
    unavailable) is a 503 with its reason."""
    answer = AnswerSoFar(message_id=message.pk, thread_id=message.thread_id)
    try:
        async for payload in follow(message, key_id=caller.key.pk):
            answer.take(payload)
    except KeyGoneError:
        raise AuthenticationError(
            _("The API key stopped working while the answer was written.")
        ) from None
    await sync_to_async(charge.by_request)(answer.tokens)
    if answer.status == Message.Status.FAILED:
        raise UnavailableError(
            answer.reason or _("The answer failed; try again in a minute."),
            code="answer_failed",
        )
    return answer.out()


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event; JSON with non-ASCII escaped, so no text can frame."""
    body = json.dumps(data, ensure_ascii=True, cls=DjangoJSONEncoder)
    return f"event: {event}\ndata: {body}\n\n".encode("ascii")


async def _events(
    caller: Caller, message: Message, charge: AnswerCharge, slot: StreamSlot
) -> AsyncIterator[bytes]:
    answer = AnswerSoFar(message_id=message.pk, thread_id=message.thread_id)
    try:
        async for payload in follow(message, key_id=caller.key.pk):
            taken = answer.take(payload)
            if taken is None:
                continue
            kind, data = taken
            if kind == Finished.kind:
                # Counted before the last bytes, so a client that has read
                # `finished` finds the spend recorded.
                await sync_to_async(charge.by_request)(answer.tokens)
            yield sse(kind, data)
    except KeyGoneError:
        error = {
            "code": "invalid_api_key",
            "message": _("The API key stopped working while the answer streamed."),
        }
        yield sse("error", {"error": error})
    finally:
        slot.release()


def answer_stream(
    caller: Caller, message: Message, charge: AnswerCharge, slot: StreamSlot
) -> StreamingHttpResponse:
    """The answer as SSE: `started`, `delta`s and `citation`s, then `finished`
    carrying the whole reply (an `error` event if the key stops working)."""
    response = StreamingHttpResponse(
        _events(caller, message, charge, slot),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
