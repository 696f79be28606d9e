"""BM25 in PostgreSQL against an independent Python oracle; MaxScore and the cap.

The oracle tokenises each chunk's heading and text with PostgreSQL's English
configuration (the tokeniser is not what is under test) and does everything
else in Python: Lucene's idf, tf from the positions, document length, mean
length over the searched collections, and an exhaustive ranking. The app's
ranking must give the same scores, and the same top k at every depth, although
it only lets its "essential" terms select candidates (MaxScore).

The frequency cap (terms in many chunks never select) is an approximation by
design: with the cap in force the ranking must equal the oracle's ranking of
the chunks that hold a selecting term, scored over all query terms.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connection

from ragapp.documents.models import Chunk, Collection
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.retrieval import lexical
from ragapp.retrieval.lexical import Bm25, bm25_ranking
from ragapp.retrieval.lexicon import lexicon_drift, lexicon_rebuild
from ragapp.retrieval.search import chunk_search, search_scope, searchable_chunks
from tests.factories import CollectionFactory, DocumentFactory, UserFactory
from tests.retrieval.conftest import FAST_MODEL

pytestmark = pytest.mark.django_db

REL = 1e-6
DEPTHS = (1, 5, 20, 100)
CORPUS_SLUG = "bm25-corpus-"


# --- The oracle -------------------------------------------------------------------


def lexemes_of(text: str) -> Counter[str]:
    """Return {lexeme: occurrences} of `text` as PostgreSQL's English config sees it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lexeme, coalesce(array_length(positions, 1), 1)"
            " FROM unnest(to_tsvector('english', %s))",
            [text],
        )
        return Counter(dict(cursor.fetchall()))


@dataclass
class Doc:
    """One chunk as the oracle sees it."""

    pk: int
    collection_id: int
    terms: Counter[str]
    length: int


def oracle_docs(chunk_ids: list[int]) -> dict[int, Doc]:
    """Tokenise the chunks' heading and text afresh (not their stored columns)."""
    terms: dict[int, Counter[str]] = {pk: Counter() for pk in chunk_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, t.lexeme, coalesce(array_length(t.positions, 1), 1)"
            " FROM documents_chunk c,"
            "  unnest(to_tsvector('english', c.heading || ' ' || c.text)) t"
            " WHERE c.id = ANY(%s)",
            [chunk_ids],
        )
        for pk, lexeme, count in cursor.fetchall():
            terms[pk][lexeme] = count
    collections = dict(
        Chunk.objects.filter(pk__in=chunk_ids).values_list("pk", "collection_id")
    )
    return {
        pk: Doc(pk, collections[pk], counts, sum(counts.values()))
        for pk, counts in terms.items()
    }


def oracle_scores(
    scope: list[Doc], candidates: list[Doc], query: str, params: Bm25
) -> dict[int, float]:
    """Lucene BM25 of every candidate matching any query term, statistics from `scope`."""
    wanted = lexemes_of(query)
    total = len(scope)
    if not wanted or not total:
        return {}
    mean = sum(doc.length for doc in scope) / total
    frequency = {t: sum(1 for doc in scope if t in doc.terms) for t in wanted}
    idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
    k1, b = params.k1, params.b
    scores = {}
    for doc in candidates:
        score = 0.0
        for term, query_count in wanted.items():
            tf = doc.terms.get(term, 0)
            if tf:
                norm = k1 * (1 - b + b * doc.length / mean)
                score += query_count * idf[term] * tf * (k1 + 1) / (tf + norm)
        if score > 0:
            scores[doc.pk] = score
    return scores


def assert_exact_top_k(
    got: list[tuple[int, float]], expected: dict[int, float], depth: int, why: str
) -> None:
    """`got` is a top `depth` of `expected`: right scores, ties at the cut allowed."""
    best = sorted(expected.items(), key=lambda item: (-item[1], item[0]))
    size = min(depth, len(best))
    assert len(got) == size, f"{why}: {len(got)} results, expected {size}"
    ids = [pk for pk, _ in got]
    assert len(set(ids)) == len(ids), f"{why}: duplicates in {ids}"
    for rank, ((pk, score), (_, rank_score)) in enumerate(
        zip(got, best[:size], strict=True), 1
    ):
        assert pk in expected, f"{why}: chunk {pk} at rank {rank} matches no term"
        assert score == pytest.approx(expected[pk], rel=REL), (
            f"{why}: chunk {pk} scored {score}, oracle {expected[pk]}"
        )
        assert score == pytest.approx(rank_score, rel=REL), (
            f"{why}: rank {rank} holds {score}, the oracle's rank {rank} is "
            f"{rank_score}: a better chunk was missed"
        )
    if size:
        cut = best[size - 1][1]
        must = {pk for pk, score in best if score > cut * (1 + REL)}
        assert must <= set(ids), f"{why}: missing {must - set(ids)}"


