"""BM25's term statistics stay exact through every path that changes what is searchable.

Documents go through the real pipeline in-process (upload, parse in the
sandboxed child, embed, swap in), and after each step the kept statistics must
equal a recount: `lexicon_drift` says so, and an oracle here recounts from the
chunks' raw heading and text to check the figures themselves.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk, Collection, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.retrieval.lexicon import (
    lexicon_drift,
    lexicon_rebuild,
    term_statistics,
)
from ragapp.retrieval.models import CollectionLexicon, LexiconTerm
from tests.factories import (
    ChunkFactory,
    CollectionFactory,
    DocumentFactory,
    UserFactory,
    indexed_document,
)
from tests.retrieval.conftest import FAST_MODEL

pytestmark = pytest.mark.django_db

OTHER_MODEL = "local/all-MiniLM-L6-v2"

# A heading starts a chunk, and a section's chunks carry its heading's words:
# QUOKKA makes 2 chunks, both with "quokka"; WOMBAT and KOALA one each.
QUOKKA = "# Quokka\n\nThe quokka smiles at tourists.\n\n## Diet\n\nIt eats grasses.\n"
WOMBAT = "# Wombat\n\nThe wombat digs burrows. A quokka visits sometimes.\n"
KOALA = "# Koala\n\nThe koala sleeps in eucalyptus trees all day.\n"
QUOKKA_V2 = "# Quokka\n\nThe quokka smiles at a platypus.\n"


def make_collection(**kwargs) -> Collection:
    return CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
        **kwargs,
    )


def upload(collection: Collection, name: str, text: str) -> Document:
    outcome = services.document_upload(
        collection=collection, stream=io.BytesIO(text.encode()), filename=name
    )
    return outcome.document


def ingest(collection: Collection, name: str, text: str) -> Document:
    document = indexed_document(collection, name, text)
    assert document.status == Document.Status.READY, document.error_message
    return document


def replace_file(document: Document, text: str) -> None:
    """Change what the stored file says, as a corrected upload would."""
    Path(document.file.path).write_text(text)


# --- The oracle: a recount from raw text, in Python ---------------------------------


def recount(collection: Collection) -> tuple[int, int, Counter[str]]:
    """(chunks, total length, {lexeme: chunks containing it}) of what is searchable."""
    indexed = dict(
        Document.objects.filter(collection=collection).values_list(
            "pk", "indexed_version"
        )
    )
    searchable = [
        pk
        for pk, document, version in Chunk.objects.filter(
            collection=collection
        ).values_list("pk", "document_id", "version")
        if indexed.get(document, 0) > 0 and version == indexed[document]
    ]
    frequency: Counter[str] = Counter()
    length = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.lexeme, coalesce(array_length(t.positions, 1), 1)"
            " FROM documents_chunk c,"
            "  unnest(to_tsvector('english', c.heading || ' ' || c.text)) t"
            " WHERE c.id = ANY(%s)",
            [searchable],
        )
        for lexeme, count in cursor.fetchall():
            frequency[lexeme] += 1
            length += count
    return len(searchable), length, frequency


def kept(collection: Collection) -> tuple[int, int, Counter[str]]:
    totals = CollectionLexicon.objects.filter(collection=collection).first()
    terms = LexiconTerm.objects.filter(collection=collection)
    return (
        totals.chunk_count if totals else 0,
        totals.length_total if totals else 0,
        Counter(dict(terms.values_list("lexeme", "chunk_count"))),
    )


def assert_exact(collection: Collection) -> tuple[int, int, Counter[str]]:
    """The kept statistics equal both recounts; return them."""
    assert lexicon_drift(collection_id=collection.pk) == {}
    figures = kept(collection)
    assert figures == recount(collection)
    # No term is kept at zero or below: a term that left is deleted.
    assert not LexiconTerm.objects.filter(chunk_count__lte=0).exists()
    return figures


def frequency(collection: Collection, lexeme: str) -> int:
    return term_statistics(collection_ids=[collection.pk], lexemes=[lexeme]).frequency[
        lexeme
    ]


# --- Upload and ingest ------------------------------------------------------------------


def test_ingesting_documents_counts_their_chunks_in():
    collection = make_collection()
    assert assert_exact(collection) == (0, 0, Counter())
    ingest(collection, "quokka.md", QUOKKA)
    assert assert_exact(collection)[0] == 2
    ingest(collection, "wombat.md", WOMBAT)
    ingest(collection, "koala.md", KOALA)
    chunks, length, terms = assert_exact(collection)
    assert chunks == 4
    assert terms["quokka"] == 3  # both QUOKKA chunks (heading) and WOMBAT
    assert terms["eucalyptus"] == 1
    assert frequency(collection, "quokka") == 3
    assert frequency(collection, "platypus") == 0
    stats = term_statistics(collection_ids=[collection.pk], lexemes=["koala"])
    assert stats.chunk_count == 4
    assert stats.mean_length == pytest.approx(length / 4)


def test_the_same_file_twice_and_redelivered_messages_change_nothing():
    collection = make_collection()
    document = ingest(collection, "quokka.md", QUOKKA)
    before = assert_exact(collection)
    again = services.document_upload(
        collection=collection, stream=io.BytesIO(QUOKKA.encode()), filename="copy.md"
    )
    assert not again.created
    ingestion.document_ingest(document_id=document.pk)  # a message delivered twice
    ingestion.document_embed(document_id=document.pk)
    assert assert_exact(collection) == before


def test_rejected_and_failed_documents_count_for_nothing():
    collection = make_collection()
    ingest(collection, "koala.md", KOALA)
    before = assert_exact(collection)
    empty = upload(collection, "empty.md", "")
    assert empty.status == Document.Status.FAILED
    unreadable = upload(collection, "blank.pdf", "%PDF-1.4\n%%EOF\n")
    ingestion.document_ingest(document_id=unreadable.pk)
    unreadable.refresh_from_db()
    assert unreadable.indexed_version == 0
    assert assert_exact(collection) == before
    for document in (empty, unreadable):
        services.document_delete(document=document)
    assert assert_exact(collection) == before


def test_statistics_are_kept_per_collection():
    first, second = make_collection(), make_collection()
    ingest(first, "quokka.md", QUOKKA)
    ingest(second, "wombat.md", WOMBAT)
    assert assert_exact(first)[2]["quokka"] == 2
    assert assert_exact(second)[2]["quokka"] == 1
    assert assert_exact(second)[2]["smile"] == 0
    both = term_statistics(collection_ids=[first.pk, second.pk], lexemes=["quokka"])
    assert (both.chunk_count, both.frequency) == (3, {"quokka": 3})


# --- Re-indexing --------------------------------------------------------------------------


def test_a_new_version_swapped_in_replaces_the_old_one_in_the_statistics():
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    ingest(collection, "wombat.md", WOMBAT)
    assert assert_exact(collection)[2]["grass"] == 1
    replace_file(quokka, QUOKKA_V2)  # one chunk now: no Diet section
    services.document_reindex(document=quokka)
    ingestion.document_ingest(document_id=quokka.pk)
    quokka.refresh_from_db()
    assert quokka.indexed_version == 2
    chunks, _, terms = assert_exact(collection)
    assert chunks == 2
    assert terms["quokka"] == 2
    assert terms["platypus"] == 1
    assert "grass" not in terms  # gone, not kept at zero
    assert not Chunk.objects.filter(document=quokka, version=1).exists()


def test_a_reindex_in_progress_changes_nothing_until_its_swap():
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    ingest(collection, "koala.md", KOALA)
    before = assert_exact(collection)
    replace_file(quokka, QUOKKA_V2)
    services.document_reindex(document=quokka)
    assert assert_exact(collection) == before  # queued
    assert ingestion.document_parse(document_id=quokka.pk)
    assert Chunk.objects.filter(document=quokka, version=2).exists()
    assert assert_exact(collection) == before  # parsed, not embedded
    # Half embedded (a worker killed mid-way): not counted either.
    first = Chunk.objects.filter(document=quokka, version=2).first()
    Chunk.objects.filter(pk=first.pk).update(
        embedding=[0.1] * EMBEDDING_DIMENSIONS[FAST_MODEL]
    )
    assert assert_exact(collection) == before
    ingestion.document_embed(document_id=quokka.pk)
    after = assert_exact(collection)
    assert after != before
    assert after[2]["platypus"] == 1
    assert after[0] == before[0] - 1


def test_a_reindex_that_fails_leaves_the_old_version_counted():
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    before = assert_exact(collection)
    replace_file(quokka, "")  # now empty: parsing fails with no_text
    services.document_reindex(document=quokka)
    ingestion.document_ingest(document_id=quokka.pk)
    quokka.refresh_from_db()
    assert quokka.status == Document.Status.FAILED
    assert quokka.indexed_version == 1
    assert assert_exact(collection) == before


def test_changing_the_embedding_model_and_reindexing_keeps_the_statistics():
    collection = make_collection()
    documents = [
        ingest(collection, "quokka.md", QUOKKA),
        ingest(collection, "wombat.md", WOMBAT),
    ]
    before = assert_exact(collection)
    queued = services.collection_change_embedding_model(
        collection=collection, model=OTHER_MODEL
    )
    assert queued == 2
    assert assert_exact(collection) == before  # old versions stay searchable
    for n, document in enumerate(documents):
        ingestion.document_ingest(document_id=document.pk)
        # Same text, other vectors: the figures never move, swap after swap.
        assert assert_exact(collection) == before, f"after document {n}"
    dimensions = set(
        Chunk.objects.filter(collection=collection).values_list(
            "embedding_dimensions", flat=True
        )
    )
    assert dimensions == {EMBEDDING_DIMENSIONS[OTHER_MODEL]}
    assert set(
        Document.objects.filter(collection=collection).values_list(
            "indexed_version", flat=True
        )
    ) == {2}


# --- Deleting -----------------------------------------------------------------------------


def test_deleting_a_document_counts_its_chunks_out():
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    wombat = ingest(collection, "wombat.md", WOMBAT)
    services.document_delete(document=quokka)
    chunks, _, terms = assert_exact(collection)
    assert chunks == 1
    assert terms["quokka"] == 1
    assert "smile" not in terms
    services.document_delete(document=wombat)
    assert assert_exact(collection) == (0, 0, Counter())
    services.document_delete(document=wombat)  # already gone: nothing happens
    assert assert_exact(collection) == (0, 0, Counter())


def test_deleting_a_document_mid_reindex_counts_out_only_the_searchable_version():
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    ingest(collection, "koala.md", KOALA)
    replace_file(quokka, QUOKKA_V2)
    services.document_reindex(document=quokka)
    ingestion.document_parse(document_id=quokka.pk)  # version 2 waits for embedding
    services.document_delete(document=quokka)
    chunks, _, terms = assert_exact(collection)
    assert chunks == 1
    assert "quokka" not in terms
    assert "platypus" not in terms
    # The worker that would have embedded it finds nothing to do.
    ingestion.document_embed(document_id=quokka.pk)
    assert assert_exact(collection)[0] == 1


def test_deleting_a_stale_copy_of_a_document_uses_its_current_version():
    """The caller's object may predate a re-index; the row decides what goes."""
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    stale = Document.objects.get(pk=quokka.pk)
    replace_file(quokka, QUOKKA_V2)
    services.document_reindex(document=quokka)
    ingestion.document_ingest(document_id=quokka.pk)
    assert stale.indexed_version == 1
    services.document_delete(document=stale)
    assert assert_exact(collection) == (0, 0, Counter())


