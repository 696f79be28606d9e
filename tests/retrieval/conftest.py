import pytest
from django.contrib.auth.models import Group

from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory, UserFactory

# The fastest local embedder: retrieval tests index many small documents.
FAST_MODEL = "local/wordllama-l2-supercat"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploads of retrieval tests land in the test's own directory."""
    settings.MEDIA_ROOT = tmp_path / "media"


def readable_collection(**fields):
    """A user, and a collection (on FAST_MODEL unless `fields` say otherwise) their group may read."""
    group = Group.objects.create(name=f"readers {Group.objects.count() + 1}")
    user = UserFactory()
    user.groups.add(group)
    collection = CollectionFactory(
        **{
            "embedding_model": FAST_MODEL,
            "embedding_dimensions": EMBEDDING_DIMENSIONS[FAST_MODEL],
            **fields,
        }
    )
    collection.reader_groups.add(group)
    return user, collection


@pytest.fixture
def reader_and_collection():
    """A user and the one collection their group may read (on FAST_MODEL)."""
    return readable_collection()