# --- A generated corpus with common, medium and rare terms ------------------------

CONSONANTS = "bdfgklmnprtvz"
VOWELS = "aiou"


def pseudo_words(rng: random.Random, count: int) -> list[str]:
    """Made-up words of three syllables (no English stems, no stop words)."""
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(3))
        word += rng.choice(CONSONANTS)
        if word not in words:
            words.append(word)
    return words


@dataclass
class Corpus:
    big: object  # the 320-chunk collection
    small: object  # the 100-chunk collection
    common: list[str]
    medium: list[str]
    rare: list[str]
    filler: list[str]
    searchable: dict[int, Doc]  # by chunk pk, both collections
    part: dict[int, int]  # chunk pk -> its document's "part" attribute
    hidden: set[int]  # chunks that exist but are not searchable


def _chunk_text(rng: random.Random, corpus: dict[str, list[str]]) -> tuple[str, str]:
    tokens: list[str] = []
    for word, p in zip(corpus["common"], (0.85, 0.7, 0.55, 0.4), strict=True):
        if rng.random() < p:
            tokens += [word] * (1 + int(rng.expovariate(1.0)))
    for n, word in enumerate(corpus["medium"]):
        if rng.random() < 0.03 + 0.01 * n:
            tokens += [word] * (1 + int(rng.expovariate(1.5)))
    length = rng.randint(3, 60)
    tokens += rng.choices(corpus["filler"], k=max(0, length - len(tokens)))
    rng.shuffle(tokens)
    heading = rng.choice(["", "", "", rng.choice(corpus["filler"]).title()])
    if rng.random() < 0.15:  # a heading word that is a query term
        heading = f"{heading} {rng.choice(corpus['medium'])}".strip()
    # Capitals and punctuation the parser must see through.
    text = " ".join(tokens).capitalize() + "."
    return heading, text


def _add_chunks(document, chunks: list[tuple[str, str]], version: int = 1) -> None:
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            collection=document.collection,
            version=version,
            ordinal=ordinal,
            heading=heading,
            text=text,
            token_count=len(text.split()),
        )
        for ordinal, (heading, text) in enumerate(chunks)
    )


@pytest.fixture(scope="module")
def corpus(django_db_setup, django_db_blocker) -> Iterator[Corpus]:
    """Built once for the module and committed, so it is deleted afterwards."""
    try:
        with django_db_blocker.unblock():
            built = _build_corpus()
        yield built
    finally:
        with django_db_blocker.unblock():
            Collection.objects.filter(slug__startswith=CORPUS_SLUG).delete()


