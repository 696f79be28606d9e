"""Collections in the Manage pages: the list, create, edit (model change), delete."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ragapp.accounts.roles import ADMINS_GROUP
from ragapp.documents.models import Collection, Document
from ragapp.web.forms import embedding_model_choices
from tests.factories import CollectionFactory, DocumentFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = Document.Status
WORDLLAMA = "local/wordllama-l2-supercat"


@pytest.fixture
def admin_client(client):
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    client.force_login(user)
    return client


def test_the_list_counts_documents_by_status_and_names_the_readers(admin_client):
    collection = CollectionFactory(name="Handbook")
    collection.reader_groups.add(Group.objects.create(name="Finance"))
    for status, n in [("queued", 1), ("parsing", 2), ("embedding", 3), ("failed", 4)]:
        for _ in range(n):
            DocumentFactory(collection=collection, status=status)
    for _ in range(5):
        DocumentFactory(collection=collection, status=Status.READY, indexed_version=1)
    CollectionFactory(name="Empty")
    html = admin_client.get(reverse("manage:collections")).content.decode()
    rows = {r.split("</a>", 1)[0].rsplit(">", 1)[1]: r for r in html.split("<tr>")[2:]}
    row = rows["Handbook"]
    cells = [
        re.search(rf'data-label="{label}"[^>]*>([^<]*)<', row).group(1)
        for label in ("Documents", "Queued", "Parsing", "Embedding", "Ready")
    ]
    assert cells == ["15", "1", "2", "3", "5"]
    assert '<span class="error">4</span>' in row
    assert "Finance" in row
    assert "admins only" in rows["Empty"]


def test_create_with_a_chosen_model_answer_settings_and_a_made_slug(admin_client):
    readers = Group.objects.create(name="Finance")
    CollectionFactory(name="Old", slug="finance-rules")
    response = admin_client.post(
        reverse("manage:collections"),
        {
            "name": "Finance rules",
            "slug": "",
            "description": "What finance expects.",
            "reader_groups": [readers.pk],
            "embedding_model": WORDLLAMA,
            "answer_temperature": "0.1",
            "answer_top_p": "0.9",
            "answer_max_tokens": "800",
            "answer_seed": "7",
        },
    )
    collection = Collection.objects.get(name="Finance rules")
    assert response["Location"] == reverse("manage:collection", args=[collection.pk])
    assert collection.slug == "finance-rules-2"  # the first was taken
    assert (collection.embedding_model, collection.embedding_dimensions) == (
        WORDLLAMA,
        256,
    )
    assert collection.chat_options() == {
        "temperature": 0.1,
        "top_p": 0.9,
        "max_tokens": 800,
        "seed": 7,
    }
    assert list(collection.reader_groups.all()) == [readers]
    assert collection.created_by.username == "alice"


def test_create_refuses_bad_settings_and_a_taken_slug_in_plain_words(admin_client):
    CollectionFactory(slug="taken")
    url = reverse("manage:collections")
    bad = admin_client.post(
        url, {"name": "X", "answer_temperature": "3", "answer_max_tokens": "5"}
    ).content.decode()
    assert "less than or equal to 2" in bad
    assert "greater than or equal to 16" in bad
    taken = admin_client.post(url, {"name": "Y", "slug": "taken"}).content.decode()
    assert "Collection with this Slug already exists." in taken
    assert not Collection.objects.filter(name__in=["X", "Y"]).exists()


def test_model_choices_offer_api_models_only_when_an_api_is_configured(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    offline = [name for name, _ in embedding_model_choices()]
    assert WORDLLAMA in offline and settings.EMBEDDING_MODEL in offline
    assert "text-embedding-3-small" not in offline
    # A collection's own model stays a choice, so saving never switches it.
    assert "nomic-embed-text" in [
        n for n, _ in embedding_model_choices("nomic-embed-text")
    ]
    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    assert "text-embedding-3-small" in [n for n, _ in embedding_model_choices()]


def test_changing_the_model_re_indexes_and_says_so(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    collection = CollectionFactory(name="Handbook")
    ready = DocumentFactory(
        collection=collection, status=Status.READY, indexed_version=1, file="a"
    )
    edit = reverse("manage:collection-edit", args=[collection.pk])
    form = admin_client.get(edit).content.decode()
    assert "re-indexes every document" in form
    response = admin_client.post(
        edit,
        {"name": "Handbook", "slug": collection.slug, "embedding_model": WORDLLAMA},
        follow=True,
    )
    assert "1 document(s) queued for re-indexing" in response.content.decode()
    collection.refresh_from_db()
    ready.refresh_from_db()
    assert (collection.embedding_model, collection.embedding_dimensions) == (
        WORDLLAMA,
        256,
    )
    assert ready.status == Status.QUEUED


def test_saving_without_changing_the_model_re_indexes_nothing(admin_client):
    collection = CollectionFactory(
        embedding_model="nomic-embed-text", embedding_dimensions=768
    )
    ready = DocumentFactory(
        collection=collection, status=Status.READY, indexed_version=1, file="a"
    )
    admin_client.post(
        reverse("manage:collection-edit", args=[collection.pk]),
        {"name": "Renamed", "slug": "", "embedding_model": "nomic-embed-text"},
    )
    collection.refresh_from_db()
    ready.refresh_from_db()
    assert collection.name == "Renamed" and collection.embedding_dimensions == 768
    assert ready.status == Status.READY


def test_deleting_a_collection_says_how_many_documents_go(admin_client):
    collection = CollectionFactory(name="Handbook")
    DocumentFactory.create_batch(3, collection=collection)
    url = reverse("manage:collection-delete", args=[collection.pk])
    page = admin_client.get(url).content.decode()
    assert "Its 3 documents, their passages and stored files will be deleted." in page
    assert "Delete the collection and 3 documents" in page
    assert Collection.objects.filter(pk=collection.pk).exists()
    response = admin_client.post(url, follow=True)
    assert "Collection \u201cHandbook\u201d deleted." in response.content.decode()
    assert not Document.objects.exists()
