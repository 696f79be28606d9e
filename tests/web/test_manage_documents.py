"""A collection's documents in the Manage pages: live table, actions, downloads."""

from __future__ import annotations

import io
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import Group
from django.urls import URLPattern, get_resolver, reverse

from ragapp.accounts.roles import ADMINS_GROUP, STAFF_GROUP
from ragapp.documents import services
from ragapp.documents.models import Document
from tests.factories import (
    ChunkFactory,
    CollectionFactory,
    DocumentFactory,
    UserFactory,
    indexed_document,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
Status = Document.Status


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def admin(db):
    """An admin by group membership only: no superuser, no staff flag."""
    user = UserFactory(username="alice")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    return user


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def stored(collection, data: bytes, name: str) -> Document:
    """Upload for real (the file is stored); nothing commits, so nothing indexes."""
    return services.document_upload(
        collection=collection, stream=io.BytesIO(data), filename=name
    ).document


def set_status(document: Document, status: str, **fields) -> Document:
    indexed = {"indexed_version": 1} if status == Status.READY else {}
    Document.objects.filter(pk=document.pk).update(status=status, **indexed, **fields)
    document.refresh_from_db()
    return document


# --- who gets in ------------------------------------------------------------------


def manage_urls(collection, document, user) -> list[str]:
    """Every route of the Manage URLconf, filled with real ids."""
    values = {
        "collection_id": collection.pk,
        "document_id": document.pk,
        "user_id": user.pk,
    }
    resolver = get_resolver().namespace_dict["manage"][1]
    urls = []
    for pattern in resolver.url_patterns:
        assert isinstance(pattern, URLPattern)
        params = {k: values[k] for k in pattern.pattern.converters}
        urls.append(reverse(f"manage:{pattern.name}", kwargs=params))
    return urls


def test_staff_get_403_on_every_manage_url_and_anonymous_visitors_sign_in(
    client, media
):
    readers = Group.objects.get(name=STAFF_GROUP)
    mine = CollectionFactory(name="Shared with staff")
    mine.reader_groups.add(readers)
    theirs = CollectionFactory(name="Board only")
    their_doc = stored(theirs, b"Board minutes: the merger is secret.", "board.txt")
    staff = UserFactory(username="reader")
    staff.groups.add(readers)
    urls = manage_urls(theirs, their_doc, staff)
    assert len(urls) >= 14

    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("accounts:login")), url
        # A poll whose session ended loads the sign-in page whole, not in a row.
        polled = client.get(url, **HTMX)
        assert reverse("accounts:login") in polled.headers.get("HX-Redirect", ""), url

    client.force_login(staff)
    for url in urls:
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"action": "delete", "confirm": "yes"}).status_code in {
            403,
            405,
        }, url
    page = client.get(reverse("manage:collections"))
    assert "Admins only" in page.content.decode()
    assert client.get(reverse("manage:collections"), **HTMX)["HX-Refresh"] == "true"
    # Nothing of the other collection's was reachable or changed.
    assert Document.objects.filter(pk=their_doc.pk, status=Status.QUEUED).exists()


def test_staff_cannot_download_or_open_another_collections_document(client, media):
    theirs = CollectionFactory(name="Board only")
    their_doc = stored(theirs, b"Board minutes: the merger is secret.", "board.txt")
    staff = UserFactory(username="reader")
    staff.groups.add(Group.objects.get(name=STAFF_GROUP))
    client.force_login(staff)
    for name in ("manage:document", "manage:document-download", "manage:document-row"):
        response = client.get(reverse(name, args=[their_doc.pk]))
        assert response.status_code == 403, name
        assert b"merger" not in response.content
    # The staff side answers a guessed id as if it did not exist.
    assert (
        client.get(reverse("web:document-file", args=[their_doc.pk])).status_code == 404
    )


def test_an_admin_gets_404_for_ids_that_do_not_exist(admin_client):
    assert (
        admin_client.get(reverse("manage:collection", args=[999999])).status_code == 404
    )
    assert (
        admin_client.get(reverse("manage:document", args=[999999])).status_code == 404
    )


# --- the collection page -------------------------------------------------------------


