"""Reads on collections and documents, with the access rule in the query."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet
from django.utils.text import slugify

from ragapp.documents.models import Chunk, Collection, Document


def collection_ids_readable(
    *, user: AbstractBaseUser | AnonymousUser
) -> QuerySet[Collection]:
    """Return a `pk` queryset of the collections `user` may read, for subqueries.

    Retrieval embeds this in its own SQL, so the access rule is part of every
    search query rather than a filter applied to results afterwards.
    """
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none().values("pk")
    if user.is_superuser or user.has_perm("documents.change_collection"):
        return Collection.objects.values("pk")
    return Collection.objects.filter(reader_groups__user=user).values("pk")


def collection_list_readable(
    *, user: AbstractBaseUser | AnonymousUser
) -> QuerySet[Collection]:
    """Return the collections `user` may ask questions in.

    Superusers and holders of the change permission (the Admins role) read every
    collection; everyone else reads those whose reader groups they belong to.
    The rule is a query filter, so callers can never see rows first and
    filter later.
    """
    collections = Collection.objects.filter(pk__in=collection_ids_readable(user=user))
    return collections.annotate(
        document_count=Count("documents", distinct=True),
        ready_count=Count(
            "documents",
            filter=Q(documents__status=Document.Status.READY),
            distinct=True,
        ),
    )


def collections_by_slug(slugs: Sequence[str]) -> tuple[list[Collection], list[str]]:
    """Return the collections named by `slugs` (every one when none are given),
    in slug order, and the slugs that name none: for operators' commands,
    which see every collection."""
    collections = Collection.objects.order_by("slug")
    if slugs:
        collections = collections.filter(slug__in=slugs)
    found = list(collections)
    return found, sorted(set(slugs) - {c.slug for c in found})


def document_get_readable(
    *, user: AbstractBaseUser | AnonymousUser, document_id: int
) -> Document:
    """A document in a collection `user` may read; Document.DoesNotExist otherwise.

    Missing and forbidden fail alike, so a guessed id tells nothing.
    """
    return Document.objects.select_related("collection").get(
        pk=document_id, collection_id__in=collection_ids_readable(user=user)
    )


# --- The admins' view: every collection, every document --------------------------


def _manages_collections(user: AbstractBaseUser | AnonymousUser) -> bool:
    # The same rule that lets admins read every collection (above): the
    # Admins role carries the change permission, superusers have them all.
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.has_perm("documents.change_collection"))
    )


def collection_list_managed(
    *, user: AbstractBaseUser | AnonymousUser
) -> QuerySet[Collection]:
    """Return every collection `user` manages, with its documents counted by status.

    Each row carries `n_documents` and `n_<status>` for every status, and
    its reader groups prefetched.
    """
    if not _manages_collections(user):
        return Collection.objects.none()
    by_status = {
        f"n_{status}": Count("documents", filter=Q(documents__status=status))
        for status in Document.Status.values
    }
    return (
        Collection.objects.annotate(n_documents=Count("documents"), **by_status)
        .prefetch_related("reader_groups")
        .order_by("name")
    )


def collection_free_slug(*, name: str) -> str:
    """Return a slug made from `name` that no collection uses yet."""
    base = slugify(name)[:90] or "collection"
    slug, n = base, 2
    while Collection.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def collection_get_managed(
    *, user: AbstractBaseUser | AnonymousUser, collection_id: int
) -> Collection:
    """Return a collection `user` manages; Collection.DoesNotExist otherwise."""
    return collection_list_managed(user=user).get(pk=collection_id)


def document_list_managed(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection: Collection,
    document_ids: Sequence[int] | None = None,
) -> QuerySet[Document]:
    """Return the documents of `collection`, newest first, if `user` manages it.

    With `document_ids`, only those of them that are in this collection: an
    id from another collection selects nothing.
    """
    if not _manages_collections(user):
        return Document.objects.none()
    documents = Document.objects.filter(collection=collection).select_related(
        "uploaded_by"
    )
    if document_ids is not None:
        documents = documents.filter(pk__in=list(document_ids))
    return documents.order_by("-created_at", "-pk")


def document_get_managed(
    *, user: AbstractBaseUser | AnonymousUser, document_id: int
) -> Document:
    """Return a document in a collection `user` manages; Document.DoesNotExist otherwise."""
    if not _manages_collections(user):
        raise Document.DoesNotExist
    return Document.objects.select_related("collection", "uploaded_by").get(
        pk=document_id
    )


@dataclass(frozen=True)
class PassagePage:
    """The passages that start on one page (`page` None: the format has no pages)."""

    page: int | None
    chunks: list[Chunk]


def document_passages(*, document: Document) -> QuerySet[Chunk]:
    """Return the document's searchable passages in order, without their vectors.

    Only the swapped-in version (`indexed_version`): what searches see, not
    a re-index being written beside it.
    """
    return (
        Chunk.objects.filter(document=document, version=document.indexed_version)
        .defer("embedding")
        .order_by("ordinal")
    )


def passages_by_page(chunks: Iterable[Chunk]) -> list[PassagePage]:
    """Group passages, in order, by the page each starts on."""
    pages: list[PassagePage] = []
    for chunk in chunks:
        if not pages or pages[-1].page != chunk.page_start:
            pages.append(PassagePage(page=chunk.page_start, chunks=[]))
        pages[-1].chunks.append(chunk)
    return pages
