"""An upload through /api, indexed by the real Celery worker, then searched."""

from __future__ import annotations

import time

import pytest

from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)


@pytest.fixture(autouse=True)
def shared_media(settings, celery_worker):
    settings.MEDIA_ROOT = celery_worker.media_root


def test_an_uploaded_file_becomes_ready_and_searchable(boss_api, celery_worker):
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    text = b"# Parking\n\nStaff park on level 2.\n\n# Canteen\n\nSoup on Mondays.\n"
    response = boss_api.post(
        f"/collections/{collection.pk}/documents",
        files=[("files", ("notes.md", text))],
        headers={"Idempotency-Key": "pipeline-1"},
    )
    assert response.status_code == 201, response.text
    document_id = response.json()["data"][0]["document"]["id"]

    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        document = boss_api.get(f"/documents/{document_id}").json()
        seen.append(document["status"])
        if document["status"] in ("ready", "failed"):
            break
        time.sleep(0.25)
    assert document["status"] == "ready", document
    assert set(seen) <= {"queued", "parsing", "embedding", "ready"}
    assert document["progress"]["done"] == document["progress"]["total"] > 0
    assert "document_ingest_task[" in celery_worker.log()

    # Sent again with the same Idempotency-Key: the first reply, nothing new.
    again = boss_api.post(
        f"/collections/{collection.pk}/documents",
        files=[("files", ("notes.md", text))],
        headers={"Idempotency-Key": "pipeline-1"},
    )
    assert again.json() == response.json()
    listed = boss_api.get(f"/collections/{collection.pk}/documents").json()["data"]
    assert [d["id"] for d in listed] == [document_id]

    found = boss_api.post(
        "/search",
        json={"query": "Where do staff park?", "collection_ids": [collection.pk]},
    ).json()["data"]
    assert found[0]["document_id"] == document_id
    assert "level 2" in found[0]["text"]
