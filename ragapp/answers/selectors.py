"""Reads on threads, messages and citations, with who-may-see-what in the query.

A conversation is its owner's. A citation is shown only while its reader may
still read the collection it came from and the document still exists: a
stored quote is a copy, and a copy must not outlive the access that allowed
it. A withheld answer has nothing to show (ragapp.answers.recording).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from ragapp.answers.models import Citation, Message, Thread
from ragapp.documents.selectors import collection_ids_readable


class NotFoundError(LookupError):
    """Missing or not the reader's: the same answer for both, so ids leak nothing."""


def thread_list(*, user: AbstractBaseUser, query: str = "") -> QuerySet[Thread]:
    """The user's threads, newest first, matching `query` in a title or question."""
    threads = Thread.objects.filter(user=user).order_by("-updated_at", "-pk")
    query = " ".join(query.split())[:200]
    if query:
        asked = Message.objects.filter(thread=OuterRef("pk"), question__icontains=query)
        threads = threads.filter(Q(title__icontains=query) | Exists(asked))
    return threads


def thread_get(*, user: AbstractBaseUser, thread_id: int) -> Thread:
    thread = Thread.objects.filter(user=user, pk=thread_id).first()
    if thread is None:
        raise NotFoundError(thread_id)
    return thread


def citations_visible(*, user: AbstractBaseUser) -> QuerySet[Citation]:
    """Citations whose document still exists in a collection `user` may read."""
    return Citation.objects.filter(
        message__withheld=False,
        document__isnull=False,
        document__collection_id__in=collection_ids_readable(user=user),
    )


def thread_messages(*, thread: Thread, reader: AbstractBaseUser) -> QuerySet[Message]:
    """The thread's messages with the citations `reader` may still see."""
    return thread.messages.select_related("feedback").prefetch_related(
        Prefetch(
            "citations",
            queryset=citations_visible(user=reader).select_related("document"),
            to_attr="visible_citations",
        )
    )


def message_get(*, user: AbstractBaseUser, message_id: int) -> Message:
    """One of the user's own messages, with the citations they may still see."""
    message = (
        Message.objects.filter(thread__user=user, pk=message_id)
        .select_related("thread", "feedback")
        .prefetch_related(
            Prefetch(
                "citations",
                queryset=citations_visible(user=user).select_related("document"),
                to_attr="visible_citations",
            )
        )
        .first()
    )
    if message is None:
        raise NotFoundError(message_id)
    return message


def citation_get(*, user: AbstractBaseUser, message_id: int, marker: int) -> Citation:
    """A citation of one of the user's answers, if they may still read its source."""
    citation = (
        citations_visible(user=user)
        .filter(message_id=message_id, marker=marker, message__thread__user=user)
        .select_related("document", "chunk", "message")
        .first()
    )
    if citation is None:
        raise NotFoundError((message_id, marker))
    return citation
