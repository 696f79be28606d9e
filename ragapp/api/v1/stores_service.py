"""Files and vector stores behind /v1: reads with the access rule, and writes.

A vector store is a collection and a vector-store file is a document. The
api app keeps only what OpenAI's API adds: random public ids (`file-`,
`vs_`, `vsfb_`), a store's metadata, and batches. Collections and documents
made in the web pages get their ids on first sight (`vector_stores_ensure`,
`vector_store_files_ensure`), so the two faces always show the same data.

Every fetch by id goes through the caller: a store is found only among the
collections the caller may read (`Caller.collections()`), a file only among
the caller's own, and anything else is a `NotFoundError`, whether it exists
or not.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify
from django.utils.translation import gettext as _

from ragapp.api.callers import Caller
from ragapp.api.exceptions import (
    ApiError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from ragapp.api.models import (
    ApiFile,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
    new_file_id,
)
from ragapp.documents import services as documents
from ragapp.documents.models import Collection, Document

Status = Document.Status
PROCESSING = (Status.QUEUED, Status.PARSING, Status.EMBEDDING)
HASH_BLOCK = 1024 * 1024

MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_STRING = 512
MAX_METADATA_VALUE = 512


def require_writable_key(caller: Caller) -> None:
    """Refuse any change through a read-only key (files are the user's own)."""
    if caller.key.read_only:
        raise PermissionDeniedError(
            _("This API key is read-only; it may search and ask, not change.")
        )


# --- Files ----------------------------------------------------------------------


def api_file_create(
    *, user: AbstractBaseUser, stream: IO[bytes], filename: str, purpose: str
) -> ApiFile:
    """Store an uploaded file for `user`; the caller has checked its size."""
    digest = hashlib.sha256()
    size = 0
    stream.seek(0)
    while block := stream.read(HASH_BLOCK):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    api_file = ApiFile(
        user=user,
        filename=documents.clean_filename(filename),
        purpose=purpose,
        bytes=size,
        sha256=digest.hexdigest(),
    )
    api_file.file.save(api_file.filename, File(stream), save=False)
    api_file.save()
    return api_file


def api_file_list(*, user: AbstractBaseUser, purpose: str = "") -> QuerySet[ApiFile]:
    files = ApiFile.objects.filter(user=user)
    if purpose:
        files = files.filter(purpose=purpose)
    return files


def access_api_file(*, user: AbstractBaseUser, file_id: str) -> ApiFile:
    """The user's own file `file_id`; another user's is as missing as no file."""
    api_file = ApiFile.objects.filter(user=user, public_id=file_id).first()
    if api_file is None:
        raise NotFoundError(
            _("No such File object: %(id)s") % {"id": file_id}, param="file_id"
        )
    return api_file


def api_file_delete(*, api_file: ApiFile) -> None:
    """Delete the file and its bytes; documents made from it stay in their stores."""
    name = api_file.file.name
    api_file.delete()
    if name:
        storage = api_file.file.storage
        transaction.on_commit(lambda: storage.delete(name))


# --- Vector stores ----------------------------------------------------------------


def vector_stores_ensure(collections: QuerySet[Collection]) -> None:
    """Give every collection in `collections` its vector-store row, if it lacks one."""
    missing = collections.filter(vector_store__isnull=True).values_list(
        "pk", "created_at"
    )
    VectorStore.objects.bulk_create(
        [VectorStore(collection_id=pk, created_at=created) for pk, created in missing],
        ignore_conflicts=True,
    )


def _with_counts(stores: QuerySet[VectorStore]) -> QuerySet[VectorStore]:
    documents_of = "collection__documents"
    return stores.select_related("collection").annotate(
        in_progress_count=Count(
            documents_of, filter=Q(collection__documents__status__in=PROCESSING)
        ),
        completed_count=Count(
            documents_of, filter=Q(collection__documents__status=Status.READY)
        ),
        failed_count=Count(
            documents_of, filter=Q(collection__documents__status=Status.FAILED)
        ),
        total_count=Count(documents_of),
        usage_bytes=Sum("collection__documents__size_bytes", default=0),
    )


def vector_store_list(*, caller: Caller) -> QuerySet[VectorStore]:
    """The stores of the collections `caller` may read, with their file counts."""
    readable = caller.collections()
    vector_stores_ensure(readable)
    return _with_counts(VectorStore.objects.filter(collection__in=readable))


def access_vector_store(*, caller: Caller, vector_store_id: str) -> VectorStore:
    """The store `vector_store_id` if the caller may read its collection, else 404."""
    store = (
        _with_counts(VectorStore.objects.all())
        .filter(public_id=vector_store_id, collection__in=caller.collections())
        .first()
    )
    if store is None:
        raise NotFoundError(
            _("No such vector store: %(id)s") % {"id": vector_store_id},
            param="vector_store_id",
        )
    return store


def vector_store_reload(store: VectorStore) -> VectorStore:
    return _with_counts(VectorStore.objects.filter(pk=store.pk)).get()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:80] or "vector-store"
    while True:
        slug = f"{base}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
        if not Collection.objects.filter(slug=slug).exists():
            return slug


