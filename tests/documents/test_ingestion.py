"""The ingestion pipeline, run in this process on real files, real parsing, real DB.

Each bad input is a real file made here. The embedder is the fast local one
(wordllama) unless a test is about the embedder; the worker-process tests are
in test_pipeline_worker.py.
"""

from __future__ import annotations

import io
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone

from ragapp.documents import ingestion, services
from ragapp.documents.chunking import embedding_text, passage_sentences
from ragapp.documents.exceptions import DocumentActionError
from ragapp.documents.models import Chunk, ChunkSentence, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.embeddings import get_embedding_provider
from tests.factories import ChunkFactory, CollectionFactory
from tests.files import docx_ratio_bomb, text_pdf

pytestmark = pytest.mark.django_db

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
Status = Document.Status


@pytest.fixture
def collection():
    return CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def upload(collection, data: bytes, name: str) -> services.UploadOutcome:
    return services.document_upload(
        collection=collection, stream=io.BytesIO(data), filename=name
    )


def ingest(outcome: services.UploadOutcome) -> Document:
    ingestion.document_ingest(document_id=outcome.document.pk)
    return Document.objects.get(pk=outcome.document.pk)


MARKDOWN = b"""# Travel policy

Staff book trains for trips under four hours. Flights need approval.

## Expenses

Meals are refunded up to 40 euros a day with receipts.
"""


def test_markdown_goes_from_queued_to_ready_with_embedded_chunks(collection):
    outcome = upload(collection, MARKDOWN, "travel.md")
    assert outcome.created
    assert outcome.document.status == Status.QUEUED
    assert outcome.document.content_type == "text/markdown"
    document = ingest(outcome)
    assert document.status == Status.READY, document.error_message
    assert document.indexed_version == 1
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert chunks
    assert document.progress_done == document.progress_total == len(chunks)
    assert all(len(c.embedding) == collection.embedding_dimensions for c in chunks)
    assert any("40 euros" in c.text and c.heading.endswith("Expenses") for c in chunks)
    assert all(c.page_start is None for c in chunks)


def _floats(vector) -> list[float]:
    return [float(x) for x in getattr(vector, "to_list", lambda: vector)()]


def test_every_sentence_of_a_chunk_is_embedded_on_its_own(collection):
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    provider = get_embedding_provider(collection.embedding_model)
    chunks = Chunk.objects.filter(document=document).prefetch_related("sentences")
    several = 0
    for chunk in chunks:
        spans = passage_sentences(chunk.text)
        kept = list(chunk.sentences.order_by("ordinal"))
        assert [(s.ordinal, s.start, s.end) for s in kept] == [
            (span.ordinal, span.start, span.end) for span in spans
        ]
        if len(spans) == 1:
            # One sentence: the chunk's own vector, not a second embedding.
            assert _floats(kept[0].embedding) == pytest.approx(
                list(chunk.embedding), abs=1e-3
            )
            continue
        several += 1
        expected = provider.embed(
            [embedding_text(chunk.heading, span.text) for span in spans]
        )
        for sentence, vector in zip(kept, expected, strict=True):
            # Half precision: three significant digits.
            assert _floats(sentence.embedding) == pytest.approx(vector, abs=2e-3)
    assert several, "the fixture should have a chunk of several sentences"


def test_sentences_are_not_embedded_when_switched_off(collection, settings):
    settings.INDEX_SENTENCES = False
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    assert document.status == Status.READY
    assert not ChunkSentence.objects.filter(chunk__document=document).exists()


def test_a_second_writer_of_the_same_batch_adds_no_sentence(collection):
    """A worker that lost its claim may still write: its rows collide and drop."""
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    before = ChunkSentence.objects.filter(chunk__document=document).count()
    batch = list(Chunk.objects.filter(document=document))
    provider = get_embedding_provider(collection.embedding_model)
    rows = ingestion._embed_batch(provider, batch)
    ChunkSentence.objects.bulk_create(rows, ignore_conflicts=True)
    assert ChunkSentence.objects.filter(chunk__document=document).count() == before


