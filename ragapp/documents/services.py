"""Writes on collections and documents: upload, retry, re-index, delete."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from ragapp.documents.exceptions import DocumentActionError
from ragapp.documents.models import Collection, Document
from ragapp.documents.parsing import (
    SUPPORTED_TYPES,
    ParseError,
    UnsupportedTypeError,
    sniff_content_type,
)
from ragapp.providers.catalog import embedding_dimensions
from ragapp.retrieval.lexicon import lexicon_apply

logger = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
HASH_BLOCK = 1024 * 1024
Status = Document.Status

DEMO_COLLECTION_SLUG = "ragapp-docs"


@transaction.atomic
def collection_create(
    *,
    name: str,
    slug: str,
    description: str = "",
    reader_groups: list[Group] | None = None,
    created_by: AbstractBaseUser | None = None,
    embedding_model: str = "",
    answer_temperature: float | None = None,
    answer_top_p: float | None = None,
    answer_max_tokens: int | None = None,
    answer_seed: int | None = None,
) -> Collection:
    """Create a collection that `reader_groups` may read.

    `embedding_model` empty means the configured default; the answer
    settings left as None use the chat model's defaults.
    """
    collection = Collection(
        name=name,
        slug=slug,
        description=description,
        created_by=created_by,
        answer_temperature=answer_temperature,
        answer_top_p=answer_top_p,
        answer_max_tokens=answer_max_tokens,
        answer_seed=answer_seed,
    )
    if embedding_model:
        collection.embedding_model = embedding_model
        collection.embedding_dimensions = embedding_dimensions(embedding_model)
    collection.full_clean()
    collection.save()
    if reader_groups:
        collection.reader_groups.set(reader_groups)
    return collection


def demo_collection_ensure(*, reader_groups: list[Group]) -> Collection:
    """Return the demo collection, creating it on the first run.

    Its documents are ragapp's own docs (README and docs/), loaded by the
    ingestion pipeline (TODO #4); nothing from elsewhere is copied in.
    """
    existing = Collection.objects.filter(slug=DEMO_COLLECTION_SLUG).first()
    if existing:
        return existing
    return collection_create(
        name="ragapp documentation",
        slug=DEMO_COLLECTION_SLUG,
        description="How to run, configure and use ragapp: its own documentation.",
        reader_groups=reader_groups,
    )


@dataclass(frozen=True)
class UploadOutcome:
    """What became of one uploaded file."""

    document: Document
    created: bool  # False: the same content was already in the collection

    @property
    def message(self) -> str:
        """Say in one sentence what happened, for the uploader."""
        # Quoted, so a sentence-casing template cannot alter the file name.
        name = f"\u201c{self.document.original_filename or self.document.title}\u201d"
        if not self.created:
            return (
                f"{name}: already in the collection as \u201c{self.document.title}"
                "\u201d; not indexed twice."
            )
        if self.document.status == Status.FAILED:
            return f"{name}: rejected. {self.document.error_message}"
        return f"{name}: queued for indexing."


def clean_filename(name: str) -> str:
    """Keep the last path component of a client file name, as display text only.

    Client names arrive with directories, `..`, control characters and
    right-to-left overrides; none of it reaches the filesystem (files are
    stored under server-made names), but it is still shown to people.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/")
    name = PurePosixPath(name).name
    name = "".join(
        ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs"}
    ).strip()
    if name in {"", ".", ".."}:
        name = "untitled"
    return name[:255]


def _hash_and_size(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    while block := stream.read(HASH_BLOCK):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    return digest.hexdigest(), size


def _rejection(stream: IO[bytes], size: int, filename: str) -> tuple[str, str, str]:
    """Return (content type, error code, message); code is "" when acceptable."""
    limit = settings.MAX_UPLOAD_BYTES
    if size > limit:
        return (
            "",
            "too_large",
            f"The file is {size / 1_048_576:.1f} MB; the limit is "
            f"{limit / 1_048_576:.0f} MB (RAGAPP_MAX_UPLOAD_MB).",
        )
    if size == 0:
        return "", "empty", "The file is empty."
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    try:
        return sniff_content_type(head, filename), "", ""
    except UnsupportedTypeError as exc:
        kinds = ", ".join(sorted(set(SUPPORTED_TYPES.values())))
        return "", exc.code, f"{exc} Supported: {kinds}."
    except ParseError as exc:  # e.g. nothing but whitespace
        return "", exc.code, str(exc)


def document_upload(
    *,
    collection: Collection,
    stream: IO[bytes],
    filename: str,
    uploaded_by: AbstractBaseUser | None = None,
    title: str = "",
    attributes: dict[str, object] | None = None,
) -> UploadOutcome:
    """Store an uploaded file in `collection` and queue it for indexing.

    The type is decided from the content, not the name. Files that are too
    large, empty or of an unsupported type are refused before any work is
    queued, and recorded as failed documents with the reason (no file is
    kept). The same content twice in one collection is recognised by SHA-256
    and not indexed again.
    """
    name = clean_filename(filename)
    size = getattr(stream, "size", None)
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        sha256, content_type = "", ""
        code, message = _rejection(stream, size, name)[1:]
    else:
        sha256, size = _hash_and_size(stream)
        content_type, code, message = _rejection(stream, size, name)
    if sha256:
        existing = Document.objects.filter(collection=collection, sha256=sha256).first()
        if existing:
            return UploadOutcome(existing, created=False)

    document = Document(
        collection=collection,
        title=(title or name)[:500],
        original_filename=name,
        sha256=sha256,
        content_type=content_type,
        size_bytes=size,
        attributes=attributes or {},
        uploaded_by=uploaded_by,
    )
    if code:
        document.status = Status.FAILED
        document.error_code = code
        document.error_message = message
        document.finished_at = timezone.now()
        document.save()
        return UploadOutcome(document, created=True)

    document.file.save(name, File(stream), save=False)
    try:
        with transaction.atomic():
            document.save()
            transaction.on_commit(lambda: _enqueue_ingest(document.pk), robust=True)
    except IntegrityError:
        # The same file uploaded twice at the same moment: keep the first.
        document.file.delete(save=False)
        existing = Document.objects.get(collection=collection, sha256=sha256)
        return UploadOutcome(existing, created=False)
    return UploadOutcome(document, created=True)


def document_upload_path(
    *, collection: Collection, path: Path, uploaded_by: AbstractBaseUser | None = None
) -> UploadOutcome:
    """Upload a file from the server's filesystem (management commands, demo data)."""
    with path.open("rb") as stream:
        return document_upload(
            collection=collection,
            stream=stream,
            filename=path.name,
            uploaded_by=uploaded_by,
        )


def _enqueue_ingest(document_id: int) -> None:
    from ragapp.documents.tasks import document_ingest_task, enqueue

    enqueue(document_ingest_task, document_id)


def _requeue(document: Document) -> None:
    now = timezone.now()
    Document.objects.filter(pk=document.pk).update(
        status=Status.QUEUED,
        status_changed_at=now,
        error_code="",
        error_message="",
        attempts=0,
        claim_token=None,
        lease_expires_at=None,
        progress_done=0,
        progress_total=0,
    )
    transaction.on_commit(lambda: _enqueue_ingest(document.pk), robust=True)


@transaction.atomic
def document_retry(*, document: Document) -> None:
    """Queue a failed document again (after a fix, or a model API outage)."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.status != Status.FAILED:
        raise DocumentActionError("Only failed documents can be retried.")
    if not document.file:
        raise DocumentActionError(
            "This upload was refused before it was stored; upload the file again."
        )
    _requeue(document)


@transaction.atomic
def document_reindex(*, document: Document) -> None:
    """Index a document again; its current chunks stay searchable until the swap."""
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.is_processing:
        raise DocumentActionError("The document is being indexed already.")
    if not document.file:
        raise DocumentActionError("There is no stored file to index.")
    _requeue(document)


def _delete_files_on_commit(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    def delete() -> None:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("Could not delete stored file %s", name, exc_info=True)

    transaction.on_commit(delete)


@transaction.atomic
def document_delete(*, document: Document) -> None:
    """Delete a document, its chunks and its stored file.

    A worker still processing it loses its claim at its next write and stops.
    """
    names = [document.file.name] if document.file else []
    # Locked so a swap cannot move the searchable version while it is counted out.
    locked = Document.objects.select_for_update().filter(pk=document.pk).first()
    if locked is None:
        return
    lexicon_apply(
        collection_id=locked.collection_id,
        document_id=locked.pk,
        remove_version=locked.indexed_version,
        add_version=0,
    )
    Document.objects.filter(pk=document.pk).delete()
    _delete_files_on_commit(names)


@transaction.atomic
def collection_delete(*, collection: Collection) -> None:
    """Delete a collection with every document, chunk and stored file in it."""
    names = [
        name
        for name in Document.objects.filter(collection=collection).values_list(
            "file", flat=True
        )
        if name
    ]
    Collection.objects.filter(pk=collection.pk).delete()
    _delete_files_on_commit(names)


@transaction.atomic
def collection_change_embedding_model(*, collection: Collection, model: str) -> int:
    """Switch the collection to another embedding model and re-index everything.

    Vectors of different models are never mixed: each document keeps its old
    chunks searchable until its new ones are swapped in. Returns the number
    of documents queued.
    """
    collection.embedding_model = model
    collection.embedding_dimensions = embedding_dimensions(model)
    collection.save(update_fields=["embedding_model", "embedding_dimensions"])
    queued = 0
    for document in Document.objects.filter(collection=collection).exclude(file=""):
        if not document.is_processing:
            _requeue(document)
            queued += 1
    return queued


def demo_documents_ensure(
    *, collection: Collection, paths: list[Path]
) -> list[UploadOutcome]:
    """Upload ragapp's own docs into the demo collection; known ones are skipped."""
    return [
        document_upload_path(collection=collection, path=path)
        for path in paths
        if path.is_file()
    ]


@transaction.atomic
def collection_update(
    *,
    collection: Collection,
    name: str,
    description: str,
    reader_groups: list[Group],
    embedding_model: str,
    answer_temperature: float | None = None,
    answer_top_p: float | None = None,
    answer_max_tokens: int | None = None,
    answer_seed: int | None = None,
    slug: str = "",
) -> int:
    """Save a collection's settings; a new embedding model re-indexes everything.

    Returns how many documents were queued for re-indexing (0 when the model
    did not change). An empty `slug` keeps the current one.
    """
    collection.name = name
    if slug:
        collection.slug = slug
    collection.description = description
    collection.answer_temperature = answer_temperature
    collection.answer_top_p = answer_top_p
    collection.answer_max_tokens = answer_max_tokens
    collection.answer_seed = answer_seed
    collection.full_clean()
    collection.save()
    collection.reader_groups.set(reader_groups)
    if embedding_model != collection.embedding_model:
        return collection_change_embedding_model(
            collection=collection, model=embedding_model
        )
    return 0


@dataclass(frozen=True)
class BulkOutcome:
    """What became of a bulk action: how many it applied to, and why not the rest."""

    done: int
    refused: list[tuple[Document, str]]


BULK_ACTIONS = {
    "retry": document_retry,
    "reindex": document_reindex,
    "delete": document_delete,
}


def document_bulk_apply(*, documents: Iterable[Document], action: str) -> BulkOutcome:
    """Retry, re-index or delete each of `documents`, one transaction each.

    A document the action does not fit (a ready one to retry, one being
    indexed to re-index) is refused with the reason and stops none of the
    others, the way the admin's actions always did.
    """
    try:
        apply = BULK_ACTIONS[action]
    except KeyError:
        raise DocumentActionError(
            f"Unknown action {action!r}; choose retry, reindex or delete."
        ) from None
    done, refused = 0, []
    for document in documents:
        try:
            apply(document=document)
        except DocumentActionError as exc:
            refused.append((document, str(exc)))
        else:
            done += 1
    return BulkOutcome(done=done, refused=refused)
