import pytest
from django.contrib.auth.models import Group

from tests.factories import CollectionFactory, UserFactory, indexed_document

HANDBOOK = """# Travel policy

Staff who travel for work book trains through the travel desk. Economy class
is the rule for journeys under four hours; first class needs a director's
approval.

# Expenses

Meal expenses are refunded up to 35 euros a day with receipts. Claims must be
filed within 30 days of the trip, through the expenses form.

# Security

Laptops must be locked with a cable in hotels. A lost laptop is reported to
the service desk within one hour.
"""

GARDENING = """# Roses

Prune roses in late winter, just above an outward-facing bud. Feed them with
a balanced fertiliser after the first flush of flowers.
"""


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploads of answer tests land in the test's own directory."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def readers(db) -> Group:
    return Group.objects.create(name="Handbook readers")


@pytest.fixture
def staff(readers):
    user = UserFactory(username="staff")
    user.groups.add(readers)
    return user


@pytest.fixture
def handbook(readers):
    collection = CollectionFactory(name="Handbook", slug="handbook")
    collection.reader_groups.add(readers)
    indexed_document(collection, "handbook.md", HANDBOOK)
    return collection


@pytest.fixture
def garden(db):
    """A collection no test user may read."""
    collection = CollectionFactory(name="Garden", slug="garden")
    indexed_document(collection, "roses.md", GARDENING)
    return collection
