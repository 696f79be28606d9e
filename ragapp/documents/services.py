"""Writes on collections and documents."""

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from ragapp.documents.models import Collection

DEMO_COLLECTION_SLUG = "ragapp-docs"


@transaction.atomic
def collection_create(
    *,
    name: str,
    slug: str,
    description: str = "",
    reader_groups: list[Group] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Collection:
    """Create a collection that `reader_groups` may read."""
    collection = Collection(
        name=name, slug=slug, description=description, created_by=created_by
    )
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
