"""/api documents: upload (idempotent), status and progress, actions, download."""

from __future__ import annotations

import pytest

from ragapp.api.models import IdempotentRequest
from ragapp.documents.models import Document
from tests.api.native.conftest import assert_error

pytestmark = pytest.mark.django_db

NOTES = b"# Parking\n\nStaff park on level 2.\n"


def upload(client, collection, *files, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/collections/{collection.pk}/documents",
        files=[("files", f) for f in files],
        headers=headers,
    )


def test_an_admin_uploads_several_files_each_with_its_outcome(boss_api, handbook):
    response = upload(
        boss_api,
        handbook,
        ("notes.md", NOTES),
        ("empty.txt", b""),
        ("handbook-again.md", Document.objects.get().file.read()),
    )
    assert response.status_code == 201, response.text
    notes, empty, again = response.json()["data"]
    assert notes["created"] and notes["document"]["status"] == "queued"
    assert notes["message"] == "\u201cnotes.md\u201d: queued for indexing."
    assert notes["document"]["filename"] == "notes.md"
    assert empty["document"]["status"] == "failed"
    assert empty["document"]["error"] == {
        "code": "empty",
        "message": "The file is empty.",
    }
    assert not again["created"]
    assert (
        again["document"]["id"]
        == Document.objects.get(original_filename="handbook.md").pk
    )


def test_the_same_idempotency_key_returns_the_first_reply_and_uploads_once(
    boss_api, handbook
):
    first = upload(boss_api, handbook, ("notes.md", NOTES), key="upload-42")
    count = Document.objects.count()
    again = upload(boss_api, handbook, ("notes.md", NOTES), key="upload-42")
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Document.objects.count() == count
    assert IdempotentRequest.objects.get().status == 201


def test_the_same_idempotency_key_with_another_body_is_a_422(boss_api, handbook):
    upload(boss_api, handbook, ("notes.md", NOTES), key="upload-43")
    error = assert_error(
        upload(
            boss_api, handbook, ("other.md", b"# Other\n\nText.\n"), key="upload-43"
        ),
        422,
        "idempotency_key_reused",
    )
    assert error["param"] == "Idempotency-Key"
    assert not Document.objects.filter(original_filename="other.md").exists()


def test_an_idempotency_key_is_per_api_key(api, make_key, boss, handbook):
    first = upload(api(make_key(boss).secret), handbook, ("a.md", NOTES), key="k")
    second = upload(api(make_key(boss).secret), handbook, ("a.md", NOTES), key="k")
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["data"][0]["created"]
    assert not second.json()["data"][0]["created"]  # the collection knows it


def test_a_bad_idempotency_key_is_a_400(boss_api, handbook):
    error = assert_error(
        upload(boss_api, handbook, ("n.md", NOTES), key="has space"), 400
    )
    assert error["param"] == "Idempotency-Key"


def test_staff_and_read_only_keys_may_not_upload(
    api, make_key, staff_api, boss, handbook
):
    assert_error(upload(staff_api, handbook, ("n.md", NOTES)), 403)
    read_only = api(make_key(boss, read_only=True).secret)
    assert_error(upload(read_only, handbook, ("n.md", NOTES)), 403)
    assert not Document.objects.filter(original_filename="n.md").exists()


def test_uploading_without_files_is_a_400_naming_them(boss_api, handbook):
    error = assert_error(
        boss_api.post(f"/collections/{handbook.pk}/documents", data={"x": "1"}), 400
    )
    assert error["param"] == "files"


def test_documents_list_and_filter_by_status(boss_api, handbook):
    upload(boss_api, handbook, ("notes.md", NOTES), ("empty.txt", b""))
    url = f"/collections/{handbook.pk}/documents"
    everything = boss_api.get(url).json()["data"]
    assert [d["filename"] for d in everything] == [
        "empty.txt",
        "notes.md",
        "handbook.md",
    ]
    failed = boss_api.get(url, params={"status": "failed"}).json()["data"]
    assert [d["filename"] for d in failed] == ["empty.txt"]
    first = boss_api.get(url, params={"limit": 2}).json()
    rest = boss_api.get(url, params={"limit": 2, "cursor": first["next_cursor"]})
    assert [d["filename"] for d in rest.json()["data"]] == ["handbook.md"]
    assert rest.json()["next_cursor"] is None
    assert_error(boss_api.get(url, params={"status": "lost"}), 400)


def test_a_document_shows_status_and_embedding_progress(staff_api, handbook):
    document = Document.objects.get()
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.EMBEDDING, progress_done=3, progress_total=8
    )
    body = staff_api.get(f"/documents/{document.pk}").json()
    assert body["status"] == "embedding"
    assert body["progress"] == {"done": 3, "total": 8}
    assert body["error"] is None
    assert body["collection_id"] == handbook.pk


def test_staff_cannot_see_another_groups_documents(staff_api, handbook, garden):
    roses = Document.objects.get(collection=garden)
    assert_error(staff_api.get(f"/documents/{roses.pk}"), 404, "not_found")
    assert_error(staff_api.get(f"/documents/{roses.pk}/file"), 404)
    assert_error(staff_api.get(f"/collections/{garden.pk}/documents"), 404)


def test_retry_a_failed_document_and_reindex_a_ready_one(boss_api, handbook):
    document = Document.objects.get()
    reindexed = boss_api.post(f"/documents/{document.pk}/reindex")
    assert reindexed.status_code == 202, reindexed.text
    assert reindexed.json()["status"] == "queued"
    # Queued already: re-indexing again does not fit, and says why.
    error = assert_error(boss_api.post(f"/documents/{document.pk}/reindex"), 409)
    assert "being indexed" in error["message"]
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.FAILED, error_code="timeout", error_message="Slow."
    )
    retried = boss_api.post(f"/documents/{document.pk}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued" and retried.json()["error"] is None


def test_retrying_a_ready_document_is_a_409(boss_api, handbook):
    document = Document.objects.get()
    error = assert_error(boss_api.post(f"/documents/{document.pk}/retry"), 409)
    assert error["message"] == "Only failed documents can be retried."


def test_staff_may_not_retry_reindex_or_delete(staff_api, handbook):
    document = Document.objects.get()
    for method, path in (
        ("POST", "retry"),
        ("POST", "reindex"),
        ("DELETE", ""),
    ):
        url = f"/documents/{document.pk}/{path}".rstrip("/")
        assert_error(staff_api.request(method, url), 403)
    assert Document.objects.filter(pk=document.pk).exists()


def test_an_admin_deletes_a_document(boss_api, handbook):
    document = Document.objects.get()
    response = boss_api.delete(f"/documents/{document.pk}")
    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert_error(boss_api.get(f"/documents/{document.pk}"), 404)


def test_the_original_downloads_as_a_sandboxed_attachment(staff_api, handbook):
    document = Document.objects.get()
    response = staff_api.get(f"/documents/{document.pk}/file")
    assert response.status_code == 200
    assert response.content.startswith(b"# Travel policy")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="handbook.md"'
    )
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_refused_upload_has_nothing_to_download(boss_api, handbook):
    empty = upload(boss_api, handbook, ("empty.txt", b"")).json()["data"][0]
    assert_error(boss_api.get(f"/documents/{empty['document']['id']}/file"), 404)