def test_pdf_chunks_know_their_pages(collection):
    pdf = text_pdf(
        [
            ["Chapter one talks about onboarding new staff members."],
            ["Chapter two explains the annual security awareness training."],
            ["Chapter three lists the holidays observed by the office."],
        ]
    )
    document = ingest(upload(collection, pdf, "handbook.pdf"))
    assert document.status == Status.READY, document.error_message
    assert document.page_count == 3
    training = Chunk.objects.get(document=document, text__contains="awareness")
    assert training.page_start <= 2 <= training.page_end
    holidays = Chunk.objects.get(document=document, text__contains="holidays")
    assert holidays.page_end == 3


def test_same_file_twice_is_recognised_and_not_indexed_twice(collection):
    first = upload(collection, MARKDOWN, "travel.md")
    second = upload(collection, MARKDOWN, "travel-copy.md")
    assert not second.created
    assert second.document.pk == first.document.pk
    assert "already in the collection" in second.message
    assert Document.objects.filter(collection=collection).count() == 1


def test_same_file_in_another_collection_is_a_new_document(collection):
    upload(collection, MARKDOWN, "travel.md")
    other = CollectionFactory(embedding_model=FAST_MODEL, embedding_dimensions=256)
    assert upload(other, MARKDOWN, "travel.md").created


def test_file_over_the_size_limit_is_refused_before_any_work(collection, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    outcome = upload(collection, b"x" * 2000, "big.txt")
    document = outcome.document
    assert document.status == Status.FAILED
    assert document.error_code == "too_large"
    assert "limit is" in document.error_message
    assert not document.file  # nothing stored
    with pytest.raises(DocumentActionError, match="upload the file again"):
        services.document_retry(document=document)


def test_empty_file_is_refused_with_a_reason(collection):
    document = upload(collection, b"", "empty.pdf").document
    assert (document.status, document.error_code) == (Status.FAILED, "empty")


def test_file_of_nothing_but_whitespace_is_refused_as_empty(collection):
    document = upload(collection, b" \n\t\r\n  \n", "blank.txt").document
    assert (document.status, document.error_code) == (Status.FAILED, "empty")
    assert document.error_message


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"MZ\x90\x00\x03" + bytes(range(256)) * 20, "invoice.pdf"),
        (bytes(range(256)) * 40, "report.pdf"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "scan.pdf"),
    ],
)
def test_binary_with_a_document_name_is_refused_by_its_content(collection, data, name):
    document = upload(collection, data, name).document
    assert document.status == Status.FAILED
    assert document.error_code
    assert "Supported:" in document.error_message


def test_client_file_name_never_becomes_a_path(collection, media_root):
    outcome = upload(collection, MARKDOWN, "../../../etc/passwd\x00.md")
    document = outcome.document
    assert document.original_filename == "passwd.md"
    stored = Path(document.file.path).resolve()
    assert stored.is_relative_to(Path(media_root).resolve())
    assert ".." not in document.file.name
    assert uuid.UUID(Path(document.file.name).name)  # a server-made name


def test_corrupt_pdf_fails_with_a_reason(collection):
    corrupt = b"%PDF-1.4\n" + bytes(range(256)) * 30 + b"\n%%EOF"
    document = ingest(upload(collection, corrupt, "broken.pdf"))
    assert document.status == Status.FAILED
    assert document.error_code
    assert document.error_message
    assert not Chunk.objects.filter(document=document).exists()


