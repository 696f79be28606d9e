"""The second stage: sentence re-score of the fused top passages."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from django.contrib.auth.models import Group

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.retrieval.rerank import sentence_scores
from ragapp.retrieval.search import DEFAULT_CONFIG, chunk_search
from tests.factories import CollectionFactory, UserFactory

pytestmark = pytest.mark.django_db

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
FILLER = " ".join(
    f"Section {n} of the handbook lists office opening hours and parking rules."
    for n in range(6)
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def reader_and_collection():
    group = Group.objects.create(name="readers")
    user = UserFactory()
    user.groups.add(group)
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    collection.reader_groups.add(group)
    return user, collection


def ingest(collection, name: str, text: str) -> None:
    outcome = services.document_upload(
        collection=collection, stream=io.BytesIO(text.encode()), filename=name
    )
    ingestion.document_ingest(document_id=outcome.document.pk)


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
