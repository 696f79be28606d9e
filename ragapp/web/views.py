"""Pages for staff: ask, read answers as they are written, open their sources.

Every page reads without JavaScript; htmx makes it live. A question posts as
a form; with htmx the reply is the new turn, whose answer area attaches to
the message's event stream (ragapp.web.streams), otherwise the browser is
sent to the thread page. Sources open in a side panel (htmx) or as a page.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from ragapp.answers import selectors as answer_selectors
from ragapp.answers.models import Message
from ragapp.answers.runner import AnswerBusyError, answer_start, answer_stop
from ragapp.answers.services import (
    QuestionError,
    feedback_set,
    thread_delete,
    thread_rename,
)
from ragapp.documents.models import Document
from ragapp.documents.selectors import collection_list_readable, document_get_readable
from ragapp.web import sources
from ragapp.web.turns import turn_context


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """List the collections the signed-in user may ask questions in."""
    collections = collection_list_readable(user=request.user)
    return render(request, "web/home.html", {"collections": collections})


@login_required
@require_GET
def ask_page(request: HttpRequest, thread_id: int | None = None) -> HttpResponse:
    """The conversation: earlier turns, the question box and the thread's scope."""
    thread = _thread_or_404(request, thread_id) if thread_id is not None else None
    collections = list(collection_list_readable(user=request.user))
    scope = set(thread.collections.values_list("pk", flat=True)) if thread else set()
    turns = (
        [
            turn_context(m, user=request.user)
            for m in answer_selectors.thread_messages(
                thread=thread, reader=request.user
            )
        ]
        if thread
        else []
    )
    context = {
        "thread": thread,
        "turns": turns,
        "answering": any(
            t["message"].status == Message.Status.ANSWERING for t in turns
        ),
        "collections": collections,
        "scope": [c for c in collections if c.pk in scope],
        "scope_ids": scope,
        "threads": answer_selectors.thread_list(user=request.user)[:50],
        "thread_query": "",
        # Admins' reads of this conversation, shown to its owner.
        "reads": thread.reads.all()[:20] if thread else [],
    }
    return render(request, "web/ask.html", context)


@login_required
@require_POST
def ask_submit(request: HttpRequest) -> HttpResponse:
    """Start answering a question; reply with the new turn (htmx) or its thread."""
    thread = None
    if thread_id := _int(request.POST.get("thread")):
        thread = _thread_or_404(request, thread_id)
    # The picker always shows the scope the next question will search; what
    # it sends is the thread's scope from now on (shown as chips).
    picked = [pk for v in request.POST.getlist("collections") if (pk := _int(v))]
    try:
        message = answer_start(
            user=request.user,
            question=request.POST.get("question", ""),
            thread=thread,
            collection_ids=picked if "scope" in request.POST else None,
        )
    except (QuestionError, AnswerBusyError) as exc:
        return _ask_refused(request, str(exc), thread_id=thread.pk if thread else None)
    if not request.htmx:
        return HttpResponseRedirect(
            reverse("web:thread", args=[message.thread_id]) + f"#turn-{message.pk}"
        )
    message = answer_selectors.message_get(user=request.user, message_id=message.pk)
    context = {
        "t": turn_context(message, user=request.user),
        "new_thread": thread is None,
        "thread": message.thread,
        "threads": answer_selectors.thread_list(user=request.user)[:50],
    }
    response = render(request, "web/ask.html#turn-posted", context)
    if thread is None:
        response["HX-Push-Url"] = reverse("web:thread", args=[message.thread_id])
    return response


def _ask_refused(
    request: HttpRequest, reason: str, *, thread_id: int | None
) -> HttpResponse:
    """Say plainly why the question was not taken, keeping what was typed."""
    if request.htmx:
        response = render(request, "web/ask.html#ask-error", {"error": reason})
        return reswap(retarget(response, "#ask-error"), "outerHTML")
    flash.error(request, reason)
    if thread_id:
        return HttpResponseRedirect(reverse("web:thread", args=[thread_id]))
    return HttpResponseRedirect(reverse("web:ask"))


@login_required
@require_GET
def message_turn(request: HttpRequest, message_id: int) -> HttpResponse:
    """One turn as it stands (the stream's last word, and for readers without JS)."""
    message = _message_or_404(request, message_id)
    if not request.htmx:
        return HttpResponseRedirect(
            reverse("web:thread", args=[message.thread_id]) + f"#turn-{message.pk}"
        )
    context = {"t": turn_context(message, user=request.user)}
    return render(request, "web/ask.html#turn", context)