def test_truncated_pdf_fails_or_keeps_what_is_readable(collection):
    pdf = text_pdf([["A first page with enough words to index."], ["A second page."]])
    document = ingest(upload(collection, pdf[: len(pdf) // 2], "cut.pdf"))
    assert document.status in {Status.FAILED, Status.READY}
    if document.status == Status.FAILED:
        assert document.error_message


def test_html_full_of_scripts_keeps_only_visible_text(collection):
    html = b"""<!doctype html><html><head><title>Leave</title>
    <script>alert('x'); var secret = 'SCRIPTTEXT';</script>
    <style>body { color: STYLETEXT }</style></head>
    <body><h1>Leave policy</h1><p>Everyone gets 25 days of paid leave.</p>
    <div style="display:none">HIDDENTEXT</div><script>document.write('MORESCRIPT')</script>
    </body></html>"""
    document = ingest(upload(collection, html, "leave.html"))
    assert document.status == Status.READY, document.error_message
    text = " ".join(
        Chunk.objects.filter(document=document).values_list("text", flat=True)
    )
    assert "25 days of paid leave" in text
    for hidden in ("SCRIPTTEXT", "STYLETEXT", "MORESCRIPT", "HIDDENTEXT", "alert"):
        assert hidden not in text


@pytest.mark.parametrize(
    ("text", "encoding", "needle"),
    [
        ("Café crème, naïve résumé — déjà vu. " * 20, "cp1252", "naïve résumé"),
        ("Grüße aus Köln, Übermaß an Äpfeln. " * 20, "utf-16", "Übermaß an Äpfeln"),
        (
            "日本語の文書です。会議は明日の午後三時に始まります。" * 10,
            "shift_jis",
            "会議は明日の午後三時に始まります",
        ),
    ],
)
def test_text_in_odd_encodings_is_read_correctly(collection, text, encoding, needle):
    document = ingest(
        upload(collection, text.encode(encoding), f"notes-{encoding}.txt")
    )
    assert document.status == Status.READY, document.error_message
    indexed = "".join(
        Chunk.objects.filter(document=document).values_list("text", flat=True)
    )
    assert needle in indexed


def test_zip_bomb_named_docx_fails_fast_with_a_reason(collection):
    document = ingest(upload(collection, docx_ratio_bomb(40), "bomb.docx"))
    assert document.status == Status.FAILED
    assert document.error_code
    assert document.error_message


def test_zero_page_pdf_fails_with_a_reason(collection):
    document = ingest(upload(collection, text_pdf([]), "nothing.pdf"))
    assert document.status == Status.FAILED
    assert document.error_message


def test_document_over_the_page_limit_fails_with_the_limit(collection, settings):
    settings.MAX_PAGES_PER_DOCUMENT = 2
    document = ingest(upload(collection, text_pdf([["a"], ["b"], ["c"]]), "long.pdf"))
    assert document.status == Status.FAILED
    assert "2" in document.error_message


def test_document_over_the_chunk_limit_fails_with_the_limit(collection, settings):
    settings.MAX_CHUNKS_PER_DOCUMENT = 2
    long_text = "\n\n".join(f"Paragraph {i}. " + "word " * 150 for i in range(10))
    document = ingest(upload(collection, long_text.encode(), "long.txt"))
    assert document.status == Status.FAILED
    assert document.error_code == "too_many_chunks"


# --- claims: exactly once ----------------------------------------------------------


def test_a_second_claim_on_a_document_in_progress_gets_nothing(collection):
    document = upload(collection, MARKDOWN, "travel.md").document
    assert ingestion.document_claim(document_id=document.pk) is not None
    assert ingestion.document_claim(document_id=document.pk) is None


def test_ready_and_failed_documents_are_not_claimed_again(collection):
    ready = ingest(upload(collection, MARKDOWN, "travel.md"))
    failed = upload(collection, b"", "empty.txt").document
    assert ingestion.document_claim(document_id=ready.pk) is None
    assert ingestion.document_claim(document_id=failed.pk) is None
    ingestion.document_ingest(document_id=ready.pk)  # a redelivered message
    assert Chunk.objects.filter(document=ready).count() == len(
        set(Chunk.objects.filter(document=ready).values_list("ordinal", flat=True))
    )


def test_expired_lease_lets_another_worker_take_over(collection):
    document = upload(collection, MARKDOWN, "travel.md").document
    first = ingestion.document_claim(document_id=document.pk)
    Document.objects.filter(pk=document.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        claimed_by="elsewhere:1",
    )
    second = ingestion.document_claim(document_id=document.pk)
    assert second is not None and second.token != first.token
    with pytest.raises(ingestion.ClaimLostError):
        ingestion._update_claimed(first, progress_done=1)


def test_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(collection):
    import socket
    import subprocess

    document = upload(collection, MARKDOWN, "travel.md").document
    ingestion.document_claim(document_id=document.pk)
    gone = subprocess.Popen(["true"])
    gone.wait()
    Document.objects.filter(pk=document.pk).update(
        claimed_by=f"{socket.gethostname()}:{gone.pid}"
    )
    found = ingestion.documents_needing_work(stale_after=timedelta(0))
    assert document.pk in found[ingestion.PARSE]
    assert ingestion.document_claim(document_id=document.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_one_document_give_exactly_one_winner(
    collection, worker_stopped
):
    """T32: the same message delivered to several workers at once, 20 times over.

    The uploads commit, so the session's real worker (running once the
    browser tests started it) would claim them first: it is stopped here.
    """
    for race in range(20):
        document = upload(collection, MARKDOWN + b"\n%d" % race, f"t{race}.md").document
        assert _race_claims(document.pk, contenders=4) == 1, f"race {race}"


def _race_claims(document_id: int, *, contenders: int) -> int:
    """Claim one document from several threads at once; return how many won."""
    results = []
    barrier = threading.Barrier(contenders)

    def claim() -> None:
        barrier.wait()
        try:
            results.append(ingestion.document_claim(document_id=document_id))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(r is not None for r in results)


def test_a_document_that_keeps_killing_workers_is_failed_after_three_tries(collection):
    document = upload(collection, MARKDOWN, "travel.md").document
    for _ in range(ingestion.MAX_ATTEMPTS):
        ingestion.document_claim(document_id=document.pk)
        Document.objects.filter(pk=document.pk).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
    # The delivery after the last is refused, and the document failed in the
    # same transaction: no claim of it is ever seen.
    assert ingestion.document_claim(document_id=document.pk) is None
    document.refresh_from_db()
    assert (document.status, document.claim_token) == (Status.FAILED, None)
    assert document.error_code == "worker_lost"
    assert "3 times" in document.error_message
    ingestion.document_ingest(document_id=document.pk)  # a later one: nothing
    document.refresh_from_db()
    assert document.status == Status.FAILED


# --- retry, re-index, delete, sweeper ------------------------------------------------


def test_reindex_swaps_in_a_new_version_and_drops_the_old(collection):
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    old_ids = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    services.document_reindex(document=document)
    document.refresh_from_db()
    assert document.status == Status.QUEUED
    assert Chunk.objects.filter(document=document, version=1).count() == len(old_ids)
    document = ingest(services.UploadOutcome(document, created=True))
    assert document.status == Status.READY
    assert document.indexed_version == 2
    chunks = Chunk.objects.filter(document=document)
    assert set(chunks.values_list("version", flat=True)) == {2}
    assert not old_ids & set(chunks.values_list("pk", flat=True))
    assert not ChunkSentence.objects.filter(chunk_id__in=old_ids).exists()
    assert ChunkSentence.objects.filter(chunk__document=document).exists()


def test_leftovers_of_a_killed_attempt_are_replaced_not_duplicated(collection):
    document = upload(collection, MARKDOWN, "travel.md").document
    ChunkFactory(
        document=document, version=1, ordinal=0, text="half-written by a killed worker"
    )
    document = ingest(services.UploadOutcome(document, created=True))
    texts = list(Chunk.objects.filter(document=document).values_list("text", flat=True))
    assert "half-written by a killed worker" not in texts
    ordinals = list(
        Chunk.objects.filter(document=document).values_list("ordinal", flat=True)
    )
    assert len(ordinals) == len(set(ordinals))


def test_failed_document_can_be_retried(collection, settings):
    settings.MAX_PAGES_PER_DOCUMENT = 1
    document = ingest(upload(collection, text_pdf([["one"], ["two"]]), "two.pdf"))
    assert document.status == Status.FAILED
    settings.MAX_PAGES_PER_DOCUMENT = 10
    services.document_retry(document=document)
    document = ingest(services.UploadOutcome(document, created=True))
    assert document.status == Status.READY, document.error_message


def test_only_failed_documents_are_retried(collection):
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    with pytest.raises(DocumentActionError, match="Only failed"):
        services.document_retry(document=document)


def test_deleting_a_document_removes_chunks_and_stored_file(
    collection, django_capture_on_commit_callbacks
):
    document = ingest(upload(collection, MARKDOWN, "travel.md"))
    name = document.file.name
    with django_capture_on_commit_callbacks(execute=True):
        services.document_delete(document=document)
    assert not Chunk.objects.filter(document_id=document.pk).exists()
    assert not default_storage.exists(name)


def test_deleting_a_collection_removes_every_stored_file(
    collection, django_capture_on_commit_callbacks
):
    names = [
        ingest(upload(collection, MARKDOWN, "a.md")).file.name,
        upload(
            collection, b"Plain notes about the canteen menu.", "b.txt"
        ).document.file.name,
    ]
    with django_capture_on_commit_callbacks(execute=True):
        services.collection_delete(collection=collection)
    assert not any(default_storage.exists(name) for name in names)
    assert not Document.objects.exists()


def test_sweeper_finds_lost_queued_work_and_expired_leases(collection):
    queued = upload(collection, MARKDOWN, "a.md").document
    running = upload(collection, b"Canteen menu notes for the week.", "b.txt").document
    ingestion.document_claim(document_id=running.pk)
    assert ingestion.documents_needing_work(stale_after=timedelta(minutes=5)) == {
        ingestion.PARSE: [],
        ingestion.EMBED: [],
    }
    Document.objects.filter(pk=queued.pk).update(
        status_changed_at=timezone.now() - timedelta(minutes=10)
    )
    Document.objects.filter(pk=running.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1), claimed_by="elsewhere:1"
    )
    found = ingestion.documents_needing_work(stale_after=timedelta(minutes=5))
    assert sorted(found[ingestion.PARSE]) == sorted([queued.pk, running.pk])


def test_upload_enqueues_the_task_only_after_commit(
    collection, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        upload(collection, MARKDOWN, "travel.md")
    assert len(callbacks) == 1


# --- the five real PDFs -----------------------------------------------------------


@pytest.mark.slow
def test_the_five_eval_pdfs_ingest_with_known_sentences_on_their_pages(
    collection, eval_pdfs
):
    from tests.documents.parsing.test_eval_pdfs import KNOWN, flat

    for name, pages, page, sentence in KNOWN:
        outcome = services.document_upload_path(
            collection=collection, path=eval_pdfs / name
        )
        document = ingest(outcome)
        assert document.status == Status.READY, (name, document.error_message)
        assert document.page_count == pages
        fragment = " ".join(sentence.split()[:8])
        holders = [
            chunk
            for chunk in Chunk.objects.filter(document=document)
            if fragment in flat(chunk.text)
        ]
        assert holders, f"{name}: no chunk holds {fragment!r}"
        assert all(c.page_start <= page <= c.page_end for c in holders), (
            name,
            [(c.page_start, c.page_end) for c in holders],
        )


# --- the two stages ----------------------------------------------------------------


def test_parsing_hands_the_document_to_the_embedder_with_chunks_but_no_vectors(
    collection, django_capture_on_commit_callbacks
):
    document = upload(collection, MARKDOWN, "travel.md").document
    with django_capture_on_commit_callbacks() as callbacks:
        assert ingestion.document_parse(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == Status.EMBEDDING
    assert document.claim_token is None  # free for the embedder to claim
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == document.progress_total > 0
    assert not chunks.filter(embedding__isnull=False).exists()
    assert len(callbacks) == 1  # the embedding task, sent on commit


def test_killed_embedder_resumes_where_it_stopped(collection):
    document = upload(collection, MARKDOWN * 20, "long.md").document
    ingestion.document_parse(document_id=document.pk)
    first = list(Chunk.objects.filter(document=document).order_by("ordinal")[:2])
    marker = [0.5] * collection.embedding_dimensions
    for chunk in first:  # what a killed embedder had written before dying
        chunk.embedding = marker
    Chunk.objects.bulk_update(first, ["embedding"])
    ingestion.document_embed(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == Status.READY
    kept = Chunk.objects.filter(pk__in=[c.pk for c in first])
    assert all(list(c.embedding) == pytest.approx(marker) for c in kept)
    assert not Chunk.objects.filter(document=document, embedding__isnull=True).exists()


def test_embedding_api_down_hands_the_document_back_for_a_retry(
    collection, openai_http
):
    import httpx

    from ragapp.providers.exceptions import ProviderUnavailableError

    collection.embedding_model = "text-embedding-3-small"
    collection.embedding_dimensions = 1536
    collection.save()
    openai_http.post("/embeddings").mock(
        return_value=httpx.Response(503, json={"error": {"message": "overloaded"}})
    )
    document = upload(collection, MARKDOWN, "travel.md").document
    ingestion.document_parse(document_id=document.pk)
    with pytest.raises(ProviderUnavailableError):
        ingestion.document_embed(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == Status.EMBEDDING
    assert document.claim_token is None
    assert document.attempts == 0  # an outage is not the document's fault
    found = ingestion.documents_needing_work(stale_after=timedelta(0))
    assert document.pk in found[ingestion.EMBED]
