"""Keep BM25's term statistics in step with what is searchable, and read them.

Every change to the searchable chunks of a collection goes through
`lexicon_apply` in the transaction that makes it (a version swapped in, a
document deleted), so the statistics are exactly those of the searchable
chunks at every commit. `lexicon_rebuild` recomputes a collection from
scratch (the migration and `manage.py lexicon --rebuild` use it) and
`lexicon_drift` says whether the kept figures differ from a recount.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

from ragapp.documents.models import Chunk
from ragapp.retrieval.models import CollectionLexicon, LexiconTerm

_CHUNKS = Chunk._meta.db_table
_TOTALS = CollectionLexicon._meta.db_table
_TERMS = LexiconTerm._meta.db_table

# +1 for chunks of the version coming in, -1 for the one going out.
_SIGNED_CHUNKS = f"""
    SELECT CASE WHEN c.version = %(add)s THEN 1 ELSE -1 END AS sign, c.*
    FROM {_CHUNKS} c
    WHERE c.document_id = %(document)s AND c.version IN (%(add)s, %(remove)s)
"""


def lexicon_apply(
    *, collection_id: int, document_id: int, remove_version: int, add_version: int
) -> None:
    """Count `add_version` of a document's chunks in, and `remove_version` out.

    Version 0 means none. Call it inside the transaction that changes what is
    searchable. The totals row is written first: it serialises concurrent
    changes to one collection, so the term rows are never locked in
    conflicting orders (no deadlocks).
    """
    params = {"document": document_id, "add": add_version, "remove": remove_version}
    params["collection"] = collection_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_TOTALS} (collection_id, chunk_count, length_total)
            SELECT %(collection)s, coalesce(sum(sign), 0),
                   coalesce(sum(sign * search_length), 0)
            FROM ({_SIGNED_CHUNKS}) signed
            ON CONFLICT (collection_id) DO UPDATE SET
                chunk_count = {_TOTALS}.chunk_count + excluded.chunk_count,
                length_total = {_TOTALS}.length_total + excluded.length_total
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO {_TERMS} (collection_id, lexeme, chunk_count)
            SELECT %(collection)s, term.lexeme, sum(signed.sign)
            FROM ({_SIGNED_CHUNKS}) signed, unnest(signed.search_vector) term
            GROUP BY term.lexeme
            HAVING sum(signed.sign) <> 0
            ORDER BY term.lexeme
            ON CONFLICT (collection_id, lexeme) DO UPDATE SET
                chunk_count = {_TERMS}.chunk_count + excluded.chunk_count
            RETURNING lexeme, chunk_count
            """,
            params,
        )
        gone = [lexeme for lexeme, count in cursor.fetchall() if count <= 0]
        if gone:
            cursor.execute(
                f"DELETE FROM {_TERMS} WHERE collection_id = %s AND lexeme = ANY(%s)",
                [collection_id, gone],
            )


_SEARCHABLE_CHUNKS = f"""
    SELECT c.* FROM {_CHUNKS} c
    JOIN documents_document d ON d.id = c.document_id
    WHERE c.collection_id = %(collection)s
      AND d.indexed_version > 0 AND c.version = d.indexed_version
"""