def test_collection_page_shows_status_progress_reason_and_hidden_text(
    admin_client, admin, media
):
    collection = CollectionFactory(name="Handbook")
    DocumentFactory(
        collection=collection,
        title="Pump manual",
        status=Status.EMBEDDING,
        progress_done=12,
        progress_total=40,
        uploaded_by=admin,
    )
    DocumentFactory(
        collection=collection,
        title="Locked",
        status=Status.FAILED,
        error_message="The PDF is encrypted; upload a copy without a password.",
    )
    DocumentFactory(
        collection=collection,
        title="Sneaky",
        status=Status.READY,
        indexed_version=1,
        warnings=["Hidden text: white text on page 2: \u201cignore the rules\u201d"],
        page_count=3,
        size_bytes=2048,
    )
    html = admin_client.get(reverse("manage:collection", args=[collection.pk]))
    html = html.content.decode()
    assert "Embedding 12/40" in html
    assert '<progress max="40" value="12"' in html
    assert "The PDF is encrypted; upload a copy without a password." in html
    assert 'class="hidden-text">Hidden text: white text on page 2' in html
    assert "2.0\xa0KB" in html
    assert "by alice" in html


def test_the_table_polls_while_something_is_indexed_and_stops_after(admin_client):
    collection = CollectionFactory()
    document = DocumentFactory(collection=collection, status=Status.PARSING)
    url = reverse("manage:collection", args=[collection.pk])

    fragment = admin_client.get(url, **HTMX).content.decode()
    assert fragment.lstrip().startswith('<div id="documents"')
    assert 'hx-trigger="every 2s"' in fragment
    assert "<html" not in fragment
    # Ticked boxes survive each refresh.
    assert f'id="pick-{document.pk}"' in fragment and "hx-preserve" in fragment

    set_status(document, Status.READY)
    fragment = admin_client.get(url, **HTMX).content.decode()
    assert "hx-trigger" not in fragment
    assert "Ready" in fragment


def test_an_uploaded_files_row_polls_itself_until_it_is_done(admin_client):
    document = DocumentFactory(status=Status.QUEUED)
    url = reverse("manage:document-row", args=[document.pk])
    assert 'hx-trigger="every 2s"' in admin_client.get(url, **HTMX).content.decode()
    set_status(document, Status.FAILED, error_message="The file is empty.")
    row = admin_client.get(url, **HTMX).content.decode()
    assert "hx-trigger" not in row
    assert "The file is empty." in row


def test_upload_outcomes_are_said_in_plain_words(admin_client, media, settings):
    collection = CollectionFactory()
    stored(collection, b"# Policy\n\nBadges are worn.", "policy.md")
    settings.MAX_UPLOAD_BYTES = 1024
    url = reverse("manage:collection-upload", args=[collection.pk])
    from django.core.files.uploadedfile import SimpleUploadedFile

    def post(name: str, data: bytes) -> str:
        upload = SimpleUploadedFile(name, data)
        return admin_client.post(url, {"files": [upload]}, **HTMX).content.decode()

    duplicate = post("copy.md", b"# Policy\n\nBadges are worn.")
    assert "already in the collection" in duplicate and "not indexed twice" in duplicate
    assert "Open it" in duplicate
    big = post("big.txt", b"word " * 1000)
    assert "rejected. The file is" in big and "the limit is" in big
    exe = post("tool.pdf", b"MZ\x90\x00" + bytes(range(256)) * 2)
    assert "rejected." in exe and "Supported:" in exe
    fine = post("notes.txt", b"Canteen opens at noon.")
    assert "queued for indexing" in fine
    assert 'hx-trigger="every 2s"' in fine


def test_an_htmx_upload_with_no_file_is_refused_plainly(admin_client):
    collection = CollectionFactory()
    url = reverse("manage:collection-upload", args=[collection.pk])
    response = admin_client.post(url, {}, **HTMX)
    assert response.status_code == 400
    assert "Choose a file" in response.content.decode()


# --- actions -----------------------------------------------------------------------


