"""Admins manage collections in the Django admin; staff cannot get in."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ragapp.documents.models import Collection
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admin_creates_a_collection_with_reader_groups(client, admin_user):
    client.force_login(admin_user)
    staff = Group.objects.get(name="Staff")
    response = client.post(
        reverse("admin:documents_collection_add"),
        {
            "name": "Security policies",
            "slug": "security-policies",
            "description": "What IT expects of everyone.",
            "reader_groups": [staff.pk],
            "embedding_model": "local/all-MiniLM-L6-v2",
            "embedding_dimensions": 384,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    collection = Collection.objects.get(slug="security-policies")
    assert collection.created_by == admin_user
    assert list(collection.reader_groups.all()) == [staff]
    assert collection.embedding_dimensions == 384


def test_collection_admin_role_can_use_the_admin(client):
    curator = UserFactory(username="curator", is_staff=True)
    curator.groups.add(Group.objects.get(name="Admins"))
    client.force_login(curator)
    assert client.get(reverse("admin:documents_collection_add")).status_code == 200
    assert client.get(reverse("admin:auth_user_add")).status_code == 403


def test_staff_member_cannot_reach_the_admin(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse("admin:documents_collection_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response.url


def test_admin_pages_for_documents_and_chunks_render(client, admin_user):
    client.force_login(admin_user)
    for name in ("documents_document", "documents_chunk", "documents_collection"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200


# --- uploads and actions ------------------------------------------------------------

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402

from ragapp.documents.models import Document  # noqa: E402
from tests.factories import CollectionFactory  # noqa: E402


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _upload(client, collection, *files):
    return client.post(
        reverse("admin:documents_document_upload"),
        {"collection": collection.pk, "files": list(files)},
        follow=True,
    )


def test_admin_uploads_several_files_and_sees_what_became_of_each(
    client, admin_user, media
):
    collection = CollectionFactory()
    client.force_login(admin_user)
    response = _upload(
        client,
        collection,
        SimpleUploadedFile("policy.md", b"# Policy\n\nBadges are worn at all times."),
        SimpleUploadedFile("notes.txt", b"Canteen opens at noon."),
        SimpleUploadedFile("tool.pdf", b"MZ\x90\x00" + bytes(range(256)) * 8),
    )
    page = response.content.decode()
    assert "\u201cpolicy.md\u201d: queued for indexing." in page
    assert "\u201cnotes.txt\u201d: queued for indexing." in page
    assert "\u201ctool.pdf\u201d: rejected." in page
    statuses = dict(Document.objects.values_list("original_filename", "status"))
    assert statuses == {
        "policy.md": "queued",
        "notes.txt": "queued",
        "tool.pdf": "failed",
    }
    assert Document.objects.get(original_filename="policy.md").uploaded_by == admin_user

    again = _upload(
        client,
        collection,
        SimpleUploadedFile("copy.md", b"# Policy\n\nBadges are worn at all times."),
    )
    assert "already in the collection" in again.content.decode()
    assert Document.objects.count() == 3


def test_upload_page_needs_the_add_permission(client, staff_user):
    client.force_login(staff_user)
    response = client.get(reverse("admin:documents_document_upload"))
    assert response.status_code == 302  # not admin staff: sent to the admin login


def test_upload_refuses_more_files_than_the_limit(client, admin_user, media, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    client.force_login(admin_user)
    files = [SimpleUploadedFile(f"n{i}.txt", b"text %d" % i) for i in range(3)]
    response = client.post(
        reverse("admin:documents_document_upload"),
        {"collection": CollectionFactory().pk, "files": files},
    )
    assert response.status_code == 400
    assert Document.objects.count() == 0


def test_admin_actions_retry_and_reindex_call_the_services(client, admin_user, media):
    collection = CollectionFactory()
    client.force_login(admin_user)
    _upload(client, collection, SimpleUploadedFile("empty.txt", b""))
    failed = Document.objects.get()
    response = client.post(
        reverse("admin:documents_document_changelist"),
        {"action": "retry_documents", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert "upload the file again" in response.content.decode()


def test_deleting_a_document_in_the_admin_removes_its_file(
    client, admin_user, media, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    client.force_login(admin_user)
    _upload(client, CollectionFactory(), SimpleUploadedFile("a.md", b"# A\n\nAlpha."))
    document = Document.objects.get()
    name = document.file.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:documents_document_delete", args=[document.pk]),
            {"post": "yes"},
        )
    assert not Document.objects.exists()
    assert not default_storage.exists(name)


def test_oversized_upload_is_not_stored_and_is_recorded_as_too_large(
    client, admin_user, media, settings, tmp_path
):
    settings.MAX_UPLOAD_BYTES = 256 * 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    (tmp_path / "upload-tmp").mkdir()
    client.force_login(admin_user)
    big = SimpleUploadedFile("huge.txt", b"word " * 400_000)  # about 2 MB
    small = SimpleUploadedFile("small.txt", b"A small note about parking.")
    response = _upload(client, CollectionFactory(), big, small)
    page = response.content.decode()
    assert "\u201chuge.txt\u201d: rejected." in page
    assert "limit is" in page
    assert "\u201csmall.txt\u201d: queued for indexing." in page
    huge = Document.objects.get(original_filename="huge.txt")
    assert (huge.status, huge.error_code, huge.file.name) == ("failed", "too_large", "")
    assert huge.size_bytes > settings.MAX_UPLOAD_BYTES
    assert list((tmp_path / "upload-tmp").iterdir()) == []  # nothing left on disk
