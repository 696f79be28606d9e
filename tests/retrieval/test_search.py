"""Search returns only what the user may read (T02), and only indexed versions."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from ragapp.documents import ingestion, services
from ragapp.documents.chunking import embedding_text, passage_sentences
from ragapp.documents.models import Chunk, ChunkSentence, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.retrieval.search import (
    chunk_search,
    query_vectors,
    searchable_chunks,
    searchable_chunks_sql,
    sentence_ranking,
)
from tests.factories import CollectionFactory, UserFactory
from tests.factories import indexed_document as ingest_text
from tests.retrieval.conftest import FAST_MODEL, readable_collection

pytestmark = pytest.mark.django_db

CANARIES_A = [f"zebracanary{n}alpha" for n in range(5)]


@pytest.fixture
def tenants():
    """Two tenants, each a group, a reader and a collection; A's text holds canaries."""
    made = {}
    for tenant in ("A", "B"):
        group = Group.objects.create(name=f"tenant-{tenant}")
        user = UserFactory(username=f"reader-{tenant}")
        user.groups.add(group)
        collection = CollectionFactory(
            name=f"Collection {tenant}",
            embedding_model=FAST_MODEL,
            embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
        )
        collection.reader_groups.add(group)
        made[tenant] = (user, collection)
    _, coll_a = made["A"]
    for n, canary in enumerate(CANARIES_A):
        ingest_text(coll_a, f"a{n}.md", f"# Secret {n}\n\nThe vault code is {canary}.")
    ingest_text(made["B"][1], "b.md", "# Menu\n\nThe canteen serves soup on Monday.")
    return made


def test_a_reader_finds_passages_of_their_own_collection(tenants):
    user_a, _ = tenants["A"]
    passages = chunk_search(user=user_a, query=CANARIES_A[2])
    assert passages
    assert CANARIES_A[2] in passages[0].text
    assert passages[0].lexical_rank == 1


@pytest.mark.parametrize("forge", [None, "collection", "filter"])
def test_canaries_of_tenant_a_never_reach_tenant_b(tenants, forge):
    user_b, coll_b = tenants["B"]
    _, coll_a = tenants["A"]
    for canary in CANARIES_A:
        kwargs = {}
        if forge == "collection":
            kwargs["collection_ids"] = [coll_a.pk, coll_b.pk]
        if forge == "filter":
            kwargs["filters"] = {"type": "ne", "key": "nothing", "value": "x"}
        passages = chunk_search(user=user_b, query=canary, **kwargs)
        assert all(p.collection_id == coll_b.pk for p in passages)
        assert not any(c in p.text for p in passages for c in CANARIES_A)


def test_anonymous_and_inactive_users_find_nothing(tenants):
    from django.contrib.auth.models import AnonymousUser

    user_a, _ = tenants["A"]
    assert chunk_search(user=AnonymousUser(), query=CANARIES_A[0]) == []
    user_a.is_active = False
    assert chunk_search(user=user_a, query=CANARIES_A[0]) == []


def test_the_access_rule_is_part_of_the_search_sql(tenants):
    user_b, _ = tenants["B"]
    sql = searchable_chunks_sql(user=user_b)
    assert "documents_collection_reader_groups" in sql
    assert "auth_user_groups" in sql
    assert "indexed_version" in sql


def test_only_the_swapped_in_version_is_searchable(tenants):
    user_a, coll_a = tenants["A"]
    document = Document.objects.filter(collection=coll_a).first()
    services.document_reindex(document=document)
    ingestion.document_parse(document_id=document.pk)  # new chunks, not embedded
    found = chunk_search(user=user_a, query=CANARIES_A[0] + " vault code")
    versions = {
        Chunk.objects.get(pk=p.chunk_id).version
        for p in found
        if p.document_id == document.pk
    }
    assert versions <= {1}  # the half-done version 2 is invisible


def test_empty_query_returns_nothing(tenants):
    user_a, _ = tenants["A"]
    assert chunk_search(user=user_a, query="   ") == []


def test_vectors_are_compared_at_the_models_own_size():
    """A collection whose recorded size disagrees with its model still ranks by meaning."""
    user, collection = readable_collection(
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL] + 128
    )
    ingest_text(collection, "v.md", "# Volcanoes\n\nEruptions release sulfur dioxide.")

    passages = chunk_search(user=user, query="volcanic gases")

    assert passages
    assert passages[0].vector_rank == 1