def _build_corpus() -> Corpus:
    rng = random.Random(20261125)
    words = pseudo_words(rng, 130)
    vocab = {
        "common": words[:4],
        "medium": words[4:24],
        "rare": words[24:84],
        "filler": words[84:130],
    }
    big = CollectionFactory(slug=f"{CORPUS_SLUG}big")
    small = CollectionFactory(slug=f"{CORPUS_SLUG}small")
    texts = {big: [_chunk_text(rng, vocab) for _ in range(300)]}
    texts[small] = [_chunk_text(rng, vocab) for _ in range(100)]
    # Rare terms: each in 1 to 6 chunks, anywhere.
    everything = [(c, n) for c in texts for n in range(len(texts[c]))]
    for word in vocab["rare"]:
        for collection, n in rng.sample(everything, rng.randint(1, 6)):
            heading, text = texts[collection][n]
            texts[collection][n] = (heading, f"{text} {word}")
    common = vocab["common"]
    # Short chunks of nothing but common terms, many times over: the best case
    # of the terms MaxScore leaves out of candidate selection.
    for n in range(12):
        texts[big].append(("", " ".join([common[n % 4]] * (2 + n) + [common[0]])))
    # Identical chunks: ties at the cut.
    texts[big] += [("", f"{vocab['medium'][0]} {vocab['filler'][0]}")] * 8
    part: dict[int, int] = {}
    for collection, chunks in texts.items():
        for number, start in enumerate(range(0, len(chunks), 20)):
            document = DocumentFactory(
                collection=collection,
                indexed_version=1,
                attributes={"part": number % 3},
            )
            _add_chunks(document, chunks[start : start + 20])
            for pk in Chunk.objects.filter(document=document).values_list(
                "pk", flat=True
            ):
                part[pk] = number % 3
    # Chunks that must never be ranked or counted: a document not indexed yet,
    # and the unfinished next version of an indexed one.
    loud = " ".join(vocab["rare"][:10] + vocab["medium"] + common)
    unindexed = DocumentFactory(collection=big, indexed_version=0)
    _add_chunks(unindexed, [("", loud)] * 5)
    reindexing = DocumentFactory(collection=big, indexed_version=1)
    _add_chunks(reindexing, [("", vocab["filler"][1])])
    _add_chunks(reindexing, [("", loud)] * 5, version=2)
    hidden = set(
        Chunk.objects.filter(document=unindexed).values_list("pk", flat=True)
    ) | set(
        Chunk.objects.filter(document=reindexing, version=2).values_list(
            "pk", flat=True
        )
    )
    for collection in (big, small):
        lexicon_rebuild(collection_id=collection.pk)
        assert lexicon_drift(collection_id=collection.pk) == {}
    searchable_ids = list(
        Chunk.objects.filter(collection__in=[big, small])
        .exclude(pk__in=hidden)
        .values_list("pk", flat=True)
    )
    part[Chunk.objects.get(document=reindexing, version=1).pk] = -1  # no attribute
    return Corpus(
        big=big,
        small=small,
        **vocab,
        searchable=oracle_docs(searchable_ids),
        part=part,
        hidden=hidden,
    )


@pytest.fixture
def reader():
    # No password: hashing one costs a quarter of a second per test.
    return UserFactory(is_superuser=True, username="bm25-reader", password=None)


def generated_queries(corpus: Corpus, count: int) -> list[str]:
    """Queries mixing term classes, repeats, unknown words and stop words."""
    rng = random.Random(7)
    c, m, r, f = corpus.common, corpus.medium, corpus.rare, corpus.filler
    fixed = [
        c[0],
        f"{c[0]} {c[1]}",
        " ".join(c),
        f"{m[0]} {c[0]} {c[1]}",
        f"{r[0]} {c[0]}",
        f"{r[1]} {r[2]} {m[3]} {c[0]} {c[1]} {c[2]}",
        f"{m[1]} {m[2]} {m[5]} {c[3]}",
        f"{m[0]} {f[0]}",  # the tied chunks
        f"{c[0]} {c[0]} {c[0]} {m[7]}",  # a repeated query term
        f"What is the {r[3]} of {c[1]}?",  # stop words around terms
        f"zzqxunknown {c[2]}",  # a term no chunk has
    ]
    queries = list(fixed)
    pools = [c, c, m, m, r, f]
    while len(queries) < count:
        size = rng.randint(1, 6)
        words = [rng.choice(rng.choice(pools)) for _ in range(size)]
        if rng.random() < 0.2:
            words.append("the")
        queries.append(" ".join(words))
    return queries


def scope_docs(corpus: Corpus, collections: list) -> list[Doc]:
    ids = {collection.pk for collection in collections}
    return [doc for doc in corpus.searchable.values() if doc.collection_id in ids]


# --- (a) Scores equal the oracle's ------------------------------------------------


def test_stored_length_is_the_number_of_term_occurrences(corpus):
    stored = dict(
        Chunk.objects.filter(pk__in=list(corpus.searchable)).values_list(
            "pk", "search_length"
        )
    )
    assert {pk: doc.length for pk, doc in corpus.searchable.items()} == stored


def corpus_ranking(
    corpus: Corpus,
    reader,
    query: str,
    *,
    depth: int,
    params: Bm25 | None = None,
    collections: list | None = None,
    filters: dict | None = None,
) -> list[tuple[int, float]]:
    """Rank through the real access-checked querysets, as chunk_search does."""
    ids = [c.pk for c in collections or (corpus.big, corpus.small)]
    return bm25_ranking(
        searchable_chunks(user=reader, collection_ids=ids, filters=filters),
        scope=search_scope(user=reader, collection_ids=ids),
        query=query,
        depth=depth,
        params=params,
    )


