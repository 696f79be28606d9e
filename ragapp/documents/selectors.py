"""Reads on collections and documents, with the access rule in the query."""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from ragapp.documents.models import Collection, Document


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
