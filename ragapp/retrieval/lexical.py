"""BM25 ranking computed by PostgreSQL from the chunks' tsvectors.

PostgreSQL's `ts_rank` ignores how rare a term is and how long a passage is,
and scores far below BM25 (SciFact nDCG@10 58.2 against 68.6,
shared/eval/REFERENCE_RUN.md). BM25 needs term frequencies (a tsvector
keeps a position per occurrence), the passage's length (`Chunk.search_length`)
and per-term chunk frequencies over the searched collections (kept in
`ragapp.retrieval.models`). The score is a SQL expression, so ranking,
access rule and filters stay one query.

Scoring every chunk that contains any query term would touch most of the
table for questions with common words, so two rules decide which chunks are
scored at all (`bm25_ranking`):

- MaxScore, which is exact: the rarest terms' matches give a score floor,
  and terms whose summed best case stays below that floor cannot lift a
  chunk into the top k on their own, so they score chunks but do not select
  them.
- A frequency cap, which is not: a term in more than `Bm25.select_share` of
  the searched chunks (and more than `Bm25.select_floor` of them) never
  selects, even where MaxScore would need it. A chunk that holds none of the
  query's rarer terms is then missed, however often it repeats the common
  ones. In exchange the chunks scored per query stay bounded as a collection
  grows (docs/decisions/lexical-ranking.md has the measurements). A query
  made only of common terms is selected by its rarest term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, FloatField, QuerySet
from django.db.models.expressions import RawSQL

from ragapp.documents.models import Chunk
from ragapp.retrieval.lexicon import TermStatistics, term_statistics


@dataclass(frozen=True)
class Bm25:
    """BM25's saturation (k1) and length normalisation (b), and who selects.

    A term selects candidates only if it is in at most `select_share` of the
    searched chunks or at most `select_floor` of them, whichever is more.
    The floor spares small collections: scoring a thousand chunks is cheap,
    so the cap only bites where a term's matches are many (SciFact's 10,805
    passages rank as they did without it).
    """

    k1: float = 1.2
    b: float = 0.5
    select_share: float = 0.01
    select_floor: int = 1000


_CHUNKS = Chunk._meta.db_table


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_query(query: str) -> str:
    """Return `query` as text PostgreSQL and the tokenizers accept.

    JSON can carry NUL and lone surrogates (`\\u0000`, `\\ud800`); PostgreSQL
    text holds neither and UTF-8 cannot encode the second. Both become spaces.
    """
    return _UNSTORABLE.sub(" ", query)


def query_terms(query: str) -> dict[str, int]:
    """Return {lexeme: occurrences} of `query` as the English configuration sees it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, coalesce(array_length(positions, 1), 1)"
            " FROM unnest(to_tsvector('english', %s))",
            [clean_query(query)],
        )
        return dict(cursor.fetchall())


def _tsquery(lexemes: list[str]) -> str:
    """A tsquery literal matching any of `lexemes`, taken as they are (no parsing)."""
    quoted = (
        "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
        for lexeme in lexemes
    )
    return " | ".join(quoted)


def _score_sql(stats: TermStatistics, params: Bm25) -> str:
    """BM25 of the row's chunk; parameters: weights, lexemes, lexemes again.

    Unnesting a whole tsvector per candidate dominated the query (4x slower
    on SciFact), so C functions first cut it to the query's lexemes: the
    search vector carries no weights (all D), `setweight` marks the query's
    lexemes A and `ts_filter` keeps only those, positions and all. Each
    lexeme's weight is then read from an array by position (as fast as
    joining the weights as a table, measured at 250,000 chunks, with no join
    to plan per candidate).
    """
    k1, b = float(params.k1), float(params.b)
    mean = float(stats.mean_length)
    return f"""(
        SELECT coalesce(sum(
            (%s::float8[])[array_position(%s::text[], x.lexeme)] * x.tf * {k1 + 1.0!r}
            / (x.tf + {k1!r} * (1 - {b!r} + {b!r} * {_CHUNKS}.search_length / {mean!r}))
        ), 0)
        FROM (
            SELECT t.lexeme, coalesce(array_length(t.positions, 1), 1)::float8 AS tf
            FROM unnest(ts_filter(
                setweight({_CHUNKS}.search_vector, 'A', %s::text[]), '{{a}}'
            )) t
        ) x
    )"""


def _ranked(
    chunks: QuerySet[Chunk],
    *,
    selecting: list[str],
    weights: dict[str, float],
    stats: TermStatistics,
    params: Bm25,
    depth: int,
) -> list[tuple[int, float]]:
    lexemes = sorted(weights)
    rows = (
        chunks.alias(
            matches=RawSQL(
                f"{_CHUNKS}.search_vector @@ %s::tsquery",
                [_tsquery(selecting)],
                output_field=BooleanField(),
            )
        )
        .filter(matches=True)
        .annotate(
            bm25=RawSQL(
                _score_sql(stats, params),
                [[weights[lexeme] for lexeme in lexemes], lexemes, lexemes],
                output_field=FloatField(),
            )
        )
        .order_by("-bm25", "pk")
        .values_list("pk", "bm25")[:depth]
    )
    return [(pk, float(score)) for pk, score in rows]


def bm25_ranking(
    chunks: QuerySet[Chunk],
    *,
    scope: QuerySet,
    query: str,
    depth: int,
    params: Bm25 | None = None,
) -> list[tuple[int, float]]:
    """Return up to `depth` (chunk pk, BM25 score) pairs of `chunks`, best first.

    `scope` is the pk queryset of the collections searched: their statistics
    give each term its weight.
    """
    params = params or Bm25()
    terms = query_terms(query)
    if not terms:
        return []
    stats = term_statistics(collection_ids=scope, lexemes=terms)
    if stats.chunk_count == 0:
        return []
    weights = {lexeme: stats.idf[lexeme] * count for lexeme, count in terms.items()}
    # Rarest first: the most selective terms seed the score floor.
    by_rarity = sorted(weights, key=lambda lexeme: (-weights[lexeme], lexeme))
    cap = max(params.select_share * stats.chunk_count, params.select_floor)
    selectable = [lexeme for lexeme in by_rarity if stats.frequency[lexeme] <= cap]
    if not selectable:
        # Only common terms: the rarest of them selects, as the closest thing
        # to a rare term this query has.
        selectable = [min(by_rarity, key=lambda t: (stats.frequency[t], t))]
    seeds: list[str] = []
    for lexeme in selectable:
        seeds.append(lexeme)
        if sum(stats.frequency[seed] for seed in seeds) >= depth:
            break
    ranked = _ranked(
        chunks,
        selecting=seeds,
        weights=weights,
        stats=stats,
        params=params,
        depth=depth,
    )
    floor = ranked[-1][1] if len(ranked) == depth else 0.0
    # A term's contribution is below weight * (k1 + 1) whatever the passage.
    essential = by_rarity
    best_case_rest = 0.0
    for lexeme in reversed(by_rarity):  # commonest first
        best_case_rest += weights[lexeme] * (params.k1 + 1)
        if best_case_rest >= floor:
            essential = by_rarity[: by_rarity.index(lexeme) + 1]
            break
    # Seeds and selecting terms are both the rarest selectable terms: one
    # list holds the other.
    essential = [lexeme for lexeme in selectable if lexeme in essential]
    # If every essential term is a seed, every chunk that can reach the top
    # holds one and was ranked already: the first pass is exact (up to the
    # frequency cap).
    if len(essential) > len(seeds):
        ranked = _ranked(
            chunks,
            selecting=essential,
            weights=weights,
            stats=stats,
            params=params,
            depth=depth,
        )
    return ranked