@pytest.mark.parametrize(
    "params",
    [Bm25(), Bm25(k1=0.9, b=0.4), Bm25(k1=2.0, b=1.0), Bm25(k1=1.2, b=0.0)],
    ids=lambda p: f"k1={p.k1},b={p.b}",
)
def test_every_score_equals_the_oracle(corpus, reader, params):
    scope = scope_docs(corpus, [corpus.big, corpus.small])
    for query in generated_queries(corpus, 30):
        got = corpus_ranking(corpus, reader, query, depth=10_000, params=params)
        expected = oracle_scores(scope, scope, query, params)
        assert dict(got) == pytest.approx(expected, rel=REL), query
        assert not {pk for pk, _ in got} & corpus.hidden


def test_statistics_come_from_the_scope_and_candidates_from_the_filter(corpus, reader):
    """One collection searched, documents filtered: idf and mean length are the
    collection's, the candidates only the filtered documents' chunks."""
    scope = scope_docs(corpus, [corpus.small])
    candidates = [doc for doc in scope if corpus.part[doc.pk] == 1]
    for query in generated_queries(corpus, 30):
        got = corpus_ranking(
            corpus,
            reader,
            query,
            depth=10_000,
            collections=[corpus.small],
            filters={"type": "eq", "key": "part", "value": 1},
        )
        assert dict(got) == pytest.approx(
            oracle_scores(scope, candidates, query, Bm25()), rel=REL
        ), query


# --- (b) MaxScore gives the exact top k ---------------------------------------------


@pytest.mark.parametrize("depth", DEPTHS)
def test_top_k_equals_the_exhaustive_ranking(corpus, reader, depth, monkeypatch):
    scope = scope_docs(corpus, [corpus.big, corpus.small])
    selections: list[tuple[int, int]] = []
    ranked = lexical._ranked

    def spy(chunks, *, selecting, weights, **kwargs):
        selections.append((len(selecting), len(weights)))
        return ranked(chunks, selecting=selecting, weights=weights, **kwargs)

    monkeypatch.setattr(lexical, "_ranked", spy)
    queries = generated_queries(corpus, 60)
    pruned = 0
    for query in queries:
        selections.clear()
        got = corpus_ranking(corpus, reader, query, depth=depth)
        expected = oracle_scores(scope, scope, query, Bm25())
        assert_exact_top_k(got, expected, depth, f"{query!r} depth {depth}")
        if selections and selections[-1][0] < selections[-1][1]:
            pruned += 1
    # The corpus must make MaxScore leave terms out of selection, or this
    # test would only check the exhaustive path.
    assert pruned >= len(queries) // 4, f"only {pruned} queries were pruned"


def test_pruning_keeps_a_chunk_made_only_of_common_terms_when_it_wins(
    make_chunks, reader
):
    """The rare term's few matches are long and score low; a short chunk of the
    common term alone beats them, so the common term must still select."""
    filler = " ".join(f"filler{n}" for n in range(40))
    long_filler = " ".join(f"long{n}" for n in range(400))
    made = make_chunks(
        *[("", f"common {filler}")] * 20,
        *[("", filler)] * 30,
        ("", "common common common common"),
        *[("", f"rareword {long_filler}")] * 3,
    )
    winner = made[50]
    scope = list(oracle_docs(made).values())
    expected = oracle_scores(scope, scope, "rareword common", Bm25())
    assert max(expected, key=expected.get) == winner  # the scenario holds
    for depth in (1, 2, 3, 4, 5, 30):
        got = rank(reader, make_chunks, "rareword common", depth=depth)
        assert_exact_top_k(got, expected, depth, f"depth {depth}")
        assert got[0][0] == winner


# --- (b2) The frequency cap: common terms score but never select ---------------------


def oracle_capped(
    scope: list[Doc], query: str, params: Bm25
) -> tuple[dict[int, float], set[str]]:
    """The oracle's scores of the chunks the cap lets in, and the selecting terms.

    Terms in at most max(select_share x chunks, select_floor) chunks select;
    when none does, the one in the fewest chunks (then the first by spelling).
    """
    wanted = lexemes_of(query)
    frequency = {t: sum(1 for doc in scope if t in doc.terms) for t in wanted}
    cap = max(params.select_share * len(scope), params.select_floor)
    selecting = {t for t, n in frequency.items() if n <= cap}
    if wanted and not selecting:
        selecting = {min(frequency, key=lambda t: (frequency[t], t))}
    candidates = [doc for doc in scope if selecting & doc.terms.keys()]
    return oracle_scores(scope, candidates, query, params), selecting


CAPPED = Bm25(select_share=0.05, select_floor=0)  # 21 of the 420 chunks