def vector_store_create(
    *,
    caller: Caller,
    name: str | None,
    metadata: dict[str, str] | None,
    expires_after: dict[str, Any] | None,
    file_ids: list[str],
) -> VectorStore:
    """Create a collection as a vector store, and attach `file_ids` to it.

    A key scoped to some collections may not create one: the new collection
    would lie outside its scope, so the key could not see what it made.
    """
    caller.require_write("documents.add_collection")
    if caller.key_scope is not None:
        raise PermissionDeniedError(
            _(
                "This API key is limited to some collections, so it cannot "
                "create new ones; use a key without a collection scope."
            )
        )
    files = [access_api_file(user=caller.user, file_id=file_id) for file_id in file_ids]
    if files:
        caller.require_write("documents.add_document")
    with transaction.atomic():
        store = VectorStore(
            metadata=metadata_clean(metadata),
            expires_after=expires_after,
            last_active_at=timezone.now(),
        )
        collection = documents.collection_create(
            name=(name or store.public_id)[:200],
            slug=_unique_slug(name or "vector-store"),
            created_by=caller.user,
        )
        store.collection = collection
        store.created_at = collection.created_at
        store.save()
        for api_file in files:
            vector_store_file_attach(
                caller=caller, store=store, api_file=api_file, attributes=None
            )
    return vector_store_reload(store)


def vector_store_update(
    *,
    caller: Caller,
    store: VectorStore,
    name: str | None,
    metadata: dict[str, str] | None,
    expires_after: dict[str, Any] | None,
    fields: set[str],
) -> VectorStore:
    """Change what the request set (`fields`): the name, metadata, expiry."""
    caller.require_write("documents.change_collection")
    collection = store.collection
    with transaction.atomic():
        if "name" in fields and name is not None and name != collection.name:
            documents.collection_update(
                collection=collection,
                name=name[:200],
                description=collection.description,
                reader_groups=list(collection.reader_groups.all()),
                embedding_model=collection.embedding_model,
                answer_temperature=collection.answer_temperature,
                answer_top_p=collection.answer_top_p,
                answer_max_tokens=collection.answer_max_tokens,
                answer_seed=collection.answer_seed,
            )
        if "metadata" in fields:
            store.metadata = metadata_clean(metadata)
        if "expires_after" in fields:
            store.expires_after = expires_after
        store.last_active_at = timezone.now()
        store.save(update_fields=["metadata", "expires_after", "last_active_at"])
    return vector_store_reload(store)


def vector_store_delete(*, caller: Caller, store: VectorStore) -> None:
    """Delete the collection behind `store`, with every document in it."""
    caller.require_write("documents.delete_collection")
    documents.collection_delete(collection=store.collection)


def vector_store_touch(store: VectorStore) -> None:
    VectorStore.objects.filter(pk=store.pk).update(last_active_at=timezone.now())


# --- Vector-store files -------------------------------------------------------------


def vector_store_files_ensure(store: VectorStore) -> None:
    """Give every document of the store's collection its file row, if it lacks one."""
    missing = Document.objects.filter(
        collection_id=store.collection_id, vector_store_file__isnull=True
    ).values_list("pk", "created_at")
    VectorStoreFile.objects.bulk_create(
        [
            VectorStoreFile(
                public_id=new_file_id(),
                vector_store=store,
                document_id=pk,
                created_at=created,
            )
            for pk, created in missing
        ],
        ignore_conflicts=True,
    )


