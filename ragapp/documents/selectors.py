"""Reads on collections and documents, with the access rule in the query."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from ragapp.documents.models import Collection, Document


def collection_list_readable(
    *, user: AbstractBaseUser | AnonymousUser
) -> QuerySet[Collection]:
    """Return the collections `user` may ask questions in.

    Superusers and holders of the change permission (the Admins role) read every
    collection; everyone else reads those whose reader groups they belong to.
    The rule is a query filter, so callers can never see rows first and
    filter later.
    """
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    collections = Collection.objects.all()
    if not (user.is_superuser or user.has_perm("documents.change_collection")):
        collections = collections.filter(
            pk__in=Collection.objects.filter(reader_groups__user=user).values("pk")
        )
    return collections.annotate(
        document_count=Count("documents", distinct=True),
        ready_count=Count(
            "documents",
            filter=Q(documents__status=Document.Status.READY),
            distinct=True,
        ),
    )
