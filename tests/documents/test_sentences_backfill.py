"""Sentence vectors kept afterwards for passages indexed without them."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk, ChunkSentence, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.embeddings import get_embedding_provider
from tests.factories import CollectionFactory, indexed_document

pytestmark = pytest.mark.django_db

FAST_MODEL = "local/wordllama-l2-supercat"

POLICY = (
    "# Travel policy\n\nStaff book trains for trips under four hours. Flights "
    "need approval. Taxis are for late nights only.\n\n## Expenses\n\nMeals are "
    "refunded up to 40 euros a day with receipts.\n"
)
NOTE = "# Canteen\n\nSoup on Mondays. Fish on Fridays.\n"


@pytest.fixture
def collection():
    return CollectionFactory(
        slug="handbook",
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )


def floats(vector) -> list[float]:
    return [float(x) for x in getattr(vector, "to_list", lambda: vector)()]


def kept(document: Document) -> list[tuple]:
    """Each kept sentence as (chunk ordinal, sentence ordinal, start, end, vector)."""
    return [
        (s.chunk.ordinal, s.ordinal, s.start, s.end, floats(s.embedding))
        for s in ChunkSentence.objects.filter(chunk__document=document)
        .select_related("chunk")
        .order_by("chunk__ordinal", "ordinal")
    ]


def index_without_sentences(settings, collection, name: str, text: str) -> Document:
    settings.INDEX_SENTENCES = False
    document = indexed_document(collection, name, text)
    settings.INDEX_SENTENCES = True
    assert not ChunkSentence.objects.filter(chunk__document=document).exists()
    return document


def test_backfill_keeps_what_indexing_with_sentences_would_have(settings, collection):
    reference = indexed_document(
        CollectionFactory(
            embedding_model=FAST_MODEL,
            embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
        ),
        "policy.md",
        POLICY,
    )
    document = index_without_sentences(settings, collection, "policy.md", POLICY)
    seen = []

    chunks, sentences = ingestion.sentences_backfill(
        collection,
        batch_size=1,
        progress=lambda done, total: seen.append((done, total)),
    )

    expected = kept(reference)
    assert (
        sentences
        == len(expected)
        > chunks
        == Chunk.objects.filter(document=document).count()
    )
    assert seen == [(n, chunks) for n in range(1, chunks + 1)]
    got = kept(document)
    assert [row[:4] for row in got] == [row[:4] for row in expected]
    for (*_, vector), (*_, reference_vector) in zip(got, expected, strict=True):
        assert vector == pytest.approx(reference_vector, abs=2e-3)
    # Done: a second run finds nothing, and the passages' own vectors stayed.
    assert ingestion.sentences_backfill(collection) == (0, 0)


def test_only_the_searchable_version_of_ready_documents_is_backfilled(
    settings, collection
):
    ready = index_without_sentences(settings, collection, "policy.md", POLICY)
    parsed = services.document_upload(
        collection=collection, stream=io.BytesIO(NOTE.encode()), filename="note.md"
    ).document
    ingestion.document_parse(document_id=parsed.pk)  # chunks without vectors yet
    assert Document.objects.get(pk=parsed.pk).status == Document.Status.EMBEDDING

    ingestion.sentences_backfill(collection)

    assert kept(ready)
    assert not ChunkSentence.objects.filter(chunk__document_id=parsed.pk).exists()


def test_a_chunk_removed_while_its_sentences_were_embedded_is_skipped(
    settings, collection, monkeypatch
):
    document = index_without_sentences(settings, collection, "policy.md", POLICY)
    provider = get_embedding_provider(FAST_MODEL)
    embed = provider.embed
    batch = list(Chunk.objects.filter(document=document).order_by("pk"))
    doomed = batch[0]

    def embed_then_lose_a_chunk(texts):
        Chunk.objects.filter(pk=doomed.pk).delete()  # a re-index swapped in
        return embed(texts)

    monkeypatch.setattr(provider, "embed", embed_then_lose_a_chunk)
    ingestion.sentences_backfill_batch(provider, batch)

    assert {row[0] for row in kept(document)} == {c.ordinal for c in batch[1:]}


def test_command_checks_backfills_and_refuses_when_sentences_are_off(
    settings, collection, capsys
):
    index_without_sentences(settings, collection, "policy.md", POLICY)
    index_without_sentences(settings, collection, "note.md", NOTE)
    missing = ingestion.sentences_missing(collection).count()

    call_command("sentences", "--check")
    assert f"handbook: {missing} passages without sentences" in capsys.readouterr().out
    assert not ChunkSentence.objects.exists()

    call_command("sentences", "handbook", "--batch-size", "2")
    out = capsys.readouterr().out
    assert f"handbook: {missing}/{missing} passages" in out
    assert f"of {missing} passages" in out
    assert ingestion.sentences_missing(collection).count() == 0

    with pytest.raises(CommandError, match="No collection"):
        call_command("sentences", "nowhere")
    settings.INDEX_SENTENCES = False
    with pytest.raises(CommandError, match="RAGAPP_INDEX_SENTENCES is off"):
        call_command("sentences")