@login_required
@require_POST
def message_stop(request: HttpRequest, message_id: int) -> HttpResponse:
    """Stop an answer being written; what was released so far is kept."""
    message = _message_or_404(request, message_id)
    if message.status == Message.Status.ANSWERING:
        answer_stop(message=message, reason=_("You stopped the answer."))
    if request.htmx:
        return HttpResponse(status=204)
    return HttpResponseRedirect(reverse("web:thread", args=[message.thread_id]))


@login_required
@require_POST
def message_feedback(request: HttpRequest, message_id: int) -> HttpResponse:
    """Thumbs up or down on an answer, with an optional comment."""
    message = _message_or_404(request, message_id)
    error = ""
    try:
        feedback_set(
            message=message,
            user=request.user,
            rating=_int(request.POST.get("rating")) or 0,
            comment=request.POST.get("comment", ""),
        )
    except QuestionError as exc:
        error = str(exc)
    if not request.htmx:
        if error:
            flash.error(request, error)
        else:
            flash.success(request, _("Thank you for the feedback."))
        return HttpResponseRedirect(
            reverse("web:thread", args=[message.thread_id]) + f"#turn-{message.pk}"
        )
    message = answer_selectors.message_get(user=request.user, message_id=message.pk)
    context = {
        "t": turn_context(message, user=request.user),
        "feedback_error": error,
        "feedback_saved": not error,
    }
    return render(request, "web/ask.html#feedback", context)


# --- threads ---------------------------------------------------------------------


@login_required
@require_GET
def thread_list(request: HttpRequest) -> HttpResponse:
    """The user's threads, newest first, searched by title or question."""
    query = request.GET.get("q", "")
    context = {
        "threads": answer_selectors.thread_list(user=request.user, query=query)[:100],
        "thread_query": query,
        "thread": None,
    }
    if request.htmx:
        return render(request, "web/ask.html#thread-list", context)
    return render(request, "web/threads.html", context)


@login_required
@require_POST
def thread_rename_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread_or_404(request, thread_id)
    thread_rename(thread=thread, title=request.POST.get("title", ""))
    flash.success(request, _("Conversation renamed."))
    return HttpResponseRedirect(reverse("web:thread", args=[thread.pk]))


@login_required
@require_POST
def thread_delete_view(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = _thread_or_404(request, thread_id)
    thread_delete(thread=thread)
    flash.success(request, _("Conversation deleted."))
    return HttpResponseRedirect(reverse("web:ask"))


# --- sources -----------------------------------------------------------------------


@login_required
@require_GET
def citation_view(request: HttpRequest, message_id: int, marker: int) -> HttpResponse:
    """A cited source: title, pages, quote, the page image or the passage in context."""
    citation = _citation_or_404(request, message_id, marker)
    context = sources.citation_context(citation)
    if request.htmx:
        return render(request, "web/source.html#panel", context)
    return render(request, "web/source.html", context)


@login_required
@require_GET
def citation_page_image(
    request: HttpRequest, message_id: int, marker: int, page: int
) -> HttpResponse:
    """The cited PDF page as a PNG, the quoted passage highlighted."""
    citation = _citation_or_404(request, message_id, marker)
    return sources.page_image_response(citation, page=page)


@login_required
@require_GET
def document_file(request: HttpRequest, document_id: int) -> HttpResponse:
    """The original file: PDFs open in the browser's viewer, the rest download."""
    return sources.original_file_response(
        _document_or_404(request, document_id), download="download" in request.GET
    )


@login_required
@require_GET
def document_passages(request: HttpRequest, document_id: int) -> HttpResponse:
    """The document's text, passage by passage, the cited one highlighted."""
    document = _document_or_404(request, document_id)
    chunk_id = _int(request.GET.get("chunk"))
    return render(
        request,
        "web/document.html",
        sources.document_context(document, highlighted_chunk=chunk_id),
    )


# --- helpers -----------------------------------------------------------------------


def _thread_or_404(request: HttpRequest, thread_id: int):  # noqa: ANN202
    try:
        return answer_selectors.thread_get(user=request.user, thread_id=thread_id)
    except answer_selectors.NotFoundError:
        raise Http404 from None


def _message_or_404(request: HttpRequest, message_id: int) -> Message:
    try:
        return answer_selectors.message_get(user=request.user, message_id=message_id)
    except answer_selectors.NotFoundError:
        raise Http404 from None


def _citation_or_404(request: HttpRequest, message_id: int, marker: int):  # noqa: ANN202
    try:
        return answer_selectors.citation_get(
            user=request.user, message_id=message_id, marker=marker
        )
    except answer_selectors.NotFoundError:
        raise Http404 from None


def _document_or_404(request: HttpRequest, document_id: int) -> Document:
    try:
        return document_get_readable(user=request.user, document_id=document_id)
    except Document.DoesNotExist:
        raise Http404 from None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
