"""The embedded database holds what the data model needs: vectors, HNSW, tsvector."""

import random

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from pgvector.django import CosineDistance

from ragapp.documents.models import Chunk, Collection, Document
from ragapp.runtime.database import pgvector_installed_version
from tests.factories import ChunkFactory, CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


def _unit_vector(seed: int, dims: int = 384) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(dims)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def _document(collection: Collection, name: str = "doc") -> Document:
    # The hash comes from the name, so the same name twice is the same file.
    return DocumentFactory(
        collection=collection,
        title=name,
        file=f"documents/{name}",
        sha256=name.encode().hex().ljust(64, "0")[:64],
    )


def _chunk(document: Document, ordinal: int, embedding: list[float] | None, text: str):
    return ChunkFactory(
        document=document,
        ordinal=ordinal,
        text=text,
        page_start=1,
        page_end=2,
        embedding=embedding,
    )


def test_test_database_runs_in_embedded_postgres_with_pgvector():
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    assert int(server_version.split(".")[0]) >= 16
    assert connection.settings_dict["NAME"].startswith("test_")
    assert pgvector_installed_version(connection) is not None


def test_durability_settings_are_on():
    with connection.cursor() as cursor:
        cursor.execute("SHOW fsync")
        assert cursor.fetchone()[0] == "on"
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_chunk_embedding_round_trips_and_nearest_neighbour_finds_it():
    document = _document(CollectionFactory())
    target = _unit_vector(1)
    for i in range(50):
        _chunk(document, i, _unit_vector(100 + i), f"filler passage {i}")
    wanted = _chunk(document, 99, target, "the passage we are looking for")

    stored = Chunk.objects.get(pk=wanted.pk)
    assert stored.embedding_dimensions == 384
    assert list(stored.embedding) == pytest.approx(target, abs=1e-6)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        nearest = (
            Chunk.objects.filter(embedding_dimensions=384)
            .annotate(
                distance=CosineDistance(
                    _cast_384("embedding"), _vector_literal(_noisy(target))
                )
            )
            .order_by("distance")
            .first()
        )
        plan = _explain_nearest(cursor, target)
    assert nearest.pk == wanted.pk
    assert "chunk_embedding_hnsw_384" in plan


def test_chunks_without_embedding_are_allowed_until_embedded():
    chunk = _chunk(_document(CollectionFactory()), 0, None, "not embedded yet")
    chunk.refresh_from_db()
    assert chunk.embedding is None
    assert chunk.embedding_dimensions is None


def test_search_vector_is_generated_and_matches_full_text_queries():
    document = _document(CollectionFactory())
    _chunk(document, 0, None, "Zero trust architecture removes implicit trust.")
    _chunk(document, 1, None, "Incident handling covers detection and recovery.")
    found = Chunk.objects.extra(
        where=["search_vector @@ websearch_to_tsquery('english', %s)"],
        params=["architectures of trust"],
    )
    assert [c.ordinal for c in found] == [0]


def test_same_file_twice_in_one_collection_is_refused_by_the_database():
    collection = CollectionFactory()
    _document(collection, "same")
    with pytest.raises(IntegrityError, match="document_unique_content_per_collection"):
        _document(collection, "same")


def test_page_range_must_be_ordered():
    document = _document(CollectionFactory())
    with pytest.raises(IntegrityError, match="chunk_page_range_ordered"):
        ChunkFactory(document=document, ordinal=0, page_start=5, page_end=2)


def test_deleting_a_collection_deletes_its_documents_and_chunks():
    collection = CollectionFactory()
    _chunk(_document(collection), 0, _unit_vector(3), "text")
    collection.delete()
    assert Document.objects.count() == 0
    assert Chunk.objects.count() == 0


def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


# --- helpers --------------------------------------------------------------------


def _noisy(vector: list[float]) -> list[float]:
    rng = random.Random(7)
    return [v + rng.gauss(0, 0.01) for v in vector]


def _cast_384(field: str):
    from django.db.models.functions import Cast
    from pgvector.django import VectorField

    return Cast(field, VectorField(dimensions=384))


def _vector_literal(vector: list[float]):
    from django.db.models import Value
    from pgvector.django import VectorField

    return Value(vector, output_field=VectorField(dimensions=384))


def _explain_nearest(cursor, vector: list[float]) -> str:
    literal = "[" + ",".join(f"{v:.6f}" for v in vector) + "]"
    cursor.execute(
        "EXPLAIN SELECT id FROM documents_chunk WHERE embedding_dimensions = 384 "
        "ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 5",
        [literal],
    )
    return "\n".join(row[0] for row in cursor.fetchall())
