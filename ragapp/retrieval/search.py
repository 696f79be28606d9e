"""Search the passages a user may read: BM25 and vectors in PostgreSQL, fused.

The shape of every query is fixed: the access rule (collections whose reader
groups include the user), the searchable rule (only the swapped-in version of
an indexed document) and the caller's attribute filters are conditions of the
SQL that ranks the passages, so nothing the user may not read is ever
fetched, scored or counted. Both rankings run inside PostgreSQL; Python only
fuses two short lists.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, connections, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast, Coalesce
from pgvector import HalfVector
from pgvector.django import CosineDistance, VectorField

from ragapp.documents.models import Chunk, ChunkSentence, Collection, Document
from ragapp.documents.selectors import collection_ids_readable
from ragapp.providers.base import UsageSink
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.providers.exceptions import ProviderError
from ragapp.retrieval.filters import document_filter_q
from ragapp.retrieval.fusion import reciprocal_rank, weighted_z
from ragapp.retrieval.lexical import Bm25, bm25_ranking, clean_query
from ragapp.retrieval.model_rerank import model_grades
from ragapp.retrieval.models import CollectionLexicon
from ragapp.retrieval.rerank import sentence_scores

logger = logging.getLogger(__name__)

# Candidates the HNSW walk keeps (hnsw.ef_search) when the depth asked is
# smaller. pgvector's default, 40, found 0.81 of the exact top 10 at 250,000
# chunks; 400 finds 0.96 for a few milliseconds more (docs/bench/scale.md).
HNSW_EF_SEARCH = 400


def hnsw_ef_search(depth: int, searched_chunks: int) -> int:
    """Return the HNSW walk's width for a search over `searched_chunks` chunks.

    A wide walk on a small table makes the planner prefer an exact scan: at
    10,000 chunks ef_search 400 chose one (31 ms instead of 2.6 ms for the
    walk at 200, docs/bench/scale.md), while at 50,000 it kept the index. So
    the width grows with the collection: a hundredth of the searched chunks,
    at least the depth asked, at most HNSW_EF_SEARCH.
    """
    return max(depth, min(HNSW_EF_SEARCH, searched_chunks // 100))


# Embeds queries, and ranks by vectors, while PostgreSQL ranks by words on the
# caller's connection: the embedder and the wait on the database both release
# the GIL. Each thread keeps its own database connection between searches
# (connecting costs 5-10 ms here, more than the vector query itself). Four, so
# a few concurrent searches do not queue for them (MiniLM embeds each query
# on its one-thread query session, without waiting for the others).
_VECTOR_THREADS = 4
_vector_side = ThreadPoolExecutor(
    max_workers=_VECTOR_THREADS, thread_name_prefix="vector-side"
)


def _embed_and_rank(
    query: str,
    models: list[str],
    chunks: QuerySet[Chunk] | None,
    depth: int,
    ef_search: int,
) -> tuple[dict[str, list[float]], list[tuple[int, float]] | None]:
    """Embed `query`; with `chunks`, also rank them by vectors on this thread's connection."""
    vectors = query_vectors(query, models)
    if chunks is None:
        return vectors, None
    if connection.connection is not None and not connection.is_usable():
        connection.close()  # the server restarted since the last search
    ranking = vector_ranking(
        chunks, query=query, depth=depth, vectors=vectors, ef_search=ef_search
    )
    return vectors, ranking


def close_vector_side_connections() -> None:
    """Close the connections the vector-side threads keep (tests drop their database).

    One task per thread: a barrier holds each until all have started, so no
    thread runs two of them.
    """
    barrier = threading.Barrier(_VECTOR_THREADS, timeout=10)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        connections.close_all()

    for task in [_vector_side.submit(close) for _ in range(_VECTOR_THREADS)]:
        task.result()


@dataclass(frozen=True)
class SearchConfig:
    """How a search ranks; the defaults are the best measured on SciFact train.

    `fusion` is "weighted" (z-scored sum, `lexical_weight` for BM25) or "rrf";
    `depth` is how many candidates each ranking hands to fusion.
    """

    fusion: str = "weighted"
    # BM25's share of the passage-level fusion (the rest: passage vectors).
    lexical_weight: float = 0.75
    # Weight of each candidate's best kept sentence (ChunkSentence) against
    # the passage-level fusion; 0 leaves it out. Tuned together on SciFact
    # train: BM25 0.34, passage vectors 0.11, best sentence 0.55 in all.
    sentence_weight: float = 0.55
    depth: int = 100
    bm25: Bm25 = field(default_factory=Bm25)
    use_vector: bool = True
    use_lexical: bool = True
    # Second stage over the fused top `rerank_depth`: "" for none;
    # "sentences" (rerank.py) for the sentence re-score, weighted
    # `rerank_weight` against the fused score, with the embedding model
    # `rerank_model` ("" = each collection's); "model" (model_rerank.py) for
    # grades from the chat model `rerank_model` ("" = RAGAPP_CHAT_MODEL).
    rerank: str = ""
    rerank_depth: int = 30
    rerank_weight: float = 0.5
    rerank_model: str = ""


