"""Pages for staff and admins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from ragapp.answers.events import AnswerEvent, encode_sse
from ragapp.answers.services import QuestionError, ask
from ragapp.answers.streaming import in_own_thread
from ragapp.answers.threads import threads_of
from ragapp.documents.selectors import collection_list_readable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """List the collections the signed-in user may ask questions in."""
    collections = collection_list_readable(user=request.user)
    return render(request, "web/home.html", {"collections": collections})


@login_required
@require_GET
def ask_page(request: HttpRequest, thread_id: int | None = None) -> HttpResponse:
    """The question box, with the thread's earlier turns when continuing one."""
    thread = None
    if thread_id is not None:
        thread = get_object_or_404(threads_of(request.user), pk=thread_id)
    context = {
        "thread": thread,
        "messages_so_far": (
            thread.messages.prefetch_related("citations") if thread else []
        ),
        "threads": threads_of(request.user)[:20],
        "collections": collection_list_readable(user=request.user),
    }
    return render(request, "web/ask.html", context)


@login_required
@require_POST
def ask_stream(request: HttpRequest) -> HttpResponse:
    """Stream the answer to a posted question as server-sent events."""
    thread = None
    if thread_id := request.POST.get("thread"):
        thread = threads_of(request.user).filter(pk=_int(thread_id)).first()
        if thread is None:
            raise Http404
    collection = _int(request.POST.get("collection", ""))
    try:
        events = ask(
            user=request.user,
            question=request.POST.get("question", ""),
            thread=thread,
            collection_ids=None if collection is None else [collection],
        )
    except QuestionError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    # Under ASGI (uvicorn, `make run`) the body must be an async iterator or
    # Django buffers it whole; WSGI servers and the test client iterate it.
    body = (
        _sse_async(in_own_thread(events))
        if isinstance(request, ASGIRequest)
        else _sse(events)
    )
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let nginx pass each event on at once
    return response


def _sse(events: Iterator[AnswerEvent]) -> Iterator[bytes]:
    for event in events:
        yield encode_sse(event)


async def _sse_async(events: AsyncIterator[AnswerEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield encode_sse(event)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