def test_deleting_a_collection_deletes_its_statistics_only():
    doomed, kept_one = make_collection(), make_collection()
    ingest(doomed, "quokka.md", QUOKKA)
    ingest(kept_one, "wombat.md", WOMBAT)
    before = assert_exact(kept_one)
    services.collection_delete(collection=doomed)
    assert not CollectionLexicon.objects.filter(collection_id=doomed.pk).exists()
    assert not LexiconTerm.objects.filter(collection_id=doomed.pk).exists()
    assert assert_exact(kept_one) == before
    stats = term_statistics(collection_ids=[doomed.pk], lexemes=["quokka"])
    assert (stats.chunk_count, stats.frequency) == (0, {"quokka": 0})


# --- Drift and rebuild ---------------------------------------------------------------------


def test_drift_names_every_corrupted_figure_and_rebuild_repairs_them():
    collection, other = make_collection(), make_collection()
    ingest(collection, "quokka.md", QUOKKA)
    ingest(other, "koala.md", KOALA)
    good = assert_exact(collection)
    other_before = assert_exact(other)
    chunks, length, terms = good
    terms_of = LexiconTerm.objects.filter(collection=collection)
    terms_of.filter(lexeme="quokka").update(chunk_count=99)
    terms_of.filter(lexeme="smile").delete()
    LexiconTerm.objects.create(collection=collection, lexeme="bogus", chunk_count=5)
    CollectionLexicon.objects.filter(collection=collection).update(
        chunk_count=1000, length_total=7
    )
    assert lexicon_drift(collection_id=collection.pk) == {
        "quokka": (99, terms["quokka"]),
        "smile": (0, terms["smile"]),
        "bogus": (5, 0),
        "(chunks)": (1000, chunks),
        "(length)": (7, length),
    }
    lexicon_rebuild(collection_id=collection.pk)
    assert assert_exact(collection) == good
    assert assert_exact(other) == other_before