DEFAULT_CONFIG = SearchConfig()


def search_config() -> SearchConfig:
    """Return the configuration searches use: the defaults and the operator's settings."""
    return replace(
        DEFAULT_CONFIG,
        rerank=settings.SEARCH_RERANK,
        rerank_model=settings.SEARCH_RERANK_MODEL,
        rerank_depth=settings.SEARCH_RERANK_DEPTH,
    )


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
    vector_score: float | None = None
    lexical_score: float | None = None
    sentence_score: float | None = None
    rerank_score: float | None = None


def search_scope(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
) -> QuerySet[Collection]:
    """Return the pk queryset of the collections a search covers.

    Those `user` may read, narrowed to `collection_ids` when given. Asking for
    a collection the user may not read gives nothing, exactly like asking for
    one that does not exist.
    """
    scope = Collection.objects.filter(pk__in=collection_ids_readable(user=user))
    if collection_ids is not None:
        scope = scope.filter(pk__in=list(collection_ids))
    return scope.values("pk")


class SearchedCollection(NamedTuple):
    embedding_model: str
    chunk_count: int


def searched_collections(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
) -> dict[int, SearchedCollection]:
    """Return {pk: (embedding model, searchable chunks)} of the scope's collections.

    One small query (the access rule and the kept BM25 totals), where asking
    the chunks themselves which models are in play cost 16 ms at 250,000
    chunks. Collections with nothing searchable are left out, so their
    models embed nothing.
    """
    totals = CollectionLexicon.objects.filter(
        collection_id=OuterRef("pk"), chunk_count__gt=0
    )
    scope = search_scope(user=user, collection_ids=collection_ids)
    rows = scope.annotate(chunks=Subquery(totals.values("chunk_count")[:1])).filter(
        chunks__isnull=False
    )
    return {
        pk: SearchedCollection(model, chunks)
        for pk, model, chunks in rows.values_list("pk", "embedding_model", "chunks")
    }


def searchable_chunks(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
    within: Iterable[int] | None = None,
) -> QuerySet[Chunk]:
    """Return the chunks `user` may search, as one queryset (one SQL query).

    Collections in the search scope only (a subquery on reader groups), only
    the indexed version of each document, and the caller's attribute filters.
    `within` names the collections again as constants (those
    `searched_collections` resolved): the access subquery stays, and the
    planner can weigh the constants against its statistics, which it cannot
    do through the subquery.

    A ready document has only its indexed version's chunks: the swap to
    ready deletes the others in the same transaction, and chunks are only
    written while the document is not ready (documents/ingestion.py). So
    only documents that are not ready (a partial index holds the few) are
    checked chunk by chunk; joining every document cost 7 ms a statement at
    250,000 chunks (docs/bench/scale.md).
    """
    unsearchable_version = (
        Document.objects.filter(pk=OuterRef("document_id"))
        .exclude(status=Document.Status.READY)
        .exclude(indexed_version=OuterRef("version"))
    )
    chunks = Chunk.objects.filter(
        ~Exists(unsearchable_version),
        collection_id__in=search_scope(user=user, collection_ids=collection_ids),
    )
    if within is not None:
        chunks = chunks.filter(collection_id__in=sorted(within))
    return chunks.filter(document_filter_q(filters, prefix="document__"))


def query_vectors(query: str, models: Iterable[str]) -> dict[str, list[float]]:
    """Return {model: the query's embedding by that model}."""
    return {
        model: get_embedding_provider(model).embed_query(query)
        for model in sorted(set(models))
    }


def _embedded_by(
    chunks: QuerySet[Chunk], model: str, vector: Sequence[float]
) -> tuple[QuerySet[Chunk], CosineDistance]:
    """Return the chunks `model` embedded, and their cosine distance to `vector`.

    The model's own size, not the collection's record of it: only vectors
    this model made are compared (a re-index to another model leaves the
    old ones searchable by words until the swap).
    """
    dimensions = get_embedding_provider(model).dimensions
    embedded = chunks.filter(
        collection__embedding_model=model, embedding_dimensions=dimensions
    )
    distance = CosineDistance(
        Cast("embedding", VectorField(dimensions=dimensions)), vector
    )
    return embedded, distance


