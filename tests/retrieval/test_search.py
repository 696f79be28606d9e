"""Search returns only what the user may read (T02), and only indexed versions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from ragapp.documents import ingestion, services
from ragapp.documents.models import Chunk, Document
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.retrieval.search import chunk_search, searchable_chunks_sql
from tests.factories import CollectionFactory, UserFactory
from tests.factories import indexed_document as ingest_text

pytestmark = pytest.mark.django_db

FAST_MODEL = next(name for name in EMBEDDING_DIMENSIONS if "wordllama" in name)
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
    group = Group.objects.create(name="misrecorded")
    user = UserFactory()
    user.groups.add(group)
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL] + 128,
    )
    collection.reader_groups.add(group)
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
