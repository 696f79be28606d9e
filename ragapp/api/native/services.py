"""Writes for an API caller, through the services the web pages use.

Each checks the key and the user's role first (`Caller.require_write`), then
calls one service of the owning app and turns its errors into API errors
with messages safe to show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import IO

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ragapp.answers import services as answer_services
from ragapp.answers.models import Feedback, Message, Thread
from ragapp.api.callers import Caller
from ragapp.api.exceptions import ApiError, ConflictError, PermissionDeniedError
from ragapp.documents import services as documents
from ragapp.documents.exceptions import DocumentActionError
from ragapp.documents.models import Collection, Document
from ragapp.documents.selectors import collection_free_slug

HASH_BLOCK = 1024 * 1024


def require_writable_key(caller: Caller) -> None:
    """Refuse a change to the user's own things (threads) through a read-only key."""
    if caller.key.read_only:
        raise PermissionDeniedError(
            _("This API key is read-only; it may search and ask, not change.")
        )


# --- collections --------------------------------------------------------------------


def _groups(ids: Sequence[int], *, param: str) -> list[Group]:
    found = {group.pk: group for group in Group.objects.filter(pk__in=list(ids))}
    for index, pk in enumerate(ids):
        if pk not in found:
            raise ApiError(
                _("No such group: %(id)s") % {"id": pk}, param=f"{param}[{index}]"
            )
    return [found[pk] for pk in dict.fromkeys(ids)]


def _validation_error(exc: ValidationError) -> ApiError:
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.error_dict.items()))
        message = " ".join(m for e in errors for m in e.messages)
        if field == "slug" and any(e.code == "unique" for e in errors):
            return ConflictError(message, param="slug")
        return ApiError(message, param=None if field == "__all__" else field)
    return ApiError(" ".join(exc.messages))


def collection_create_for(
    *,
    caller: Caller,
    name: str,
    slug: str | None,
    description: str,
    reader_group_ids: Sequence[int],
) -> Collection:
    """Create a collection (admins). A key scoped to collections may not:
    what it made would lie outside its scope."""
    caller.require_write("documents.add_collection")
    if caller.key_scope is not None:
        raise PermissionDeniedError(
            _(
                "This API key is limited to some collections, so it cannot "
                "create new ones; use a key without a collection scope."
            )
        )
    groups = _groups(reader_group_ids, param="reader_group_ids")
    try:
        return documents.collection_create(
            name=name,
            slug=slug or collection_free_slug(name=name),
            description=description,
            reader_groups=groups,
            created_by=caller.user,
        )
    except ValidationError as exc:
        raise _validation_error(exc) from None


def collection_update_for(
    *,
    caller: Caller,
    collection: Collection,
    name: str | None,
    description: str | None,
    reader_group_ids: Sequence[int] | None,
) -> Collection:
    """Change a collection's name, description or reader groups (admins).

    Fields left None keep their value; the embedding model and answer
    settings are left alone (the Manage pages change those).
    """
    caller.require_write("documents.change_collection")
    groups = (
        list(collection.reader_groups.all())
        if reader_group_ids is None
        else _groups(reader_group_ids, param="reader_group_ids")
    )
    try:
        documents.collection_update(
            collection=collection,
            name=collection.name if name is None else name,
            description=collection.description if description is None else description,
            reader_groups=groups,
            embedding_model=collection.embedding_model,
            answer_temperature=collection.answer_temperature,
            answer_top_p=collection.answer_top_p,
            answer_max_tokens=collection.answer_max_tokens,
            answer_seed=collection.answer_seed,
        )
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return collection


# --- documents ----------------------------------------------------------------------


def uploads_fingerprint(files: Sequence[IO[bytes]], names: Sequence[str]) -> str:
    """A digest of what an upload request sends: each file's name and content."""
    digest = hashlib.sha256()
    for stream, name in zip(files, names, strict=True):
        content = hashlib.sha256()
        stream.seek(0)
        while block := stream.read(HASH_BLOCK):
            content.update(block)
        stream.seek(0)
        digest.update(f"{len(name)}:{name}:{content.hexdigest()};".encode())
    return digest.hexdigest()


def documents_upload_for(
    *,
    caller: Caller,
    collection: Collection,
    files: Sequence[IO[bytes]],
    names: Sequence[str],
) -> list[documents.UploadOutcome]:
    """Upload files into a collection, each queued or refused with its reason."""
    caller.require_write("documents.add_document")
    if not files:
        raise ApiError(_("Send one or more files as 'files'."), param="files")
    return [
        documents.document_upload(
            collection=collection,
            stream=stream,
            filename=name,
            uploaded_by=caller.user,
        )
        for stream, name in zip(files, names, strict=True)
    ]


DOCUMENT_ACTIONS = {
    "retry": ("documents.change_document", documents.document_retry),
    "reindex": ("documents.change_document", documents.document_reindex),
    "delete": ("documents.delete_document", documents.document_delete),
}


def document_act_for(*, caller: Caller, document: Document, action: str) -> None:
    """Retry, re-index or delete a document (admins); a state that does not
    fit the action (retrying a ready document) is a 409 saying why."""
    permission, apply = DOCUMENT_ACTIONS[action]
    caller.require_write(permission)
    try:
        apply(document=document)
    except DocumentActionError as exc:
        raise ConflictError(str(exc), code=exc.code) from None


# --- threads and feedback ------------------------------------------------------------


def thread_delete_for(*, caller: Caller, thread: Thread) -> None:
    require_writable_key(caller)
    with transaction.atomic():
        answer_services.thread_delete(thread=thread)


RATINGS = {"up": Feedback.Rating.UP, "down": Feedback.Rating.DOWN}


def feedback_set_for(
    *, caller: Caller, message: Message, rating: str, comment: str
) -> Feedback:
    """Rate one of the caller's answers; a read-only key may (it is part of asking)."""
    try:
        return answer_services.feedback_set(
            message=message, user=caller.user, rating=RATINGS[rating], comment=comment
        )
    except answer_services.QuestionError as exc:
        raise ConflictError(str(exc)) from None