def test_hnsw_walk_widens_with_the_collection():
    from ragapp.retrieval.search import HNSW_EF_SEARCH, hnsw_ef_search

    assert hnsw_ef_search(100, 500) == 100  # small: the depth asked
    assert hnsw_ef_search(100, 20_000) == 200
    assert hnsw_ef_search(100, 250_000) == HNSW_EF_SEARCH
    assert hnsw_ef_search(500, 250_000) == 500  # never narrower than the depth


# --- the best kept sentence ---------------------------------------------------------

REPORT = (
    "# Field report\n\n"
    "The weather was mild all week. Lunch was served at noon. "
    "The north turbine bearing overheated on Tuesday. Staff parked in lot C.\n"
)


def _reader_of(collection):
    group = Group.objects.create(name=f"readers-{collection.pk}")
    user = UserFactory()
    user.groups.add(group)
    collection.reader_groups.add(group)
    return user


@pytest.fixture
def report():
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    user = _reader_of(collection)
    document = ingest_text(collection, "report.md", REPORT)
    return user, Chunk.objects.get(document=document)


def _cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_passage_scores_as_its_best_sentence(report):
    user, chunk = report
    query = "turbine bearing overheating"
    vectors = query_vectors(query, [FAST_MODEL])
    ((pk, score),) = sentence_ranking(
        searchable_chunks(user=user), candidates=[chunk.pk], vectors=vectors
    )
    provider = get_embedding_provider(FAST_MODEL)
    sentences = passage_sentences(chunk.text)
    assert len(sentences) == 4
    embedded = provider.embed(
        [embedding_text(chunk.heading, s.text) for s in sentences]
    )
    by_sentence = [_cosine(vectors[FAST_MODEL], v) for v in embedded]
    assert pk == chunk.pk
    assert score == pytest.approx(max(by_sentence), abs=5e-3)  # half precision
    assert by_sentence.index(max(by_sentence)) == 2  # the turbine sentence
    assert score > _cosine(vectors[FAST_MODEL], chunk.embedding)


def test_a_passage_without_kept_sentences_scores_as_its_own_vector(report):
    user, chunk = report
    ChunkSentence.objects.filter(chunk=chunk).delete()  # indexed before they existed
    vectors = query_vectors("turbine bearing", [FAST_MODEL])
    ((_, score),) = sentence_ranking(
        searchable_chunks(user=user), candidates=[chunk.pk], vectors=vectors
    )
    assert score == pytest.approx(
        _cosine(vectors[FAST_MODEL], chunk.embedding), abs=1e-5
    )


def test_sentence_scores_come_best_first_and_reach_the_passages(tenants):
    user_a, _ = tenants["A"]
    passages = chunk_search(user=user_a, query="vault code", limit=10)
    assert passages
    assert all(p.sentence_score is not None for p in passages)
    vectors = query_vectors("vault code", [FAST_MODEL])
    ranking = sentence_ranking(
        searchable_chunks(user=user_a),
        candidates=[p.chunk_id for p in passages],
        vectors=vectors,
    )
    scores = [score for _, score in ranking]
    assert scores == sorted(scores, reverse=True)
    assert dict(ranking) == pytest.approx(
        {p.chunk_id: p.sentence_score for p in passages}
    )


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_vectors_rank_on_another_connection_with_the_same_result():
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )
    user = _reader_of(collection)
    ingest_text(collection, "report.md", REPORT)
    ingest_text(collection, "menu.md", "# Menu\n\nThe canteen serves soup on Monday.")
    query = "what overheated on the turbine"

    def search():
        with CaptureQueriesContext(connection) as queries:
            passages = chunk_search(user=user, query=query)
        here = [q["sql"] for q in queries.captured_queries]
        return passages, any("hnsw.ef_search" in sql for sql in here)

    alongside, vector_query_here = search()
    assert not vector_query_here  # it ran on a vector-side thread's connection
    with transaction.atomic():
        in_order, vector_query_here = search()
    assert vector_query_here  # inside a transaction: this connection, in turn
    assert alongside == in_order
    assert alongside[0].vector_rank is not None
    assert "turbine" in alongside[0].text