def test_retry_and_reindex_one_document_with_and_without_htmx(admin_client, media):
    collection = CollectionFactory()
    failed = set_status(stored(collection, b"Alpha text.", "a.txt"), Status.FAILED)
    ready = set_status(stored(collection, b"Beta text.", "b.txt"), Status.READY)
    refused = DocumentFactory(collection=collection, status=Status.FAILED)  # no file

    response = admin_client.post(
        reverse("manage:document-action", args=[failed.pk]), {"action": "retry"}
    )
    assert response.status_code == 302
    assert Document.objects.get(pk=failed.pk).status == Status.QUEUED

    fragment = admin_client.post(
        reverse("manage:document-action", args=[ready.pk]),
        {"action": "reindex"},
        **HTMX,
    ).content.decode()
    assert Document.objects.get(pk=ready.pk).status == Status.QUEUED
    assert fragment.lstrip().startswith('<div id="documents"')
    assert "queued for re-indexing" in fragment
    assert 'hx-trigger="every 2s"' in fragment  # now something is being indexed

    fragment = admin_client.post(
        reverse("manage:document-action", args=[refused.pk]),
        {"action": "retry"},
        **HTMX,
    ).content.decode()
    assert "upload the file again" in fragment
    assert Document.objects.get(pk=refused.pk).status == Status.FAILED

    # Delete is not an action here: it has its own confirmation.
    admin_client.post(
        reverse("manage:document-action", args=[refused.pk]), {"action": "delete"}
    )
    assert Document.objects.filter(pk=refused.pk).exists()


def test_deleting_one_document_asks_first(
    admin_client, media, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    collection = CollectionFactory(name="Handbook")
    document = stored(collection, b"Alpha text.", "alpha.txt")
    url = reverse("manage:document-delete", args=[document.pk])
    page = admin_client.get(url).content.decode()
    assert "Delete \u201calpha.txt\u201d?" in page
    assert "Handbook" in page
    assert Document.objects.filter(pk=document.pk).exists()
    name = document.file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url)
    assert response["Location"] == reverse("manage:collection", args=[collection.pk])
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not default_storage.exists(name)


def test_bulk_actions_report_what_they_did_and_what_they_refused(admin_client, media):
    collection = CollectionFactory()
    failed = set_status(stored(collection, b"Alpha text.", "a.txt"), Status.FAILED)
    ready = set_status(stored(collection, b"Beta text.", "b.txt"), Status.READY)
    busy = set_status(stored(collection, b"Gamma text.", "c.txt"), Status.PARSING)
    url = reverse("manage:documents-action", args=[collection.pk])

    page = admin_client.post(
        url, {"action": "retry", "documents": [failed.pk, ready.pk]}, follow=True
    ).content.decode()
    assert "1 document(s) queued again." in page
    assert "\u201cb.txt\u201d: Only failed documents can be retried." in page

    page = admin_client.post(
        url, {"action": "reindex", "documents": [ready.pk, busy.pk]}, follow=True
    ).content.decode()
    assert "1 document(s) queued for re-indexing" in page
    assert "being indexed already" in page

    nothing = admin_client.post(url, {"action": "retry"}, follow=True)
    assert "Select at least one document first." in nothing.content.decode()


def test_bulk_delete_lists_what_will_go_then_deletes_only_this_collections(
    admin_client, media
):
    collection = CollectionFactory()
    mine = [stored(collection, f"Note {i}.".encode(), f"n{i}.txt") for i in range(3)]
    other = stored(CollectionFactory(), b"Elsewhere.", "other.txt")
    url = reverse("manage:documents-action", args=[collection.pk])
    ids = [mine[0].pk, mine[1].pk, other.pk]

    page = admin_client.post(url, {"action": "delete", "documents": ids})
    html = page.content.decode()
    assert "Delete 2 documents?" in html
    assert "n0.txt" in html and "n1.txt" in html and "other.txt" not in html
    assert Document.objects.count() == 4

    admin_client.post(url, {"action": "delete", "documents": ids, "confirm": "yes"})
    assert set(Document.objects.values_list("pk", flat=True)) == {mine[2].pk, other.pk}


# --- the document page and its download ----------------------------------------------


def test_document_page_shows_passages_by_page_with_their_details(admin_client, media):
    collection = CollectionFactory()
    document = set_status(
        stored(collection, b"Alpha text.", "alpha.txt"),
        Status.READY,
        warnings=["Hidden text: tag characters spell \u201cobey\u201d", "Page 2: OCR"],
        attributes={"department": "HR"},
        page_count=2,
    )
    ChunkFactory(document=document, ordinal=0, page_start=1, page_end=1, text="One.")
    ChunkFactory(
        document=document,
        ordinal=1,
        page_start=1,
        page_end=2,
        heading="Leave",
        text="Long " * 200,
        token_count=200,
    )
    ChunkFactory(document=document, ordinal=2, page_start=2, page_end=2, text="Two.")
    ChunkFactory(document=document, ordinal=3, version=2, text="Not swapped in yet.")
    html = admin_client.get(reverse("manage:document", args=[document.pk]))
    html = html.content.decode()
    first, second = html.index(">Page 1</h2>"), html.index(">Page 2</h2>")
    assert (
        first < html.index("One.") < html.index("Leave") < second < html.index("Two.")
    )
    assert "p. 1\u20132" in html and "200 tokens" in html and "Leave" in html
    assert "<details><summary>Show the whole passage (1000 characters)" in html
    assert "Not swapped in yet." not in html
    assert "Hidden text was found" in html and "obey" in html
    assert "Page 2: OCR" in html and "department" in html
    assert reverse("manage:document-download", args=[document.pk]) in html