@pytest.mark.parametrize("depth", DEPTHS)
def test_with_the_cap_top_k_equals_the_ranking_of_the_chunks_it_lets_in(
    corpus, reader, depth
):
    scope = scope_docs(corpus, [corpus.big, corpus.small])
    differs = 0
    for query in generated_queries(corpus, 60):
        got = corpus_ranking(corpus, reader, query, depth=depth, params=CAPPED)
        expected, _ = oracle_capped(scope, query, CAPPED)
        assert_exact_top_k(got, expected, depth, f"{query!r} depth {depth}")
        exhaustive = oracle_scores(scope, scope, query, CAPPED)
        best = sorted(exhaustive, key=lambda pk: (-exhaustive[pk], pk))[:depth]
        differs += {pk for pk, _ in got} != set(best)
    # The cap must bite on this corpus, or the test checks the exact path only.
    assert differs >= 5, f"the cap changed only {differs} rankings"


def test_the_default_cap_leaves_small_collections_exact(corpus, reader):
    """Below `select_floor` chunks per term nothing is capped: the exhaustive top k."""
    scope = scope_docs(corpus, [corpus.big, corpus.small])
    assert Bm25().select_floor >= len(scope)
    for query in generated_queries(corpus, 30):
        got = corpus_ranking(corpus, reader, query, depth=20)
        assert_exact_top_k(got, oracle_scores(scope, scope, query, Bm25()), 20, query)


def test_the_cap_misses_a_chunk_made_only_of_common_terms(make_chunks, reader):
    """The documented price: the short chunk of the common term alone would win,
    but the common term is in more than the cap's share of chunks."""
    filler = " ".join(f"filler{n}" for n in range(40))
    long_filler = " ".join(f"long{n}" for n in range(400))
    made = make_chunks(
        *[("", f"common {filler}")] * 20,
        *[("", filler)] * 30,
        ("", "common common common common"),
        *[("", f"rareword {long_filler}")] * 3,
    )
    winner, rare = made[50], made[51:]
    capped = Bm25(select_share=0.1, select_floor=0)  # 5.4 of the 54 chunks
    got = rank(reader, make_chunks, "rareword common", capped)
    assert sorted(pk for pk, _ in got) == rare
    assert winner not in dict(got)
    # The common term still counts towards the scores of the chunks let in.
    scope = list(oracle_docs(made).values())
    full = oracle_scores(scope, scope, "rareword common", capped)
    assert dict(got) == pytest.approx({pk: full[pk] for pk in rare}, rel=REL)


def test_a_query_of_common_terms_only_is_selected_by_the_rarest(make_chunks, reader):
    filler = " ".join(f"filler{n}" for n in range(10))
    made = make_chunks(
        *[("", f"common {filler}")] * 20,
        *[("", filler)] * 30,
    )
    capped = Bm25(select_share=0.1, select_floor=0)  # 5 of the 50 chunks
    got = rank(reader, make_chunks, "common filler0", capped)
    assert sorted(pk for pk, _ in got) == made[:20]


# --- (c) What BM25 is for -------------------------------------------------------------


@pytest.fixture
def make_chunks():
    """Make one indexed document of the given (heading, text) chunks; return pks."""
    collection = CollectionFactory(
        embedding_model=FAST_MODEL,
        embedding_dimensions=EMBEDDING_DIMENSIONS[FAST_MODEL],
    )

    def make(*chunks: tuple[str, str], into=None) -> list[int]:
        document = DocumentFactory(collection=into or collection, indexed_version=1)
        _add_chunks(document, list(chunks))
        lexicon_rebuild(collection_id=document.collection_id)
        return list(
            Chunk.objects.filter(document=document)
            .order_by("ordinal")
            .values_list("pk", flat=True)
        )

    make.collection = collection
    return make


def rank(
    reader,
    make_chunks,
    query: str,
    params: Bm25 | None = None,
    *,
    depth: int = 100,
    collection_ids: list[int] | None = None,
) -> list[tuple[int, float]]:
    """Rank in `make_chunks`' collection (or those given), as chunk_search does."""
    ids = collection_ids or [make_chunks.collection.pk]
    return bm25_ranking(
        searchable_chunks(user=reader, collection_ids=ids),
        scope=search_scope(user=reader, collection_ids=ids),
        query=query,
        depth=depth,
        params=params,
    )


def test_a_rare_term_outranks_a_common_one(make_chunks, reader):
    rare, common_twice, *_ = make_chunks(
        ("", "zanzibar banana cherry"),
        ("", "apple apple cherry"),
        *[("", f"apple grape{n} melon{n}") for n in range(9)],
    )
    ranking = rank(reader, make_chunks, "apple zanzibar")
    assert ranking[0][0] == rare
    assert ranking[1][0] == common_twice