def lexicon_rebuild(*, collection_id: int) -> None:
    """Recount a collection's statistics from its searchable chunks.

    The totals row is locked by a statement that counts nothing, so a swap
    in progress commits first and every count after it sees that swap.
    """
    params = {"collection": collection_id}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_TOTALS} (collection_id, chunk_count, length_total)
            VALUES (%(collection)s, 0, 0) ON CONFLICT (collection_id) DO NOTHING
            """,
            params,
        )
        cursor.execute(
            f"SELECT 1 FROM {_TOTALS} WHERE collection_id = %(collection)s FOR UPDATE",
            params,
        )
        cursor.execute(
            f"""
            UPDATE {_TOTALS} SET
                chunk_count = (SELECT count(*) FROM ({_SEARCHABLE_CHUNKS}) s),
                length_total = (
                    SELECT coalesce(sum(search_length), 0)
                    FROM ({_SEARCHABLE_CHUNKS}) s
                )
            WHERE collection_id = %(collection)s
            """,
            params,
        )
        cursor.execute(
            f"DELETE FROM {_TERMS} WHERE collection_id = %s", [collection_id]
        )
        cursor.execute(
            f"""
            INSERT INTO {_TERMS} (collection_id, lexeme, chunk_count)
            SELECT %(collection)s, term.lexeme, count(*)
            FROM ({_SEARCHABLE_CHUNKS}) searchable, unnest(searchable.search_vector) term
            GROUP BY term.lexeme
            """,
            params,
        )


def lexicon_drift(*, collection_id: int) -> dict[str, tuple[int, int]]:
    """Return {what: (kept, recounted)} for every figure that differs; {} if none."""
    params = {"collection": collection_id}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH recount AS (
                SELECT term.lexeme, count(*)::integer AS chunk_count
                FROM ({_SEARCHABLE_CHUNKS}) searchable,
                     unnest(searchable.search_vector) term
                GROUP BY term.lexeme
            ), kept AS (
                SELECT lexeme, chunk_count FROM {_TERMS}
                WHERE collection_id = %(collection)s
            )
            SELECT coalesce(kept.lexeme, recount.lexeme),
                   coalesce(kept.chunk_count, 0), coalesce(recount.chunk_count, 0)
            FROM kept FULL JOIN recount ON kept.lexeme = recount.lexeme
            WHERE kept.chunk_count IS DISTINCT FROM recount.chunk_count
            UNION ALL
            SELECT '(chunks)', coalesce(max(t.chunk_count), 0), (
                SELECT count(*) FROM ({_SEARCHABLE_CHUNKS}) s)
            FROM {_TOTALS} t WHERE t.collection_id = %(collection)s
            UNION ALL
            SELECT '(length)', coalesce(max(t.length_total), 0), (
                SELECT coalesce(sum(search_length), 0) FROM ({_SEARCHABLE_CHUNKS}) s)
            FROM {_TOTALS} t WHERE t.collection_id = %(collection)s
            """,
            params,
        )
        return {
            what: (int(kept), int(recounted))
            for what, kept, recounted in cursor.fetchall()
            if kept != recounted
        }


@dataclass(frozen=True)
class TermStatistics:
    """BM25's view of a search scope: size, mean length and each term's idf."""

    chunk_count: int
    mean_length: float
    frequency: dict[str, int]
    idf: dict[str, float]


def term_statistics(
    *, collection_ids: QuerySet | Iterable[int], lexemes: Iterable[str]
) -> TermStatistics:
    """Sum the statistics of the collections in scope and derive each term's idf.

    idf is Lucene's BM25 form, ln(1 + (N - n + 0.5) / (n + 0.5)): never
    negative, so a term in most chunks still counts a little.
    """
    scope = (
        collection_ids if isinstance(collection_ids, QuerySet) else list(collection_ids)
    )
    totals = CollectionLexicon.objects.filter(collection_id__in=scope).values_list(
        "chunk_count", "length_total"
    )
    chunk_count = sum(count for count, _ in totals)
    length_total = sum(length for _, length in totals)
    wanted = sorted(set(lexemes))
    frequencies: dict[str, int] = dict.fromkeys(wanted, 0)
    rows = LexiconTerm.objects.filter(
        collection_id__in=scope, lexeme__in=wanted
    ).values_list("lexeme", "chunk_count")
    for lexeme, count in rows:
        frequencies[lexeme] += count
    return TermStatistics(
        chunk_count=chunk_count,
        mean_length=(length_total / chunk_count) if chunk_count else 1.0,
        frequency=frequencies,
        idf={
            lexeme: math.log(1 + (chunk_count - n + 0.5) / (n + 0.5))
            for lexeme, n in frequencies.items()
        },
    )
