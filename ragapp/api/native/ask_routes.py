"""POST /api/ask: a grounded answer with citations, whole or streamed as SSE."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router

from ragapp.api.limits import StreamSlot
from ragapp.api.native.answering import answer_begin, answer_stream, answer_whole
from ragapp.api.native.schemas import AnswerOut, AskIn, error_responses
from ragapp.api.usage import AnswerCharge

router = Router(tags=["ask"])

STREAM = Query(False, description="Stream the answer as server-sent events.")

STREAM_DESCRIPTION = (
    "With `?stream=true` or `Accept: text/event-stream`: server-sent events "
    "`started` {message_id, thread_id}, `delta` {text}, `citation` "
    "{marker, document_id, title, page_start, page_end, quote}, then "
    "`finished` with the whole AnswerOut (whose `answer` is empty when the "
    "content check withheld what was streamed: hide it), or `error`."
)


def _wants_stream(request: HttpRequest, stream: bool) -> bool:
    return stream or "text/event-stream" in request.headers.get("Accept", "")


@router.post(
    "/ask",
    response={200: AnswerOut, **error_responses(404, 503)},
    openapi_extra={
        "responses": {
            200: {
                "description": "The answer; " + STREAM_DESCRIPTION,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
    summary="Ask a question",
)
async def ask(
    request: HttpRequest,
    body: AskIn,
    stream: bool = STREAM,
) -> dict[str, Any] | StreamingHttpResponse:
    """Answer from the documents this key may read, citing them.

    A question the content check refuses comes back as an answer whose
    `status` is `refused` and whose `refusal` says why. Continue a
    conversation with `thread_id`.
    """
    caller = request.auth
    streaming = _wants_stream(request, stream)
    slot = await sync_to_async(StreamSlot)(caller.key) if streaming else None
    charge = AnswerCharge(request)
    try:
        message = await sync_to_async(answer_begin)(
            caller=caller,
            question=body.question,
            collection_ids=body.collection_ids,
            thread_id=body.thread_id,
            charge=charge,
        )
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    if slot is None:
        return await answer_whole(caller, message, charge)
    return answer_stream(caller, message, charge, slot)