def test_longer_chunks_are_normalised(make_chunks, reader):
    filler = " ".join(f"word{n}" for n in range(40))
    short, long_ = make_chunks(("", "quokka habitat"), ("", f"quokka {filler}"))
    ranking = dict(rank(reader, make_chunks, "quokka"))
    assert ranking[short] > ranking[long_]
    flat = dict(rank(reader, make_chunks, "quokka", Bm25(b=0.0)))  # no normalisation
    assert flat[short] == pytest.approx(flat[long_], rel=REL)


def test_term_frequency_saturates(make_chunks, reader):
    once, often = make_chunks(("", "wombat"), ("", "wombat " * 10))
    params = Bm25(k1=1.2, b=0.0)
    scores = dict(rank(reader, make_chunks, "wombat", params))
    assert 1 < scores[often] / scores[once] < params.k1 + 1


def test_headings_count_as_text(make_chunks, reader):
    headed, _ = make_chunks(("Platypus", "It lays eggs."), ("", "It lays eggs."))
    assert [pk for pk, _ in rank(reader, make_chunks, "platypus")] == [headed]


def test_scores_do_not_depend_on_collections_outside_the_scope(make_chunks, reader):
    """Another tenant's documents change neither the ranking nor the scores."""
    make_chunks(("", "echidna spines"), ("", "echidna eggs"), ("", "other things"))
    before = rank(reader, make_chunks, "echidna eggs")
    elsewhere = CollectionFactory()
    make_chunks(*[("", "echidna eggs " * 5)] * 50, into=elsewhere)
    assert rank(reader, make_chunks, "echidna eggs") == before
    both = [make_chunks.collection.pk, elsewhere.pk]
    assert len(rank(reader, make_chunks, "echidna eggs", collection_ids=both)) == 52


# --- (d) Queries with nothing to search, and hostile ones -----------------------------

HOSTILE = [
    "",
    "   ",
    "the and of a an is it to",
    "!!! ??? ... --- ;;;",
    "'a' & !b | c:*",
    "a:* & !b",
    "<-> <2> !!",
    "((( ))) | (( & ||",
    "'",
    "''",
    "\\",
    "\\'",
    "\\\\'' ''\\",
    "x' | 'y",
    "'; DROP TABLE documents_chunk; --",
    "%s %(x)s {} {0}",
    '"quoted" "unclosed',
    "wombat:A wombat:*B wombat:1",
    "e\u0301l\u00e8ve \u0645\u0631\u062d\u0628\u0627 \U0001f600 \u200b\u202e",
    "http://example.com/a?b=c&d='e' user@example.com /etc/passwd",
    "-1 1e309 NaN Infinity 0x1F",
    " ".join(f"'w{n}' & !w{n}:* | \\w{n}" for n in range(400)),
    "wombat " * 5000,
    " ".join(f"term{n}" for n in range(3000)),
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_rank_or_return_nothing(make_chunks, reader, query):
    make_chunks(("", "wombat burrows"), ("A", "b c term7 w3"), ("", "e\u0301l\u00e8ve"))
    count = Chunk.objects.count()
    for depth in (1, 100):
        ranking = rank(reader, make_chunks, query, depth=depth)
        assert len(ranking) <= depth
        assert all(
            isinstance(pk, int) and math.isfinite(score) and score > 0
            for pk, score in ranking
        )
        if not lexemes_of(query):
            assert ranking == []
    passages = chunk_search(
        user=reader, query=query, collection_ids=[make_chunks.collection.pk]
    )
    assert all(math.isfinite(p.score) for p in passages)
    assert Chunk.objects.count() == count


@pytest.mark.parametrize(
    "query", ["wombat\x00burrows", "wombat \ud800 burrows"], ids=["nul", "surrogate"]
)
def test_text_postgresql_cannot_hold_does_not_break_the_search(
    make_chunks, reader, query
):
    """JSON bodies carry both (\\u0000, \\ud800), and both reach the search."""
    (burrows,) = make_chunks(("", "wombat burrows"))
    assert [pk for pk, _ in rank(reader, make_chunks, query)] == [burrows]
    passages = chunk_search(
        user=reader, query=query, collection_ids=[make_chunks.collection.pk]
    )
    assert [p.chunk_id for p in passages] == [burrows]