def vector_ranking(
    chunks: QuerySet[Chunk],
    *,
    query: str,
    depth: int,
    vectors: dict[str, Sequence[float]] | None = None,
    ef_search: int | None = None,
) -> list[tuple[int, float]]:
    """Return up to `depth` (chunk pk, cosine similarity) pairs, best first.

    One embedding of the query per model in play (or those in `vectors`,
    embedded beforehand). The HNSW index is walked with pgvector's iterative
    scan, so access and attribute conditions that reject many neighbours
    still leave `depth` results.
    """
    if vectors is None:
        models = (
            Collection.objects.filter(pk__in=chunks.values("collection_id"))
            .values_list("embedding_model", flat=True)
            .distinct()
        )
        vectors = query_vectors(query, models)
    scored: list[tuple[float, int]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL hnsw.ef_search = %s",
            [ef_search or max(depth, HNSW_EF_SEARCH)],
        )
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        for model, vector in vectors.items():
            embedded, distance = _embedded_by(chunks, model, vector)
            rows = (
                embedded.annotate(distance=distance)
                .order_by("distance")
                .values_list("distance", "pk")[:depth]
            )
            scored.extend(rows)
    # relaxed_order may return neighbours slightly out of order: sort here.
    return [(pk, 1.0 - distance) for distance, pk in sorted(scored)[:depth]]


def sentence_ranking(
    chunks: QuerySet[Chunk],
    *,
    candidates: Iterable[int],
    vectors: dict[str, Sequence[float]],
) -> list[tuple[int, float]]:
    """Return (chunk pk, cosine similarity of its best sentence), best first.

    Only `candidates` are scored (the other rankings' picks).

    Reads the sentence vectors kept at indexing: no embedding at query time.
    A chunk indexed without them (RAGAPP_INDEX_SENTENCES off, or before they
    existed) scores by its own vector, which is what its one "sentence"
    would be. The candidates are filtered through `chunks`, so the access
    rule holds here as in the rankings that proposed them.
    """
    candidates = sorted(set(candidates))
    scored: list[tuple[int, float]] = []
    for model, vector in vectors.items():
        best_sentence = (
            ChunkSentence.objects.filter(chunk_id=OuterRef("pk"))
            .annotate(distance=CosineDistance("embedding", HalfVector(vector)))
            .order_by("distance")
            .values("distance")[:1]
        )
        embedded, own = _embedded_by(chunks, model, vector)
        rows = (
            embedded.filter(pk__in=candidates)
            .annotate(distance=Coalesce(Subquery(best_sentence), own))
            # No model ordering: it would join every document to sort by date.
            .order_by()
            .values_list("pk", "distance")
        )
        scored.extend((pk, 1.0 - distance) for pk, distance in rows)
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def chunk_search(
    *,
    user: AbstractBaseUser | AnonymousUser,
    query: str,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
    limit: int = 10,
    config: SearchConfig | None = None,
    on_model_call: UsageSink | None = None,
) -> list[Passage]:
    """Return the `limit` best passages for `query` among those `user` may read.

    `on_model_call` hears of each chat-model call the search makes (the
    model rerank), so the caller counts its tokens and cost.
    """
    config = config or search_config()
    query = clean_query(query).strip()
    if not query:
        return []
    searched = searched_collections(user=user, collection_ids=collection_ids)
    if not searched:
        return []
    chunks = searchable_chunks(
        user=user, collection_ids=collection_ids, filters=filters, within=searched
    )
    depth = config.depth
    ef_search = hnsw_ef_search(depth, sum(c.chunk_count for c in searched.values()))
    vector_side = None
    if config.use_vector:
        # The models are known before any chunk is read: embed the query, and
        # rank by vectors, meanwhile. Another connection sees only committed
        # rows, so inside a transaction (a test's, or a caller's writes) the
        # vector query waits for this connection instead.
        models = [collection.embedding_model for collection in searched.values()]
        alongside = config.use_lexical and not connection.in_atomic_block
        vector_side = _vector_side.submit(
            _embed_and_rank,
            query,
            models,
            chunks if alongside else None,
            depth,
            ef_search,
        )
    lexical = None
    if config.use_lexical:
        lexical = bm25_ranking(
            chunks,
            scope=search_scope(user=user, collection_ids=collection_ids),
            query=query,
            depth=config.depth,
            params=config.bm25,
        )
    rankings: dict[str, list[tuple[int, float]]] = {}
    if vector_side is not None:
        vectors, ranking = vector_side.result()
        if ranking is None:
            ranking = vector_ranking(
                chunks, query=query, depth=depth, vectors=vectors, ef_search=ef_search
            )
        rankings["vector"] = ranking
        if lexical is not None:
            rankings["lexical"] = lexical
        if config.sentence_weight:
            rankings["sentences"] = sentence_ranking(
                chunks,
                candidates=(pk for ranking in rankings.values() for pk, _ in ranking),
                vectors=vectors,
            )
    elif lexical is not None:
        rankings["lexical"] = lexical
    if config.fusion == "rrf":
        fused = reciprocal_rank(rankings)
    else:
        passages = 1.0 - config.sentence_weight
        fused = weighted_z(
            rankings,
            weights={
                "lexical": passages * config.lexical_weight,
                "vector": passages * (1.0 - config.lexical_weight),
                "sentences": config.sentence_weight,
            },
        )
    order = sorted(fused, key=lambda pk: (-fused[pk], pk))
    rows = {
        chunk.pk: chunk
        for chunk in chunks.filter(
            pk__in=order[: max(limit, config.rerank_depth if config.rerank else 0)]
        ).select_related("document", "collection")
    }
    order, reranked = _second_stage(
        query, order, rows, fused, rankings, config, on_model_call
    )
    return _passages(order[:limit], rows, fused, rankings, reranked)


