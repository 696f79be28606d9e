"""The admins' Manage pages: collections, uploads, documents, hit testing."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ragapp.documents.models import Collection, Document
from tests.factories import CollectionFactory, UserFactory, indexed_document

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture
def admin_client(client):
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get(name="Admins"))
    client.force_login(user)
    return client


@pytest.fixture
def notes(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    collection = CollectionFactory(name=f"Notes {HOSTILE}", slug="notes")
    indexed_document(collection, f"{HOSTILE}.md", "# Rules\n\nLaptops are locked.\n")
    return collection


def test_manage_pages_are_for_admins_only(client, notes):
    staff = UserFactory(username="bob")
    staff.groups.add(Group.objects.get(name="Staff"))
    document = notes.documents.first()
    urls = [
        reverse("manage:collections"),
        reverse("manage:collection", args=[notes.pk]),
        reverse("manage:collection-edit", args=[notes.pk]),
        reverse("manage:collection-delete", args=[notes.pk]),
        reverse("manage:collection-search", args=[notes.pk]),
        reverse("manage:document", args=[document.pk]),
        reverse("manage:document-row", args=[document.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 302, url
    client.force_login(staff)
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert (
        client.post(reverse("manage:collection-delete", args=[notes.pk])).status_code
        == 403
    )
    assert Collection.objects.filter(pk=notes.pk).exists()


def test_every_page_renders_hostile_names_as_text(admin_client, notes):
    document = notes.documents.first()
    for url in (
        reverse("manage:collections"),
        reverse("manage:collection", args=[notes.pk]),
        reverse("manage:document", args=[document.pk]),
        reverse("manage:collection-search", args=[notes.pk]) + "?q=laptops",
    ):
        html = admin_client.get(url).content.decode()
        assert "<script>alert(1)" not in html, url
        assert "<img src=x" not in html, url
    found = admin_client.get(
        reverse("manage:collection-search", args=[notes.pk]), {"q": "laptops locked"}
    ).content.decode()
    assert "Laptops are locked" in found
    assert "Fused" in found


def test_create_edit_and_delete_a_collection(admin_client):
    readers = Group.objects.create(name="Finance")
    response = admin_client.post(
        reverse("manage:collections"),
        {"name": "Finance rules", "description": "d", "reader_groups": [readers.pk]},
    )
    collection = Collection.objects.get(name="Finance rules")
    assert response["Location"] == reverse("manage:collection", args=[collection.pk])
    assert collection.slug == "finance-rules"
    assert list(collection.reader_groups.all()) == [readers]
    admin_client.post(
        reverse("manage:collection-edit", args=[collection.pk]),
        {
            "name": "Finance",
            "description": "",
            "embedding_model": collection.embedding_model,
            "answer_temperature": "0.2",
        },
    )
    collection.refresh_from_db()
    assert (collection.name, collection.answer_temperature) == ("Finance", 0.2)
    assert not collection.reader_groups.exists()
    page = admin_client.get(reverse("manage:collection-delete", args=[collection.pk]))
    assert "Delete “Finance”?" in page.content.decode()
    admin_client.post(reverse("manage:collection-delete", args=[collection.pk]))
    assert not Collection.objects.filter(pk=collection.pk).exists()


def test_upload_without_javascript_says_what_became_of_each_file(
    admin_client, notes, django_capture_on_commit_callbacks
):
    files = [
        SimpleUploadedFile("a.md", b"# A\n\nAlpha text.\n"),
        SimpleUploadedFile("empty.txt", b""),
    ]
    with django_capture_on_commit_callbacks():
        response = admin_client.post(
            reverse("manage:collection-upload", args=[notes.pk]),
            {"files": files},
            follow=True,
        )
    html = response.content.decode()
    assert "queued for indexing" in html
    assert "rejected" in html
    assert notes.documents.filter(original_filename="a.md").exists()


def test_an_htmx_upload_answers_with_the_files_live_row(admin_client, notes):
    response = admin_client.post(
        reverse("manage:collection-upload", args=[notes.pk]),
        {"files": [SimpleUploadedFile("b.md", b"# B\n\nBeta text.\n")]},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    document = notes.documents.get(original_filename="b.md")
    assert f'id="doc-{document.pk}"' in html
    assert 'hx-trigger="every 2s"' in html  # it keeps itself up to date


def test_bulk_actions_retry_reindex_and_delete(admin_client, notes):
    ready = notes.documents.first()
    failed = Document.objects.create(
        collection=notes, title="broken", content_type="", size_bytes=0, status="failed"
    )
    url = reverse("manage:documents-action", args=[notes.pk])
    admin_client.post(url, {"action": "reindex", "documents": [ready.pk]})
    ready.refresh_from_db()
    assert ready.status == Document.Status.QUEUED
    asked = admin_client.post(url, {"action": "delete", "documents": [failed.pk]})
    assert "Delete 1 document?" in asked.content.decode()  # asks first
    assert Document.objects.filter(pk=failed.pk).exists()
    admin_client.post(
        url, {"action": "delete", "documents": [failed.pk], "confirm": "yes"}
    )
    assert not Document.objects.filter(pk=failed.pk).exists()
    other = CollectionFactory(name="Other", slug="other")
    elsewhere = Document.objects.create(
        collection=other, title="x", content_type="", size_bytes=0, status="failed"
    )
    admin_client.post(
        url, {"action": "delete", "documents": [elsewhere.pk], "confirm": "yes"}
    )
    assert Document.objects.filter(pk=elsewhere.pk).exists()  # not this collection's


def test_document_view_shows_passages_by_page(admin_client, notes):
    document = notes.documents.first()
    html = admin_client.get(
        reverse("manage:document", args=[document.pk])
    ).content.decode()
    assert "Laptops are locked" in html
    assert "tokens" in html


# --- people --------------------------------------------------------------------------


def test_an_admin_without_superuser_rights_manages_people_and_groups(admin_client):
    staff = Group.objects.get(name="Staff")
    response = admin_client.post(
        reverse("manage:users"),
        {"form": "user", "username": "carol", "groups": [staff.pk]},
    )
    html = response.content.decode()
    assert "shown only now" in html
    password = re.search(r'<code class="password">([^<]+)</code>', html).group(1)
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(password) and not carol.is_superuser
    assert list(carol.groups.all()) == [staff]
    admin_client.post(reverse("manage:users"), {"form": "group", "name": "Finance"})
    finance = Group.objects.get(name="Finance")
    admin_client.post(
        reverse("manage:user-update", args=[carol.pk]),
        {"groups": [staff.pk, finance.pk], "active": "on"},
    )
    assert set(carol.groups.all()) == {staff, finance}


def test_disabling_someone_ends_their_sessions(admin_client, client):
    bob = UserFactory(username="bob")
    other = Client()
    other.force_login(bob)
    assert other.get(reverse("web:ask")).status_code == 200
    admin_client.post(reverse("manage:user-update", args=[bob.pk]), {"groups": []})
    bob.refresh_from_db()
    assert not bob.is_active
    assert other.get(reverse("web:ask")).status_code == 302  # signed out


def test_an_admin_cannot_touch_a_superuser_or_lock_themselves_out(admin_client):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    admin_client.post(reverse("manage:user-update", args=[root.pk]), {"groups": []})
    root.refresh_from_db()
    assert root.is_active
    me = get_user_model().objects.get(username="alice")
    response = admin_client.post(
        reverse("manage:user-update", args=[me.pk]), {"groups": []}, follow=True
    )
    assert "cannot take yourself out" in response.content.decode()
    me.refresh_from_db()
    assert me.is_active and me.groups.filter(name="Admins").exists()