STATUS_FILTERS = {
    "in_progress": Q(document__status__in=PROCESSING),
    "completed": Q(document__status=Status.READY),
    "failed": Q(document__status=Status.FAILED),
    # Cancelled files are deleted with their documents (vector_store_file_batch_cancel).
    "cancelled": Q(pk__in=[]),
}


def vector_store_file_list(
    *,
    store: VectorStore,
    status: str | None = None,
    batch: VectorStoreFileBatch | None = None,
) -> QuerySet[VectorStoreFile]:
    vector_store_files_ensure(store)
    files = VectorStoreFile.objects.filter(vector_store=store).select_related(
        "document"
    )
    if batch is not None:
        files = files.filter(batch=batch)
    if status:
        files = files.filter(STATUS_FILTERS[status])
    return files


def access_vector_store_file(*, store: VectorStore, file_id: str) -> VectorStoreFile:
    vector_store_files_ensure(store)
    found = (
        VectorStoreFile.objects.select_related("document")
        .filter(vector_store=store, public_id=file_id)
        .first()
    )
    if found is None:
        raise NotFoundError(
            _("No file %(file)s in vector store %(store)s.")
            % {"file": file_id, "store": store.public_id},
            param="file_id",
        )
    return found


def attributes_clean(value: Any, *, param: str = "attributes") -> dict[str, Any]:
    """Check OpenAI's VectorStoreFileAttributes rules; None means none.

    At most 16 keys of at most 64 characters; values are strings of at most
    512 characters, finite numbers or booleans. They become the document's
    `attributes`, which search filters read.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(_("'%(p)s' must be an object.") % {"p": param}, param=param)
    if len(value) > MAX_ATTRIBUTES:
        raise ApiError(
            _("'%(p)s' may have at most %(n)d keys.")
            % {"p": param, "n": MAX_ATTRIBUTES},
            param=param,
        )
    for key, item in value.items():
        where = f"{param}.{key}"
        if not isinstance(key, str) or not key or len(key) > MAX_ATTRIBUTE_KEY:
            raise ApiError(
                _("Attribute keys are 1 to %(n)d characters long.")
                % {"n": MAX_ATTRIBUTE_KEY},
                param=param,
            )
        if isinstance(item, bool):
            continue
        if isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_STRING:
                raise ApiError(
                    _("Attribute strings are at most %(n)d characters long.")
                    % {"n": MAX_ATTRIBUTE_STRING},
                    param=where,
                )
            continue
        if isinstance(item, int | float) and math.isfinite(item):
            continue
        raise ApiError(
            _("Attribute values are strings, numbers or booleans."), param=where
        )
    return dict(value)


def metadata_clean(value: Any, *, param: str = "metadata") -> dict[str, str]:
    """OpenAI's Metadata: at most 16 string values under keys of <= 64 characters."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise ApiError(
            _("'metadata' is an object of at most %(n)d keys.") % {"n": MAX_ATTRIBUTES},
            param=param,
        )
    for key, item in value.items():
        if len(key) > MAX_ATTRIBUTE_KEY:
            raise ApiError(
                _("Metadata keys are at most %(n)d characters long.")
                % {"n": MAX_ATTRIBUTE_KEY},
                param=param,
            )
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise ApiError(
                _("Metadata values are strings of at most %(n)d characters.")
                % {"n": MAX_METADATA_VALUE},
                param=f"{param}.{key}",
            )
    return dict(value)