def test_rebuild_creates_missing_totals_and_counts_chunks_made_outside_the_pipeline():
    collection = make_collection()
    ingest(collection, "quokka.md", QUOKKA)
    CollectionLexicon.objects.filter(collection=collection).delete()
    assert lexicon_drift(collection_id=collection.pk)["(chunks)"] == (0, 2)
    document = DocumentFactory(collection=collection, indexed_version=1)
    ChunkFactory(document=document, heading="Echidna", text="Echidnas lay eggs.")
    ChunkFactory(document=document, version=2, text="Not searchable: echidna v2.")
    lexicon_rebuild(collection_id=collection.pk)
    chunks, _, terms = assert_exact(collection)
    assert chunks == 3
    assert terms["echidna"] == 1
    lexicon_rebuild(collection_id=collection.pk)  # idempotent
    assert assert_exact(collection)[0] == 3


def test_an_empty_collection_has_no_drift():
    collection = make_collection()
    assert lexicon_drift(collection_id=collection.pk) == {}
    lexicon_rebuild(collection_id=collection.pk)
    assert assert_exact(collection) == (0, 0, Counter())


# --- Concurrency ---------------------------------------------------------------------------


def _wait_until_blocked_on_a_lock(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    pytest.fail("the rebuild never waited for the swap's lock")


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_racing_a_swap_leaves_the_statistics_exact(
    monkeypatch, worker_stopped
):
    """`manage.py lexicon --rebuild` while a worker swaps a version in."""
    collection = make_collection()
    quokka = ingest(collection, "quokka.md", QUOKKA)
    ingest(collection, "koala.md", KOALA)
    replace_file(quokka, QUOKKA_V2)
    services.document_reindex(document=quokka)
    assert ingestion.document_parse(document_id=quokka.pk)

    applied, go = threading.Event(), threading.Event()
    real_apply = ingestion.lexicon_apply

    def paused_apply(**kwargs):
        real_apply(**kwargs)
        applied.set()  # the swap holds the collection's totals row now
        assert go.wait(10)

    monkeypatch.setattr(ingestion, "lexicon_apply", paused_apply)
    errors: list[BaseException] = []

    def in_thread(work):
        def run() -> None:
            try:
                work()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def rebuild() -> None:
        with transaction.atomic():
            lexicon_rebuild(collection_id=collection.pk)

    swap = in_thread(lambda: ingestion.document_embed(document_id=quokka.pk))
    assert applied.wait(30)
    rebuilder = in_thread(rebuild)
    _wait_until_blocked_on_a_lock()
    go.set()
    swap.join(30)
    rebuilder.join(30)
    assert not errors, errors
    quokka.refresh_from_db()
    assert quokka.indexed_version == 2
    assert_exact(collection)


# --- Paths around the services ---------------------------------------------------------------


def test_the_admin_cannot_delete_chunks_behind_the_statistics(rf):
    from django.contrib import admin

    superuser = UserFactory(username="lexicon-boss", is_superuser=True, password=None)
    collection = make_collection()
    ingest(collection, "quokka.md", QUOKKA)
    chunk_admin = admin.site._registry[Chunk]
    request = rf.get("/admin/documents/chunk/")
    request.user = superuser
    assert not chunk_admin.has_delete_permission(request)
    assert "delete_selected" not in chunk_admin.get_actions(request)
