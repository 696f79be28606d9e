"""The second stage: sentence re-score of the fused top passages."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from ragapp.documents.chunking import passage_sentences
from ragapp.documents.models import Chunk
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.retrieval.rerank import (
    kept_sentence_vectors,
    sentence_scores,
    sentence_similarities,
)
from ragapp.retrieval.search import DEFAULT_CONFIG, chunk_search
from tests.factories import CollectionFactory
from tests.factories import indexed_document as ingest
from tests.retrieval.conftest import FAST_MODEL

pytestmark = pytest.mark.django_db

FILLER = " ".join(
    f"Section {n} of the handbook lists office opening hours and parking rules."
    for n in range(6)
)


def test_sentence_scores_take_the_best_sentence_of_each_chunk(reader_and_collection):
    _, collection = reader_and_collection
    ingest(
        collection,
        "guide.md",
        f"# Handbook\n\n{FILLER} Volcanic eruptions release sulfur dioxide gas.",
    )
    ingest(collection, "other.md", f"# Other\n\n{FILLER}")
    chunks = list(Chunk.objects.filter(collection=collection))
    scores = sentence_scores(
        "volcanic eruption sulfur dioxide", chunks, model=FAST_MODEL
    )
    assert set(scores) == {c.pk for c in chunks}
    answer = next(c for c in chunks if "Volcanic" in c.text)
    assert scores[answer.pk] == max(scores.values())
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores.values())


@pytest.fixture
def guide_chunks(reader_and_collection) -> list[Chunk]:
    """The chunks of a handbook indexed with its sentence vectors kept."""
    _, collection = reader_and_collection
    ingest(
        collection,
        "guide.md",
        f"# Handbook\n\n{FILLER} Volcanic eruptions release sulfur dioxide gas.",
    )
    chunks = Chunk.objects.filter(collection=collection).select_related("collection")
    return list(chunks)


def forbid_embedding(monkeypatch) -> None:
    """Make any embedding but the (cached) query's fail the test."""

    def no_embedding(texts):
        raise AssertionError(f"embedded {len(texts)} texts again")

    monkeypatch.setattr(get_embedding_provider(FAST_MODEL), "embed", no_embedding)


def test_sentence_scores_with_the_collections_own_model_read_the_kept_vectors(
    guide_chunks, monkeypatch
):
    chunks = guide_chunks
    assert kept_sentence_vectors(c.pk for c in chunks)
    fresh = sentence_similarities(
        "volcanic gases", [(c.pk, c.heading, c.text) for c in chunks], model=FAST_MODEL
    )
    forbid_embedding(monkeypatch)
    scores = sentence_scores("volcanic gases", chunks, model=FAST_MODEL)
    for chunk in chunks:
        best = max(s.score for s in fresh if s.owner == chunk.pk)
        assert scores[chunk.pk] == pytest.approx(best, abs=5e-3)  # half precision


def test_sentence_scores_of_nothing_is_empty():
    assert sentence_scores("anything", [], model=FAST_MODEL) == {}


def test_search_with_the_rerank_reports_its_score_and_keeps_access(
    reader_and_collection,
):
    user, collection = reader_and_collection
    ingest(collection, "a.md", "# Volcanoes\n\nEruptions release sulfur dioxide.")
    ingest(collection, "b.md", f"# Handbook\n\n{FILLER}")
    other = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    ingest(other, "secret.md", "# Volcanoes\n\nSecret volcano sulfur dioxide notes.")
    config = replace(DEFAULT_CONFIG, rerank="sentences", rerank_depth=10)
    passages = chunk_search(user=user, query="volcano sulfur dioxide", config=config)
    assert passages
    assert passages[0].heading == "Volcanoes"
    assert all(p.rerank_score is not None for p in passages)
    assert all(p.collection_id == collection.pk for p in passages)
    assert not any("Secret" in p.text for p in passages)


REMOTE_MODEL = "text-embedding-3-small"