def _second_stage(
    query: str,
    order: list[int],
    rows: dict[int, Chunk],
    fused: dict[int, float],
    rankings: dict[str, list[tuple[int, float]]],
    config: SearchConfig,
    on_model_call: UsageSink | None,
) -> tuple[list[int], dict[int, float]]:
    """Re-order the fused top `rerank_depth`; return the order and the second-stage scores.

    Everything below the re-ranked head keeps its fused order. A second
    stage that cannot score (its model is down) leaves the fused order.
    """
    if not config.rerank:
        return order, {}
    top = [pk for pk in order[: config.rerank_depth] if pk in rows]
    rest = order[config.rerank_depth :]
    if not top:
        return order, {}
    if config.rerank == "sentences":
        scores = _sentence_rescore(query, [rows[pk] for pk in top], config)
        if not scores:
            return order, {}
        rescored = weighted_z(
            {
                "fused": [(pk, fused[pk]) for pk in top],
                "sentences": list(scores.items()),
            },
            weights={
                "fused": 1.0 - config.rerank_weight,
                "sentences": config.rerank_weight,
            },
        )
        return sorted(top, key=lambda pk: (-rescored[pk], pk)) + rest, scores
    # "model": the grade decides, the fused order breaks ties.
    grades = model_grades(
        query,
        _passages(top, rows, fused, rankings, {}),
        model=config.rerank_model or settings.CHAT_MODEL,
        on_finished=on_model_call,
    )
    if not grades:
        return order, {}
    position = {pk: n for n, pk in enumerate(top)}
    graded = sorted(top, key=lambda pk: (-grades[pk], position[pk]))
    return graded + rest, {pk: float(grade) for pk, grade in grades.items()}


def _sentence_rescore(
    query: str, chunks: list[Chunk], config: SearchConfig
) -> dict[int, float]:
    """Sentence scores per chunk, each with its collection's model (or the configured one)."""
    by_model: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        by_model[config.rerank_model or chunk.collection.embedding_model].append(chunk)
    scores: dict[int, float] = {}
    for model, group in by_model.items():
        try:
            scores.update(sentence_scores(query, group, model=model))
        except ProviderError as exc:
            # The first stage's order stands; an answer is still possible.
            logger.warning("Re-score with %s skipped: %s", model, exc)
            return {}
    return scores


def _passages(
    best: list[int],
    rows: dict[int, Chunk],
    fused: dict[int, float],
    rankings: dict[str, list[tuple[int, float]]],
    reranked: dict[int, float],
) -> list[Passage]:
    """Describe the winners (fetched through the access-checked queryset), in order."""
    positions = {
        name: {pk: (rank, score) for rank, (pk, score) in enumerate(ranking, 1)}
        for name, ranking in rankings.items()
    }
    passages = []
    for pk in best:
        chunk = rows.get(pk)
        if chunk is None:
            continue
        vector = positions.get("vector", {}).get(pk, (None, None))
        lexical = positions.get("lexical", {}).get(pk, (None, None))
        sentence = positions.get("sentences", {}).get(pk, (None, None))
        passages.append(
            Passage(
                chunk_id=pk,
                document_id=chunk.document_id,
                document_title=chunk.document.title,
                collection_id=chunk.collection_id,
                text=chunk.text,
                heading=chunk.heading,
                page_start=chunk.page_start,
                page_end=chunk.page_end,
                score=fused[pk],
                vector_rank=vector[0],
                lexical_rank=lexical[0],
                vector_score=vector[1],
                lexical_score=lexical[1],
                sentence_score=sentence[1],
                rerank_score=reranked.get(pk),
            )
        )
    return passages


def searchable_chunks_sql(
    *,
    user: AbstractBaseUser | AnonymousUser,
    collection_ids: Iterable[int] | None = None,
) -> str:
    """Return the SQL of the access-checked base query, for audits and tests."""
    return str(searchable_chunks(user=user, collection_ids=collection_ids).query)
