"""The answer stream a turn attaches to: server-rendered HTML over SSE for htmx.

A reader (re)attaches at any time: a fresh connection first gets what was
released so far as one `snapshot` (swapped in whole, so a replay never
doubles text), then each new piece as `delta` and `citation` fragments; a
reconnect that sends `Last-Event-ID` resumes after it. The last event, `end`,
carries the finished turn rendered from the database (Markdown answer,
citations, feedback), which replaces the live one.

The reader holds no thread while it waits: it blocks on Redis from the event
loop. Every few seconds it checks that its session still stands (a signed
out or disabled user's stream ends, T04) and that the writer is alive (an
answer whose process died is ended here, not left "answering").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from ragapp.answers import eventlog, runner
from ragapp.answers import selectors as answer_selectors
from ragapp.answers.events import CitationAdded, Delta, Finished
from ragapp.answers.models import Message
from ragapp.web.turns import turn_context

# How long one blocking read waits before the reader re-checks its session.
CHECK_SECONDS = 2.5
RETRY_MS = 2000


@require_GET
async def message_stream(request: HttpRequest, message_id: int) -> HttpResponse:
    """Stream one of the signed-in user's answers as HTML fragments."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse(status=401)
    try:
        message = await sync_to_async(answer_selectors.message_get)(
            user=user, message_id=message_id
        )
    except answer_selectors.NotFoundError:
        raise Http404 from None
    last_id = request.headers.get("Last-Event-ID", "")
    body = _events(
        request.session, user.pk, message, last_id if eventlog.valid_id(last_id) else ""
    )
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let nginx pass each event on at once
    return response


async def _events(
    session: SessionBase, user_id: int, message: Message, resume_after: str
) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    reader = eventlog.AsyncReader(message)
    try:
        after = resume_after or "0"
        if not resume_after:
            snapshot = await sync_to_async(_snapshot)(message)
            if snapshot is not None:
                after, frames, ended = snapshot
                for frame in frames:
                    yield frame
                if ended:
                    return
        last_check = time.monotonic()
        while True:
            batch = await reader.next_batch(after, block_ms=int(CHECK_SECONDS * 1000))
            for event in batch:
                after = event.id
                frame = await sync_to_async(_frame)(message, event)
                yield frame
                if event.kind == Finished.kind:
                    return
            if time.monotonic() - last_check < CHECK_SECONDS and batch:
                continue
            last_check = time.monotonic()
            verdict = await sync_to_async(_check)(session, user_id, message.pk)
            if verdict == "gone":
                yield _sse("end", _signed_out_fragment(message), event_id=after)
                return
            if verdict == "ended" and not await reader.exists():
                yield await sync_to_async(_end_frame)(message, after)
                return
            yield b": still writing\n\n"
    finally:
        await reader.close()


def _snapshot(message: Message) -> tuple[str, list[bytes], bool] | None:
    """What a fresh reader sees at once: the text and citations so far, or the end."""
    logged = list(eventlog.read(message))
    if not logged:
        message.refresh_from_db()
        if message.status != Message.Status.ANSWERING:
            return "0", [_end_frame(message, "0")], True
        return None
    last = logged[-1].id
    if any(event.kind == Finished.kind for event in logged):
        return last, [_end_frame(message, last)], True
    text = "".join(e.payload.get("text", "") for e in logged if e.kind == Delta.kind)
    cited = [e.payload for e in logged if e.kind == CitationAdded.kind]
    frames = [
        _sse("snapshot", _render("delta", message, text=text), event_id=last),
        _sse(
            "citations", _render("live-citations", message, cited=cited), event_id=last
        ),
    ]
    return last, frames, False


def _frame(message: Message, event: eventlog.LoggedEvent) -> bytes:
    if event.kind == Delta.kind:
        html = _render("delta", message, text=event.payload.get("text", ""))
        return _sse("delta", html, event_id=event.id)
    if event.kind == CitationAdded.kind:
        html = _render("live-citation", message, c=event.payload)
        return _sse("citation", html, event_id=event.id)
    if event.kind == Finished.kind:
        return _end_frame(message, event.id)
    return f"id: {event.id}\n: {event.kind}\n\n".encode()


def _end_frame(message: Message, event_id: str) -> bytes:
    """The finished turn, as the database has it."""
    fresh = answer_selectors.message_get(
        user=message.thread.user, message_id=message.pk
    )
    html = render_to_string(
        "web/ask.html#turn", {"t": turn_context(fresh, user=fresh.thread.user)}
    )
    return _sse("end", html, event_id=event_id)


def _check(session: SessionBase, user_id: int, message_id: int) -> str:
    """ "gone" (signed out or disabled), "ended", or "live"; ends dead writers."""
    active = get_user_model().objects.filter(pk=user_id, is_active=True).exists()
    if not active or not session.session_key or not session.exists(session.session_key):
        return "gone"
    message = Message.objects.select_related("thread").get(pk=message_id)
    if message.status != Message.Status.ANSWERING:
        return "ended"
    if runner.is_stale(message):
        runner.message_interrupt(
            message,
            _("The answer was cut off: the server writing it stopped. Ask again."),
        )
    return "live"


def _render(partial: str, message: Message, **context: object) -> str:
    return render_to_string(
        f"web/stream.html#{partial}", {"message": message, **context}
    )


def _signed_out_fragment(message: Message) -> str:
    return render_to_string("web/stream.html#signed-out", {"message": message})


def _sse(event: str, html: str, *, event_id: str) -> bytes:
    """One event whose data is an HTML fragment, a `data:` line per line."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = "".join(f"data: {line}\n" for line in lines)
    return f"event: {event}\nid: {event_id}\n{data}\n".encode()
