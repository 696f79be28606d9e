"""The pipeline through a real Celery worker process: kills, redelivery, poison.

The worker is the session's real `celery worker` (prefork, concurrency 1) on
the real Redis. Tests commit their rows (transaction=True) so the worker sees
them. The slow documents use the default MiniLM embedder (about 30 passages a
second here), which leaves time to kill the worker mid-document.
"""

from __future__ import annotations

import io
import os
import signal
import time
from datetime import timedelta

import pytest

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk, Document
from ragapp.documents.tasks import documents_sweep_task
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from tests.factories import CollectionFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
SLOW_MODEL = "local/all-MiniLM-L6-v2"
Status = Document.Status


@pytest.fixture(autouse=True)
def shared_media(settings, celery_worker):
    settings.MEDIA_ROOT = celery_worker.media_root


def collection_for(model: str):
    return CollectionFactory(
        embedding_model=model, embedding_dimensions=EMBEDDING_DIMENSIONS[model]
    )


def long_text(paragraphs: int, tag: str) -> bytes:
    """Return a plain-text document of about `paragraphs` passages."""
    body = "\n\n".join(
        f"Section {i} of the {tag} manual. "
        + " ".join(
            f"Step {i}.{j} checks valve {j} and records pressure." for j in range(20)
        )
        for i in range(paragraphs)
    )
    return body.encode()


def upload(collection, data: bytes, name: str) -> Document:
    return services.document_upload(
        collection=collection, stream=io.BytesIO(data), filename=name
    ).document


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def document(pk: int) -> Document:
    return Document.objects.get(pk=pk)


def wait_until_done(pk: int, timeout: float = 180) -> Document:
    return wait_for(
        lambda: (d := document(pk)).status in {Status.READY, Status.FAILED} and d,
        timeout,
        f"document {pk} to finish",
    )


def assert_indexed_exactly_once(doc: Document) -> None:
    chunks = Chunk.objects.filter(document=doc)
    assert doc.status == Status.READY, doc.error_message
    assert set(chunks.values_list("version", flat=True)) == {doc.indexed_version}
    ordinals = list(chunks.values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(doc.progress_total))
    assert chunks.filter(embedding__isnull=True).count() == 0


def holder_pid(pk: int) -> int:
    return int(document(pk).claimed_by.rpartition(":")[2])


def test_uploaded_document_is_indexed_by_the_worker_process(celery_worker):
    doc = upload(
        collection_for(FAST_MODEL), b"# Canteen\n\nSoup on Mondays.", "menu.md"
    )
    doc = wait_until_done(doc.pk, timeout=60)
    assert_indexed_exactly_once(doc)
    assert "document_ingest_task[" in celery_worker.log()


def test_pool_child_killed_mid_document_is_finished_exactly_once(celery_worker):
    doc = upload(collection_for(SLOW_MODEL), long_text(120, "pump"), "pump.txt")
    wait_for(lambda: document(doc.pk).progress_done > 0, 120, "embedding to start")
    os.kill(holder_pid(doc.pk), signal.SIGKILL)
    doc = wait_until_done(doc.pk)
    assert_indexed_exactly_once(doc)
    assert doc.attempts == 0


def test_worker_killed_outright_is_recovered_by_the_next_worker(celery_worker):
    doc = upload(collection_for(SLOW_MODEL), long_text(120, "boiler"), "boiler.txt")
    wait_for(lambda: document(doc.pk).progress_done > 0, 120, "embedding to start")
    celery_worker.kill()
    assert document(doc.pk).status == Status.EMBEDDING
    celery_worker.start()
    # What beat does every RAGAPP_INGEST_SWEEP_SECONDS: the dead holder is seen.
    found = ingestion.documents_needing_work(stale_after=timedelta(minutes=5))
    assert doc.pk in found[ingestion.EMBED]
    documents_sweep_task.apply()
    doc = wait_until_done(doc.pk)
    assert_indexed_exactly_once(doc)


def test_document_that_keeps_killing_its_worker_is_failed_and_others_finish(
    celery_worker,
):
    """T29: each delivery of the poison document dies; it is failed, never looped."""
    poison = upload(collection_for(SLOW_MODEL), long_text(150, "poison"), "poison.txt")
    fast = collection_for(FAST_MODEL)
    healthy = [
        upload(fast, f"# Note {i}\n\nRoom {i} is free on Fridays.".encode(), f"n{i}.md")
        for i in range(5)
    ]
    killed: set[int] = set()

    def failed_or_running_again() -> Document | None:
        current = document(poison.pk)
        if current.status == Status.FAILED:
            return current
        pid = holder_pid_or_none(poison.pk)
        embedding_now = current.status == Status.EMBEDDING and current.claim_token
        if embedding_now and pid not in killed:
            return current
        return None

    while (current := wait_for(failed_or_running_again, 180, "a delivery")).status != (
        Status.FAILED
    ):
        pid = holder_pid(current.pk)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pytest.fail(
                f"The holder {pid} of {document(current.pk).__dict__} was gone "
                f"before the kill (killed so far: {killed}).\n"
                + celery_worker.log()[-6000:]
            )
        killed.add(pid)
    assert current.error_code == "worker_lost"
    assert len(killed) == ingestion.MAX_ATTEMPTS, celery_worker.log()[-6000:]
    for doc in healthy:
        assert_indexed_exactly_once(wait_until_done(doc.pk, timeout=120))
    # Failed for good: a later delivery (e.g. the sweeper) does nothing.
    documents_sweep_task.apply()
    time.sleep(1)
    assert document(poison.pk).status == Status.FAILED


def holder_pid_or_none(pk: int) -> int | None:
    current = document(pk)
    if current.claim_token is None:  # between stages: nobody holds it
        return None
    return int(current.claimed_by.rpartition(":")[2])


def test_message_redelivered_while_still_running_does_no_second_run(celery_worker):
    """T33: a task outliving the visibility timeout is delivered again; it must not run twice."""
    doc = upload(collection_for(SLOW_MODEL), long_text(500, "turbine"), "turbine.txt")
    started = wait_for(
        lambda: document(doc.pk).progress_done > 0 and time.monotonic(), 120, "start"
    )
    doc = wait_until_done(doc.pk, timeout=300)
    assert time.monotonic() - started > celery_worker.VISIBILITY_TIMEOUT
    assert_indexed_exactly_once(doc)
    assert doc.indexed_version == 1