def output_attributes(
    attributes: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Attributes fit for OpenAI's shape: `extra` first, then what fits of the rest.

    Attributes set in the web pages need not follow the API's rules; values
    that do not (lists, objects, long strings) are left out of replies, and
    the map is cut to 16 keys.
    """
    result: dict[str, Any] = dict(extra or {})
    for key, value in (attributes or {}).items():
        if len(result) >= MAX_ATTRIBUTES:
            break
        if key in result or not isinstance(key, str) or len(key) > MAX_ATTRIBUTE_KEY:
            continue
        if (
            isinstance(value, bool)
            or (isinstance(value, int | float) and math.isfinite(value))
            or (isinstance(value, str) and len(value) <= MAX_ATTRIBUTE_STRING)
        ):
            result[key] = value
    return result


@dataclass(frozen=True)
class Attachment:
    api_file: ApiFile
    attributes: dict[str, Any]


def vector_store_files_attach(
    *,
    caller: Caller,
    store: VectorStore,
    attachments: Iterable[Attachment],
    batch: VectorStoreFileBatch | None = None,
) -> list[VectorStoreFile]:
    """Attach files to `store` as new documents, all or none, and queue their indexing.

    A file already in the store under its id is returned as it is (a request
    sent twice does no harm). Content already in the collection under
    another id is a conflict: the collection keeps one copy of each content.
    """
    caller.require_write("documents.add_document")
    attachments = list(attachments)
    vector_store_files_ensure(store)
    seen: dict[str, str] = {}
    existing = dict(
        Document.objects.filter(
            collection_id=store.collection_id,
            sha256__in=[a.api_file.sha256 for a in attachments],
        ).values_list("sha256", "vector_store_file__public_id")
    )
    for attachment in attachments:
        api_file = attachment.api_file
        if existing.get(api_file.sha256) not in (None, api_file.public_id):
            raise ConflictError(
                _(
                    "The content of %(file)s is already in this vector store as "
                    "%(other)s."
                )
                % {"file": api_file.public_id, "other": existing[api_file.sha256]},
                param="file_id",
            )
        if seen.get(api_file.sha256, api_file.public_id) != api_file.public_id:
            raise ConflictError(
                _("%(file)s and %(other)s have the same content.")
                % {"file": api_file.public_id, "other": seen[api_file.sha256]},
                param="file_ids",
            )
        seen[api_file.sha256] = api_file.public_id
    attached = []
    with transaction.atomic():
        for attachment in attachments:
            attached.append(
                vector_store_file_attach(
                    caller=caller,
                    store=store,
                    api_file=attachment.api_file,
                    attributes=attachment.attributes,
                    batch=batch,
                )
            )
        vector_store_touch(store)
    return attached


def vector_store_file_attach(
    *,
    caller: Caller,
    store: VectorStore,
    api_file: ApiFile,
    attributes: dict[str, Any] | None,
    batch: VectorStoreFileBatch | None = None,
) -> VectorStoreFile:
    """Attach one file; see `vector_store_files_attach`, which checks conflicts."""
    known = VectorStoreFile.objects.filter(
        vector_store=store, public_id=api_file.public_id
    ).first()
    if known is not None:
        return known
    with transaction.atomic(), api_file.file.open("rb") as stream:
        outcome = documents.document_upload(
            collection=store.collection,
            stream=stream,
            filename=api_file.filename,
            uploaded_by=caller.user,
            attributes=attributes or {},
        )
        return VectorStoreFile.objects.create(
            public_id=api_file.public_id,
            vector_store=store,
            document=outcome.document,
            api_file=api_file,
            batch=batch,
            created_at=outcome.document.created_at,
        )


def vector_store_file_update(
    *, caller: Caller, vector_store_file: VectorStoreFile, attributes: dict[str, Any]
) -> VectorStoreFile:
    """Replace the file's attributes (what search filters read)."""
    caller.require_write("documents.change_document")
    Document.objects.filter(pk=vector_store_file.document_id).update(
        attributes=attributes
    )
    vector_store_file.document.attributes = attributes
    return vector_store_file


def vector_store_file_delete(
    *, caller: Caller, vector_store_file: VectorStoreFile
) -> None:
    """Remove the file from the store: its document and chunks go; the File stays."""
    caller.require_write("documents.delete_document")
    documents.document_delete(document=vector_store_file.document)


def vector_store_file_chunks(vector_store_file: VectorStoreFile) -> list[str]:
    """The searchable passages of the file, in reading order."""
    document = vector_store_file.document
    return list(
        document.chunks.filter(version=document.indexed_version)
        .order_by("ordinal")
        .values_list("text", flat=True)
    )


# --- Batches ---------------------------------------------------------------------


def vector_store_file_batch_create(
    *, caller: Caller, store: VectorStore, attachments: list[Attachment]
) -> VectorStoreFileBatch:
    caller.require_write("documents.add_document")
    with transaction.atomic():
        batch = VectorStoreFileBatch.objects.create(
            vector_store=store, created_by=caller.user
        )
        vector_store_files_attach(
            caller=caller, store=store, attachments=attachments, batch=batch
        )
    return batch


def access_vector_store_file_batch(
    *, store: VectorStore, batch_id: str
) -> VectorStoreFileBatch:
    batch = VectorStoreFileBatch.objects.filter(
        vector_store=store, public_id=batch_id
    ).first()
    if batch is None:
        raise NotFoundError(
            _("No such file batch: %(id)s") % {"id": batch_id}, param="batch_id"
        )
    return batch


def vector_store_file_batch_counts(batch: VectorStoreFileBatch) -> dict[str, int]:
    counts = VectorStoreFile.objects.filter(batch=batch).aggregate(
        in_progress=Count("pk", filter=Q(document__status__in=PROCESSING)),
        completed=Count("pk", filter=Q(document__status=Status.READY)),
        failed=Count("pk", filter=Q(document__status=Status.FAILED)),
    )
    counts["cancelled"] = batch.cancelled_count
    counts["total"] = sum(counts.values())
    return counts


def vector_store_file_batch_cancel(
    *, caller: Caller, batch: VectorStoreFileBatch
) -> VectorStoreFileBatch:
    """Stop what the batch still has to index: those documents are deleted.

    Files already indexed (or failed) stay in the store.
    """
    caller.require_write("documents.delete_document")
    with transaction.atomic():
        batch = VectorStoreFileBatch.objects.select_for_update().get(pk=batch.pk)
        pending = list(
            Document.objects.filter(
                vector_store_file__batch=batch, status__in=PROCESSING
            )
        )
        for document in pending:
            documents.document_delete(document=document)
        if batch.cancelled_at is None:
            batch.cancelled_at = timezone.now()
        batch.cancelled_count += len(pending)
        batch.save(update_fields=["cancelled_at", "cancelled_count"])
    return batch


# --- Documents under their OpenAI ids -----------------------------------------------


def document_file_ids(document_ids: Iterable[int]) -> dict[int, str]:
    """The vector-store file id of each document, made on first sight.

    Answers cite documents; the Responses and Chat APIs name them by the id
    `/v1/vector_stores/{id}/files/{file_id}` knows, whichever face made them.
    """
    wanted = set(document_ids)
    if not wanted:
        return {}
    collections = Collection.objects.filter(documents__pk__in=wanted).distinct()
    vector_stores_ensure(collections)
    missing = Document.objects.filter(
        pk__in=wanted, vector_store_file__isnull=True
    ).values_list("pk", "collection__vector_store__pk", "created_at")
    VectorStoreFile.objects.bulk_create(
        [
            VectorStoreFile(
                public_id=new_file_id(),
                vector_store_id=store_pk,
                document_id=pk,
                created_at=created,
            )
            for pk, store_pk, created in missing
        ],
        ignore_conflicts=True,
    )
    return dict(
        VectorStoreFile.objects.filter(document_id__in=wanted).values_list(
            "document_id", "public_id"
        )
    )


def document_files(document_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Each document's vector-store file id and file name, as citations name them."""
    ids = document_file_ids(document_ids)
    return {
        pk: (ids[pk], filename or title)
        for pk, filename, title in Document.objects.filter(pk__in=ids).values_list(
            "pk", "original_filename", "title"
        )
    }


def vector_store_ids(collection_ids: Iterable[int]) -> list[str]:
    """The `vs_` ids of collections, in the order given."""
    ids = list(collection_ids)
    vector_stores_ensure(Collection.objects.filter(pk__in=ids))
    by_collection = dict(
        VectorStore.objects.filter(collection_id__in=ids).values_list(
            "collection_id", "public_id"
        )
    )
    return [by_collection[pk] for pk in ids if pk in by_collection]


def relevance(score: float) -> float:
    """Map a fused score onto (0, 1), keeping the order.

    The fused score is a weighted sum of z-scores (unbounded, relative to the
    query's candidates); its logistic lies in (0, 1) as OpenAI's `score`
    must, and is 0.5 for a candidate of average relevance.
    """
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    exp = math.exp(score)
    return exp / (1.0 + exp)
