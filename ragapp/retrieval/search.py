"""Search the passages a user may read: vector and lexical, fused.

First cut (TODO #5: BM25-quality lexical ranking, tuned weighted fusion and a
second stage, measured on SciFact). What is final already is the shape of
every query: the access rule (collections whose reader groups include the
user), the searchable rule (only the swapped-in version of an indexed
document) and the caller's attribute filters are all conditions of the SQL
that ranks the passages, so nothing the user may not read is ever fetched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from ragapp.documents.models import Chunk, Collection
from ragapp.documents.selectors import collection_ids_readable
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.retrieval.filters import document_filter_q

RRF_K = 60


@dataclass(frozen=True)
class Passage:
    """One retrieved passage and why it ranked where it did."""

    chunk_id: int
    document_id: int
    document_title: str
    collection_id: int
    text: str
    heading: str
    page_start: int | None
    page_end: int | None
    score: float
    vector_rank: int | None
    lexical_rank: int | None


def searchable_chunks(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
) -> QuerySet[Chunk]:
    """Return the chunks `user` may search, as one queryset (one SQL query).

    Readable collections only (a subquery on reader groups), only the indexed
    version of each document, and the caller's attribute filters. Asking for
    a collection the user may not read gives nothing, exactly like asking for
    one that does not exist.
    """
    chunks = Chunk.objects.filter(
        collection_id__in=collection_ids_readable(user=user),
        document__indexed_version__gt=0,
        version=F("document__indexed_version"),
    )
    if collection_ids is not None:
        chunks = chunks.filter(collection_id__in=list(collection_ids))
    return chunks.filter(document_filter_q(filters, prefix="document__"))


def _lexemes(query: str) -> list[str]:
    """Return the stemmed terms of `query`, as PostgreSQL's English config sees them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme FROM unnest(to_tsvector('english', %s)) ORDER BY lexeme",
            [query],
        )
        return [row[0] for row in cursor.fetchall()]


def _lexical_ranking(chunks: QuerySet[Chunk], query: str, depth: int) -> list[int]:
    terms = _lexemes(query)
    if not terms:
        return []
    # Any term may match (OR): requiring all of them finds almost nothing for
    # natural-language questions (shared/eval/REFERENCE_RUN.md).
    raw = " | ".join("'" + term.replace("'", "''") + "'" for term in terms)
    tsquery = SearchQuery(raw, search_type="raw", config="english")
    ranked = (
        chunks.filter(search_vector=tsquery)
        .annotate(rank=SearchRank(F("search_vector"), tsquery))
        .order_by("-rank", "pk")
        .values_list("pk", flat=True)[:depth]
    )
    return list(ranked)


def _vector_ranking(chunks: QuerySet[Chunk], query: str, depth: int) -> list[int]:
    """Rank by cosine distance, one embedding of the query per model in play."""
    models = (
        Collection.objects.filter(pk__in=chunks.values("collection_id"))
        .values_list("embedding_model", "embedding_dimensions")
        .distinct()
    )
    scored: list[tuple[float, int]] = []
    for model, dimensions in models:
        vector = get_embedding_provider(model).embed_query(query)
        distance = CosineDistance(
            Cast("embedding", VectorField(dimensions=dimensions)), vector
        )
        rows = (
            chunks.filter(
                collection__embedding_model=model,
                embedding_dimensions=dimensions,
            )
            .annotate(distance=distance)
            .order_by("distance")
            .values_list("distance", "pk")[:depth]
        )
        scored.extend(rows)
    return [pk for _, pk in sorted(scored)[:depth]]


def chunk_search(
    *,
    user: AbstractBaseUser | AnonymousUser,
    query: str,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
    limit: int = 10,
    depth: int = 50,
) -> list[Passage]:
    """Return the `limit` best passages for `query` among those `user` may read.

    Vector and lexical rankings are fused by reciprocal rank (k=60).
    """
    query = query.strip()
    if not query:
        return []
    chunks = searchable_chunks(
        user=user, collection_ids=collection_ids, filters=filters
    )
    ranks: dict[str, dict[int, int]] = {
        "vector": {
            pk: rank for rank, pk in enumerate(_vector_ranking(chunks, query, depth), 1)
        },
        "lexical": {
            pk: rank
            for rank, pk in enumerate(_lexical_ranking(chunks, query, depth), 1)
        },
    }
    fused: dict[int, float] = defaultdict(float)
    for ranking in ranks.values():
        for pk, rank in ranking.items():
            fused[pk] += 1.0 / (RRF_K + rank)
    best = sorted(fused, key=lambda pk: (-fused[pk], pk))[:limit]
    # The rows are fetched through the same access-checked queryset.
    rows = chunks.filter(pk__in=best).select_related("document")
    by_pk = {chunk.pk: chunk for chunk in rows}
    return [
        Passage(
            chunk_id=pk,
            document_id=by_pk[pk].document_id,
            document_title=by_pk[pk].document.title,
            collection_id=by_pk[pk].collection_id,
            text=by_pk[pk].text,
            heading=by_pk[pk].heading,
            page_start=by_pk[pk].page_start,
            page_end=by_pk[pk].page_end,
            score=fused[pk],
            vector_rank=ranks["vector"].get(pk),
            lexical_rank=ranks["lexical"].get(pk),
        )
        for pk in best
        if pk in by_pk
    ]


def searchable_chunks_sql(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
) -> str:
    """Return the SQL of the access-checked base query, for audits and tests."""
    return str(searchable_chunks(user=user, collection_ids=collection_ids).query)
