"""Reads for an API caller: what the key's user may read, narrowed by the key.

Each `access_<entity>` raises NotFoundError for missing and forbidden alike,
so a guessed id of another user's object, or of one outside the key's scope,
tells nothing. The access rules are the web pages' selectors'; this only
narrows them by the key.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext as _

from ragapp.answers import selectors as answer_selectors
from ragapp.answers.models import Citation, Message, Thread
from ragapp.api.callers import Caller
from ragapp.api.exceptions import NotFoundError
from ragapp.documents.models import Collection, Document
from ragapp.documents.selectors import (
    collection_list_readable,
    document_get_readable,
)


def manages_collections(caller: Caller) -> bool:
    """Whether the caller's user runs collections (the Admins role)."""
    user = caller.user
    return bool(user.is_superuser or user.has_perm("documents.change_collection"))


def collection_list_for(*, caller: Caller) -> QuerySet[Collection]:
    """The collections the caller may read, counted (`document_count`, `ready_count`)."""
    return collection_list_readable(user=caller.user).filter(
        pk__in=caller.collections().values("pk")
    )


def access_collection(*, caller: Caller, collection_id: int) -> Collection:
    collection = (
        collection_list_for(caller=caller)
        .prefetch_related("reader_groups")
        .filter(pk=collection_id)
        .first()
    )
    if collection is None:
        raise NotFoundError(
            _("No such collection: %(id)s") % {"id": collection_id},
            param="collection_id",
        )
    return collection


def collections_named(
    *, caller: Caller, collection_ids: list[int] | None, param: str = "collection_ids"
) -> list[int] | None:
    """Check that the caller may read every one of `collection_ids`.

    None stays None (every collection the caller may read). An id it may
    not read is a 404 naming its place in the list, like an unknown one.
    """
    if collection_ids is None:
        return None
    readable = set(
        caller.collections().filter(pk__in=collection_ids).values_list("pk", flat=True)
    )
    for index, pk in enumerate(collection_ids):
        if pk not in readable:
            raise NotFoundError(
                _("No such collection: %(id)s") % {"id": pk},
                param=f"{param}[{index}]",
            )
    return list(dict.fromkeys(collection_ids))


def document_list_for(
    *, caller: Caller, collection: Collection, status: str | None = None
) -> QuerySet[Document]:
    """The documents of a collection the caller may read (checked by the caller)."""
    documents = Document.objects.filter(collection=collection)
    if status:
        documents = documents.filter(status=status)
    return documents


def access_document(*, caller: Caller, document_id: int) -> Document:
    try:
        document = document_get_readable(user=caller.user, document_id=document_id)
    except Document.DoesNotExist:
        document = None
    scope = caller.key_scope
    if document is None or (scope is not None and document.collection_id not in scope):
        raise NotFoundError(
            _("No such document: %(id)s") % {"id": document_id}, param="document_id"
        )
    return document


def thread_list_for(*, caller: Caller) -> QuerySet[Thread]:
    """The user's threads, newest activity first; for a scoped key, its own kind.

    A key limited to some collections sees only threads that ask in those
    alone: a thread over every collection may quote others. (A scoped key's
    questions set their thread's scope to the key's, so it sees what it asked.)
    """
    threads = answer_selectors.thread_list(user=caller.user)
    scope = caller.key_scope
    if scope is None:
        return threads
    through = Thread.collections.through.objects.filter(thread_id=OuterRef("pk"))
    return threads.filter(Exists(through)).exclude(
        Exists(through.exclude(collection_id__in=scope))
    )


def access_thread(*, caller: Caller, thread_id: int) -> Thread:
    thread = thread_list_for(caller=caller).filter(pk=thread_id).first()
    if thread is None:
        raise NotFoundError(
            _("No such thread: %(id)s") % {"id": thread_id}, param="thread_id"
        )
    return thread


def access_message(*, caller: Caller, message_id: int) -> Message:
    message = (
        Message.objects.filter(
            pk=message_id, thread__in=thread_list_for(caller=caller).values("pk")
        )
        .select_related("thread", "feedback")
        .first()
    )
    if message is None:
        raise NotFoundError(
            _("No such message: %(id)s") % {"id": message_id}, param="message_id"
        )
    return message


def thread_messages_for(*, caller: Caller, thread: Thread) -> list[Message]:
    """The thread's messages, each with the citations the caller may still see.

    The user's rule (ragapp.answers.selectors), narrowed by the key's scope.
    """
    messages = list(answer_selectors.thread_messages(thread=thread, reader=caller.user))
    scope = caller.key_scope
    if scope is not None:
        for message in messages:
            message.visible_citations = [
                c for c in message.visible_citations if _in_scope(c, scope)
            ]
    return messages


def _in_scope(citation: Citation, scope: list[int]) -> bool:
    return citation.document is not None and citation.document.collection_id in scope