def remote_embeddings(request: httpx.Request) -> httpx.Response:
    """OpenAI's wire format; a text about sulfur points one way, the rest another."""
    inputs = json.loads(request.content)["input"]
    dims = EMBEDDING_DIMENSIONS[REMOTE_MODEL]

    def vector(text: str) -> list[float]:
        axis = 0 if "sulfur" in text.lower() else 1
        return [1.0 if i == axis else 0.0 for i in range(dims)]

    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector(t)}
                for i, t in enumerate(inputs)
            ],
            "model": REMOTE_MODEL,
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        },
    )


def test_a_configured_remote_model_can_re_score(reader_and_collection, openai_http):
    user, collection = reader_and_collection
    ingest(collection, "a.md", "# Volcanoes\n\nEruptions release sulfur dioxide.")
    ingest(collection, "b.md", f"# Handbook\n\n{FILLER}")
    route = openai_http.post("/embeddings").mock(side_effect=remote_embeddings)
    config = replace(
        DEFAULT_CONFIG, rerank="sentences", rerank_depth=10, rerank_model=REMOTE_MODEL
    )

    passages = chunk_search(user=user, query="sulfur emissions", config=config)

    assert route.called
    assert passages[0].heading == "Volcanoes"
    assert passages[0].rerank_score == pytest.approx(1.0)


def test_a_failing_remote_re_score_keeps_the_first_stage_order(
    reader_and_collection, openai_http
):
    user, collection = reader_and_collection
    ingest(collection, "a.md", "# Volcanoes\n\nEruptions release sulfur dioxide.")
    ingest(collection, "b.md", f"# Handbook\n\n{FILLER}")
    openai_http.post("/embeddings").respond(
        500, json={"error": {"message": "boom", "type": "server_error", "code": None}}
    )
    plain = chunk_search(user=user, query="sulfur dioxide")
    config = replace(DEFAULT_CONFIG, rerank="sentences", rerank_model=REMOTE_MODEL)

    reranked = chunk_search(user=user, query="sulfur dioxide", config=config)

    assert [p.chunk_id for p in reranked] == [p.chunk_id for p in plain]
    assert all(p.rerank_score is None for p in reranked)


def test_the_operator_turns_the_re_score_on_in_settings(
    reader_and_collection, settings
):
    user, collection = reader_and_collection
    ingest(collection, "a.md", "# Volcanoes\n\nEruptions release sulfur dioxide.")
    assert all(p.rerank_score is None for p in chunk_search(user=user, query="sulfur"))

    settings.SEARCH_RERANK = "sentences"

    passages = chunk_search(user=user, query="sulfur")
    assert passages
    assert all(p.rerank_score is not None for p in passages)


def test_kept_sentence_vectors_are_read_not_embedded_again(guide_chunks, monkeypatch):
    chunks = guide_chunks
    passages = [(c.pk, c.heading, c.text) for c in chunks]
    query = "volcanic gases"
    embedded = sentence_similarities(query, passages, model=FAST_MODEL)

    kept = kept_sentence_vectors(c.pk for c in chunks)
    assert set(kept) == {c.pk for c in chunks}
    get_embedding_provider(FAST_MODEL).embed_query(query)  # cached: the only call left
    forbid_embedding(monkeypatch)
    read = sentence_similarities(query, passages, model=FAST_MODEL, kept=kept)

    assert [(s.owner, s.sentence) for s in read] == [
        (s.owner, s.sentence) for s in embedded
    ]
    assert [s.score for s in read] == pytest.approx(
        [s.score for s in embedded], abs=5e-3
    )  # half precision


def test_kept_sentences_of_another_split_are_embedded_afresh(reader_and_collection):
    _, collection = reader_and_collection
    ingest(collection, "guide.md", f"# Handbook\n\n{FILLER}")
    chunk = Chunk.objects.filter(collection=collection).first()
    kept = kept_sentence_vectors([chunk.pk])[chunk.pk]
    shifted = replace(kept, spans=[(a + 1, b + 1) for a, b in kept.spans])
    assert not shifted.matches(passage_sentences(chunk.text))
    scored = sentence_similarities(
        "parking",
        [(chunk.pk, chunk.heading, chunk.text)],
        model=FAST_MODEL,
        kept={chunk.pk: shifted},
    )
    assert len(scored) == len(kept.spans)
