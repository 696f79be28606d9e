"""What a turn of a conversation shows: the answer rendered, its state in words.

Each way an answer can end has a sentence a staff member understands; none
shows a stack trace or raw JSON. The answer text is rendered by
ragapp.web.rendering (Markdown for a model, quotations for the extractive
answerer), both sanitised; nothing here marks raw text safe.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from ragapp.answers.models import Message
from ragapp.documents.models import Collection
from ragapp.web.rendering import render_answer, render_extractive


def state_text(message: Message) -> str:
    """The turn's state in plain words, or "" for a good answer."""
    status = Message.Status
    if message.status == status.ANSWERING:
        return _("Writing the answer…")
    if message.status == status.NOT_FOUND:
        return _("Not in your documents.")
    if message.status == status.REFUSED:
        return message.status_reason or _("This question was not answered.")
    if message.status == status.STOPPED or message.withheld:
        return message.status_reason or _("The answer was withheld.")
    if message.status in (status.FAILED, status.INTERRUPTED):
        return message.status_reason or _("The answer could not be completed.")
    return ""


def answer_html(message: Message, *, links: bool = True) -> SafeString:
    """The answer as sanitised HTML, its markers linked to their sources."""
    cited = {c.marker for c in getattr(message, "visible_citations", [])}

    def href(marker: int) -> str | None:
        if not links or marker not in cited:
            return None
        return reverse("web:citation", args=[message.pk, marker])

    if message.withheld or not message.answer:
        return SafeString("")
    if message.answerer == Message.Answerer.EXTRACTIVE:
        return render_extractive(message.answer, citation_href=href)
    return render_answer(message.answer, citation_href=href)


def turn_context(
    message: Message, *, user: AbstractBaseUser, readonly: bool = False
) -> dict:
    """Everything the turn templates need for one message.

    `readonly` is an admin's audited view of someone else's turn: no
    feedback, no stop, and citation markers as plain text (sources open
    only for their asker).
    """
    searched = (message.retrieval_trace or {}).get("collections")
    names = []
    if searched:
        names = list(
            Collection.objects.filter(pk__in=searched).values_list("name", flat=True)
        )
    status = Message.Status
    return {
        "message": message,
        "answering": message.status == status.ANSWERING,
        "answer_html": answer_html(message, links=not readonly),
        "readonly": readonly,
        "citations": getattr(message, "visible_citations", []),
        "state": state_text(message),
        "state_kind": _state_kind(message),
        "extractive": message.answerer == Message.Answerer.EXTRACTIVE,
        "searched": names,
        "can_rate": not readonly
        and message.status != status.ANSWERING
        and not message.withheld,
        "feedback": getattr(message, "feedback", None),
    }


def _state_kind(message: Message) -> str:
    """A CSS hook for the state: ok, info (not found), warn (cut off), error."""
    status = Message.Status
    if message.status in (status.ANSWERED, status.ANSWERING):
        return "ok"
    if message.status == status.NOT_FOUND:
        return "info"
    if message.status == status.INTERRUPTED and not message.withheld:
        return "warn"
    return "error"