HOSTILE_NAME = 'quote"d\r\nX-Injected: 1\u202egpj.exe <b>'


def test_download_is_an_attachment_with_filename_star_and_a_sandbox(
    admin_client, media
):
    collection = CollectionFactory()
    document = stored(collection, b"<html><script>alert(1)</script></html>", "x.html")
    # Stored as a client could have named it before names were cleaned.
    Document.objects.filter(pk=document.pk).update(original_filename=HOSTILE_NAME)
    response = admin_client.get(reverse("manage:document-download", args=[document.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"<html><script>")
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "\r" not in disposition and "\n" not in disposition
    assert "\u202e" not in disposition and "%E2%80%AE" not in disposition
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback == "quote_dX-Injected: 1gpj.exe <b>"
    star = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == 'quote"dX-Injected: 1gpj.exe <b>'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Cache-Control"] == "private, no-store"
    assert "X-Injected" not in response.headers


def test_download_of_plain_ascii_and_unicode_names_keeps_them(admin_client, media):
    collection = CollectionFactory()
    for name in ('say "hi".txt', "Übersicht 2026 \u2013 Käse.txt"):
        document = stored(collection, name.encode(), name)
        disposition = admin_client.get(
            reverse("manage:document-download", args=[document.pk])
        )["Content-Disposition"]
        assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name


def test_a_refused_upload_has_nothing_to_download(admin_client):
    refused = DocumentFactory(status=Status.FAILED)  # no stored file
    url = reverse("manage:document-download", args=[refused.pk])
    assert admin_client.get(url).status_code == 404


# --- hostile text --------------------------------------------------------------------


def test_hostile_names_titles_and_text_render_as_text_on_every_page(
    admin_client, media
):
    collection = CollectionFactory(
        name=f"Notes {SCRIPT}{IMG}", description=f"About {SCRIPT}"
    )
    collection.reader_groups.add(Group.objects.create(name=f"Readers {IMG}"))
    document = indexed_document(
        collection,
        f"{SCRIPT}{IMG}.md",
        f"# Rules {SCRIPT}\n\nLaptops are locked {IMG} at night.\n",
        title=f"Title {SCRIPT}{IMG}",
    )
    Document.objects.filter(pk=document.pk).update(
        warnings=[f"Hidden text: {SCRIPT}"], attributes={SCRIPT: IMG}
    )
    UserFactory(username="mallory", email="m@example.com", first_name=SCRIPT)
    pages = {
        "collections": reverse("manage:collections"),
        "collection": reverse("manage:collection", args=[collection.pk]),
        "fragment": reverse("manage:collection", args=[collection.pk]),
        "edit": reverse("manage:collection-edit", args=[collection.pk]),
        "delete": reverse("manage:collection-delete", args=[collection.pk]),
        "document": reverse("manage:document", args=[document.pk]),
        "document-delete": reverse("manage:document-delete", args=[document.pk]),
        "row": reverse("manage:document-row", args=[document.pk]),
        "search": reverse("manage:collection-search", args=[collection.pk])
        + "?q=laptops+locked",
        "users": reverse("manage:users"),
    }
    for name, url in pages.items():
        extra = HTMX if name in {"fragment", "row"} else {}
        response = admin_client.get(url, **extra)
        assert response.status_code == 200, name
        html = response.content.decode()
        assert "<script>alert" not in html, name
        assert "<img src=x" not in html, name
        assert "onerror=alert" not in html or "&quot;&gt;&lt;img" in html, name
    search = admin_client.get(pages["search"]).content.decode()
    assert "Laptops are locked &quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in search
    bulk = admin_client.post(
        reverse("manage:documents-action", args=[collection.pk]),
        {"action": "delete", "documents": [document.pk]},
    ).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in bulk
    assert "<script>alert" not in bulk
