"""An upload through the Manage page, indexed by the real Celery worker.

The worker is the session's real `celery worker` on the real Redis; the test
commits (transaction=True) so it sees the upload. The row the upload POST
answers with is polled the way htmx polls it, until it says the document is
ready and stops asking to be polled.
"""

from __future__ import annotations

import re
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ragapp.documents.models import Chunk, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory, UserFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def shared_media(settings, celery_worker):
    settings.MEDIA_ROOT = celery_worker.media_root


def test_an_uploaded_file_goes_from_queued_to_ready_in_its_polled_row(
    client, celery_worker
):
    # A superuser needs no role groups, which the transactional flush removes.
    client.force_login(UserFactory(username="root", is_superuser=True))
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    text = b"# Parking\n\nStaff park on level 2.\n\n# Canteen\n\nSoup on Mondays.\n"
    response = client.post(
        reverse("manage:collection-upload", args=[collection.pk]),
        {"files": [SimpleUploadedFile("notes.md", text)]},
        **HTMX,
    )
    assert response.status_code == 200
    first = response.content.decode()
    assert "\u201cnotes.md\u201d: queued for indexing." in first
    document_id = int(re.search(r'id="doc-(\d+)"', first).group(1))
    row_url = reverse("manage:document-row", args=[document_id])
    assert f'hx-get="{row_url}" hx-trigger="every 2s"' in first

    seen = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        row = client.get(row_url, **HTMX).content.decode()
        seen.update(re.findall(r'class="status status-(\w+)"', row))
        if "hx-trigger" not in row:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the row never stopped polling; last seen:\n{row}")

    assert '<span class="status status-ready">Ready</span>' in row, row
    assert seen <= {"queued", "parsing", "embedding", "ready"}
    document = Document.objects.get(pk=document_id)
    assert document.status == Document.Status.READY
    assert Chunk.objects.filter(
        document=document, version=document.indexed_version
    ).exists()
    # The collection page agrees, and no longer polls either.
    table = client.get(
        reverse("manage:collection", args=[collection.pk]), **HTMX
    ).content.decode()
    assert "Ready" in table and "hx-trigger" not in table
    assert "document_ingest_task[" in celery_worker.log()
