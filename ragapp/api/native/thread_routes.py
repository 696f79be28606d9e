"""/api/threads and feedback: the caller's conversations, and rating answers."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Status

from ragapp.api.native import selectors, services
from ragapp.api.native.pages import PageQuery, keyset_page
from ragapp.api.native.schemas import (
    FeedbackIn,
    FeedbackOut,
    ThreadDetail,
    ThreadPage,
    error_responses,
)
from ragapp.api.native.shapes import feedback_out, message_out, thread_out

router = Router(tags=["threads"])


@router.get(
    "/threads",
    response={200: ThreadPage, **error_responses()},
    summary="List threads",
)
def threads_list(request: HttpRequest, page: Query[PageQuery]) -> dict:
    """Your conversations, the most recently active first."""
    rows = selectors.thread_list_for(caller=request.auth).prefetch_related(
        "collections"
    )
    found = keyset_page(
        rows,
        order=("-updated_at", "-pk"),
        limit=page.limit,
        cursor=page.cursor,
        salt="threads",
    )
    return {
        "data": [thread_out(t) for t in found.items],
        "next_cursor": found.next_cursor,
    }


@router.get(
    "/threads/{thread_id}",
    response={200: ThreadDetail, **error_responses(404)},
    summary="Retrieve a thread",
)
def threads_retrieve(request: HttpRequest, thread_id: int) -> dict:
    """The conversation with its messages, citations and feedback.

    Citations of documents you may no longer read are left out.
    """
    caller = request.auth
    thread = selectors.access_thread(caller=caller, thread_id=thread_id)
    messages = selectors.thread_messages_for(caller=caller, thread=thread)
    return {**thread_out(thread), "messages": [message_out(m) for m in messages]}


@router.delete(
    "/threads/{thread_id}",
    response={204: None, **error_responses(403, 404)},
    summary="Delete a thread",
)
def threads_delete(request: HttpRequest, thread_id: int) -> Status:
    caller = request.auth
    thread = selectors.access_thread(caller=caller, thread_id=thread_id)
    services.thread_delete_for(caller=caller, thread=thread)
    return Status(204, None)


@router.post(
    "/messages/{message_id}/feedback",
    response={200: FeedbackOut, **error_responses(404, 409)},
    summary="Rate an answer",
)
def messages_feedback(request: HttpRequest, message_id: int, body: FeedbackIn) -> dict:
    """Thumbs up or down on one of your answers, with an optional comment;
    sending again replaces it."""
    caller = request.auth
    message = selectors.access_message(caller=caller, message_id=message_id)
    feedback = services.feedback_set_for(
        caller=caller, message=message, rating=body.rating, comment=body.comment
    )
    return feedback_out(feedback)
