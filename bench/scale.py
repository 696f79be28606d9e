"""Search latency and HNSW recall as a collection grows to 250,000 chunks.

Builds a corpus of real text from SciFact (../shared/eval/scifact, read in
place): each chunk is 2-5 sentences of one abstract, in their order, under the
abstract's title as heading, drawn with a fixed seed so every run (and every
prefix of a run) has the same chunks. Embedding 250k chunks with MiniLM would
take over an hour, so each distinct SciFact sentence is embedded once with the
default provider (cached under var/bench-cache/) and a chunk's vector is the
L2-normalised mean of its sentences' vectors.

At each size the chunks are loaded by COPY (GIN and HNSW indexes dropped
first), the BM25 statistics recounted (`lexicon_rebuild`), both indexes
rebuilt (timed), the tables vacuumed and analysed; then the SciFact test
queries run through `chunk_search` as a reader of the collection: hybrid
(default config), lexical-only and vector-only, after a warm-up pass. HNSW
recall@10 compares `vector_ranking(depth=10)` with an exact scan of the same
query (index scans off). A profiled pass splits the hybrid time by SQL
statement, and at the largest size the slowest lexical and vector statements
are run again under EXPLAIN ANALYZE.

Everything runs in a temporary data dir with its own embedded PostgreSQL.

    .venv/bin/python bench/scale.py [--sizes 10000 50000 100000 250000] [--max N]

Writes docs/bench/scale.md and docs/bench/scale-latency.png; the last stdout
line is `chunks=<N> p95_ms=<hybrid p95> recall10=<recall@10>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _common import (
    BENCH_DOCS,
    REPO,
    command_line,
    eval_path,
    private_stack,
    report_write,
)

PLOT = BENCH_DOCS / "scale-latency.png"
CACHE = REPO / "var" / "bench-cache"
DEFAULT_SIZES = (10_000, 50_000, 100_000, 250_000)
DIMENSIONS = 384
HNSW_INDEX = f"chunk_embedding_hnsw_{DIMENSIONS}"
GIN_INDEX = "chunk_search_vector_gin"
CHUNKS_PER_DOCUMENT = 10
SEED = 20240601
TARGET_P95_MS = 60.0
TARGET_RECALL = 0.95
EF_SWEEP = (40, 100, 200, 800)  # hnsw.ef_search values tried for recall@10, LIMIT 10
# Index builds: HNSW's graph fits in memory at 250,000 chunks, so it is built
# in one pass (the app's migrations build on a near-empty table).
BUILD_MEMORY = "1GB"
# A sentence ends at . ! or ? followed by space and a capital, digit or bracket.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


# --- Data ---------------------------------------------------------------------


@dataclass
class Corpus:
    """SciFact abstracts split into sentences, each distinct sentence numbered."""

    ids: list[str]
    titles: list[str]
    sentences: list[list[int]]  # per abstract: indices into `texts`
    texts: list[str]  # distinct sentences


def load_corpus(path: Path) -> Corpus:
    ids, titles, sentences = [], [], []
    number: dict[str, int] = {}
    with path.open() as lines:
        for line in lines:
            row = json.loads(line)
            parts = [p.strip() for p in SENTENCE_END.split(row["text"]) if p.strip()]
            if not parts:
                continue
            ids.append(str(row["_id"]))
            titles.append(row["title"].strip() or parts[0][:200])
            sentences.append([number.setdefault(p, len(number)) for p in parts])
    return Corpus(ids, titles, sentences, list(number))


@dataclass
class Plan:
    """The chunks of the largest size, in load order (any prefix is a size)."""

    document_abstract: list[int]  # per document: abstract index
    chunk_document: list[int]  # per chunk: document index
    chunk_ordinal: list[int]
    chunk_sentences: list[tuple[int, ...]]  # per chunk: positions in its abstract


def plan_chunks(corpus: Corpus, total: int, seed: int) -> Plan:
    """Draw `total` distinct chunks, CHUNKS_PER_DOCUMENT per document."""
    rng = random.Random(seed)
    plan = Plan([], [], [], [])
    seen: set[tuple[int, tuple[int, ...]]] = set()
    while len(plan.chunk_document) < total:
        abstract = rng.randrange(len(corpus.ids))
        count = len(corpus.sentences[abstract])
        document = len(plan.document_abstract)
        plan.document_abstract.append(abstract)
        ordinal = 0
        for _ in range(CHUNKS_PER_DOCUMENT * 4):  # bounded: short abstracts
            if ordinal == CHUNKS_PER_DOCUMENT or len(plan.chunk_document) == total:
                break
            size = min(rng.randint(2, 5), count)
            picked = tuple(sorted(rng.sample(range(count), size)))
            if (abstract, picked) in seen:
                continue
            seen.add((abstract, picked))
            plan.chunk_document.append(document)
            plan.chunk_ordinal.append(ordinal)
            plan.chunk_sentences.append(picked)
            ordinal += 1
    return plan


def mean_words(corpus: Corpus, plan: Plan) -> float:
    """Mean length of the planned chunks' text, in whitespace-separated words."""
    words = [len(text.split()) for text in corpus.texts]
    return statistics.fmean(
        sum(words[corpus.sentences[plan.document_abstract[d]][p]] for p in picked)
        for d, picked in zip(plan.chunk_document, plan.chunk_sentences, strict=True)
    )


def sentence_vectors(corpus: Corpus) -> tuple[np.ndarray, float, bool]:
    """Embed every distinct sentence once with the default model; cache on disk.

    Returns (vectors, seconds spent embedding, whether the cache was used).
    """
    from django.conf import settings

    from ragapp.providers.embeddings import get_embedding_provider

    model = settings.EMBEDDING_MODEL
    digest = hashlib.sha256(
        "\n".join([model, *corpus.texts]).encode("utf-8")
    ).hexdigest()[:16]
    path = CACHE / f"scifact-sentences-{digest}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape == (len(corpus.texts), DIMENSIONS):
            return vectors, 0.0, True
    provider = get_embedding_provider(model)
    started = time.monotonic()
    vectors = np.empty((len(corpus.texts), DIMENSIONS), dtype=np.float32)
    step = 512
    for start in range(0, len(corpus.texts), step):
        batch = corpus.texts[start : start + step]
        vectors[start : start + len(batch)] = np.asarray(
            provider.embed(batch), dtype=np.float32
        )
        done = start + len(batch)
        if done % (step * 10) == 0 or done == len(corpus.texts):
            rate = done / (time.monotonic() - started)
            print(f"  embedded {done}/{len(corpus.texts)} sentences ({rate:.0f}/s)")
    seconds = time.monotonic() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors, seconds, False


# --- Database -----------------------------------------------------------------


@contextmanager
def raw_connection() -> Iterator[Any]:
    """A psycopg connection of its own, with pgvector's types, for COPY."""
    import psycopg
    from django.conf import settings
    from pgvector.psycopg import register_vector

    from ragapp.runtime import embedded_postgres

    db = settings.DATABASES["default"]
    server = embedded_postgres.ensure_running(db["EMBEDDED_PGDATA"])
    with psycopg.connect(server.conninfo(db["NAME"])) as conn:
        register_vector(conn)
        yield conn


def sql_value(query: str, params: list | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone()[0]


def sql_run(query: str, params: list | None = None) -> float:
    """Execute `query` on Django's connection; return the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
    return time.perf_counter() - started


def model_index(name: str) -> Any:
    from ragapp.documents.models import Chunk

    return next(i for i in Chunk._meta.indexes if i.name == name)


def drop_index(name: str) -> None:
    sql_run(f'DROP INDEX IF EXISTS "{name}"')


def create_index(name: str) -> float:
    """Create the model's index `name` exactly as the migrations do; time it."""
    from django.db import connection

    from ragapp.documents.models import Chunk

    started = time.perf_counter()
    with connection.schema_editor() as editor:
        editor.add_index(Chunk, model_index(name))
    return time.perf_counter() - started


def megabytes(relation: str, function: str = "pg_relation_size") -> float:
    return sql_value(f"SELECT {function}(%s::regclass)", [relation]) / 1_048_576


@dataclass
class Setup:
    collection_id: int
    user: Any
    document_pks: dict[int, int] = field(default_factory=dict)  # index -> pk
    last_chunk_pk: int = 0


def create_scope() -> Setup:
    """A collection readable by a group; a plain user in that group."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from ragapp.documents.models import Collection

    group = Group.objects.create(name="scale readers")
    user = get_user_model().objects.create_user(username="scale-reader")
    user.groups.add(group)
    collection = Collection.objects.create(
        name="SciFact at scale",
        slug="scifact-scale",
        embedding_model=settings.EMBEDDING_MODEL,
        embedding_dimensions=DIMENSIONS,
    )
    collection.reader_groups.add(group)
    user = get_user_model().objects.get(pk=user.pk)
    return Setup(collection_id=collection.pk, user=user)


def load_chunks(
    setup: Setup,
    corpus: Corpus,
    plan: Plan,
    vectors: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """Insert documents and chunks [start, stop) of the plan (indexes dropped)."""
    from django.utils import timezone

    from ragapp.documents.models import Chunk, Document

    now = timezone.now()
    wanted = sorted(set(plan.chunk_document[start:stop]) - set(setup.document_pks))
    documents = [
        Document(
            collection_id=setup.collection_id,
            title=corpus.titles[plan.document_abstract[d]][:500],
            original_filename=f"scifact-{corpus.ids[plan.document_abstract[d]]}.txt",
            content_type="text/plain",
            size_bytes=0,
            attributes={"scifact_id": corpus.ids[plan.document_abstract[d]]},
            status=Document.Status.READY,
            indexed_version=1,
            indexed_at=now,
            finished_at=now,
        )
        for d in wanted
    ]
    created = Document.objects.bulk_create(documents, batch_size=2000)
    setup.document_pks.update(zip(wanted, (d.pk for d in created), strict=True))

    columns = (
        "document_id, collection_id, version, ordinal, text, heading, "
        "token_count, embedding"
    )
    types = ["int8", "int8", "int4", "int4", "text", "varchar", "int4", "vector"]
    step = 20_000
    with raw_connection() as conn, conn.cursor() as cursor:
        for low in range(start, stop, step):
            high = min(low + step, stop)
            rows = []
            flat: list[int] = []
            offsets: list[int] = []
            for i in range(low, high):
                abstract = plan.document_abstract[plan.chunk_document[i]]
                ids = [corpus.sentences[abstract][p] for p in plan.chunk_sentences[i]]
                offsets.append(len(flat))
                flat.extend(ids)
                rows.append((abstract, ids))
            sums = np.add.reduceat(vectors[flat], offsets, axis=0)
            units = sums / np.maximum(
                np.linalg.norm(sums, axis=1, keepdims=True), 1e-12
            )
            units = units.astype(np.float32)
            with cursor.copy(
                f"COPY {Chunk._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(types)
                for offset, (abstract, ids) in enumerate(rows):
                    i = low + offset
                    text = " ".join(corpus.texts[s] for s in ids)
                    copy.write_row(
                        (
                            setup.document_pks[plan.chunk_document[i]],
                            setup.collection_id,
                            1,
                            plan.chunk_ordinal[i],
                            text,
                            corpus.titles[abstract][:500],
                            len(text.split()),
                            units[offset],
                        )
                    )
            # Sequence order is COPY order: the new ids, in the rows' order.
            cursor.execute(
                f"SELECT id FROM {Chunk._meta.db_table} WHERE id > %s ORDER BY id",  # noqa: S608 (the model's table)
                [setup.last_chunk_pk],
            )
            chunk_pks = [pk for (pk,) in cursor.fetchall()]
            assert len(chunk_pks) == len(rows), (len(chunk_pks), len(rows))
            setup.last_chunk_pk = chunk_pks[-1]
            copy_sentences(cursor, corpus, vectors, chunk_pks, [ids for _, ids in rows])
        conn.commit()


def copy_sentences(
    cursor: Any,
    corpus: Corpus,
    vectors: np.ndarray,
    chunk_pks: list[int],
    chunk_sentence_ids: list[list[int]],
) -> None:
    """Keep each chunk's sentence vectors, as ingestion does (ChunkSentence)."""
    from pgvector import HalfVector

    from ragapp.documents.models import ChunkSentence

    columns = 'chunk_id, ordinal, start, "end", embedding'
    with cursor.copy(
        f"COPY {ChunkSentence._meta.db_table} ({columns}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int2", "int4", "int4", "halfvec"])
        for pk, ids in zip(chunk_pks, chunk_sentence_ids, strict=True):
            start = 0
            for ordinal, sentence in enumerate(ids):
                end = start + len(corpus.texts[sentence])
                copy.write_row((pk, ordinal, start, end, HalfVector(vectors[sentence])))
                start = end + 1


# --- Measuring ----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def load_queries(scifact: Path, limit: int | None) -> list[tuple[str, str, set[str]]]:
    """SciFact test queries: (id, text, relevant abstract ids), in qrels order."""
    texts = {}
    with (scifact / "queries.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            texts[str(row["_id"])] = row["text"]
    relevant: dict[str, set[str]] = {}
    with (scifact / "qrels" / "test.tsv").open() as lines:
        next(lines)  # header
        for line in lines:
            query_id, corpus_id, *_ = line.split("\t")
            relevant.setdefault(query_id, set()).add(corpus_id)
    queries = [(q, texts[q], docs) for q, docs in relevant.items() if q in texts]
    return queries[:limit] if limit else queries


@dataclass
class Statement:
    kind: str
    sql: str
    params: Any
    seconds: float


class StatementLog:
    """Django execute wrapper: time every statement, labelled by what it does."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []

    def __call__(
        self, execute: Callable, sql: str, params: Any, many: bool, context: dict
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.statements.append(Statement(kind(sql), sql, params, elapsed))


def kind(sql: str) -> str:
    if "documents_chunksentence" in sql:
        return "sentences"
    if "<=>" in sql:
        return "vector"
    if "@@" in sql:
        return "lexical"
    if "to_tsvector" in sql:
        return "query terms"
    if "retrieval_" in sql:
        return "term stats"
    if sql.startswith("SET LOCAL") or "SAVEPOINT" in sql:
        return "set/savepoint"
    if "embedding_model" in sql:
        return "models"
    return "other"


PHASES = (
    "embed",
    "vector",
    "lexical",
    "sentences",
    "term stats",
    "query terms",
    "other SQL",
    "python",
)


@dataclass
class SizeResult:
    chunks: int
    documents: int
    load_s: float
    lexicon_s: float
    gin_s: float
    gin_mb: float
    hnsw_s: float
    hnsw_mb: float
    heap_mb: float
    total_mb: float
    sentences_mb: float
    vacuum_s: float
    loadavg: tuple[float, float, float]
    hybrid: list[float]
    lexical: list[float]
    vector: list[float]
    embed: list[float]
    recall10: float
    recall10_depth100: float
    hit10: float
    reachable: float
    vector_plan: str
    phases: dict[str, list[float]]
    matched: list[int]
    sweep: dict[int, tuple[float, float, float, str]]
    notices: list[str]
    slowest: dict[str, list[Statement]]


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def measure(
    setup: Setup,
    size: int,
    queries: list[tuple[str, str, set[str]]],
    document_abstract: dict[int, str],
    warmup_passes: int,
) -> dict[str, Any]:
    """Latency passes, recall and a profiled pass at the current size."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.db.models.functions import Cast
    from pgvector.django import CosineDistance, VectorField

    from ragapp.providers.embeddings import get_embedding_provider
    from ragapp.retrieval.search import (
        SearchConfig,
        chunk_search,
        searchable_chunks,
        searched_collections,
        vector_ranking,
    )

    user = setup.user
    provider = get_embedding_provider(settings.EMBEDDING_MODEL)
    configs = {
        "hybrid": SearchConfig(),
        "lexical": SearchConfig(use_vector=False),
        "vector": SearchConfig(use_lexical=False),
    }

    def search(text: str, config: SearchConfig) -> list:
        return chunk_search(user=user, query=text, config=config)

    for _ in range(warmup_passes):
        for _, text, _ in queries:
            search(text, configs["hybrid"])
    out: dict[str, Any] = {}
    hits = 0
    for name, config in configs.items():
        latencies = []
        for _, text, relevant in queries:
            started = time.perf_counter()
            passages = search(text, config)
            latencies.append((time.perf_counter() - started) * 1000)
            if name == "hybrid":
                found = {document_abstract[p.document_id] for p in passages}
                hits += bool(found & relevant)
        out[name] = latencies
    out["hit10"] = hits / len(queries)
    present = set(document_abstract.values())
    out["reachable"] = sum(bool(r & present) for _, _, r in queries) / len(queries)
    # As a search embeds a query (a local model runs it on its one-thread
    # query session), but past the provider's cache, which the searches
    # above filled.
    encode = getattr(provider, "_encode_query", lambda text: provider.embed([text]))
    out["embed"] = [timed(lambda q=t: encode(q)) for _, t, _ in queries]

    # Recall: the app's HNSW walk against an exact scan of the same query.
    # The chunks chunk_search ranks: the access subquery and the resolved ids.
    chunks = searchable_chunks(user=user, within=searched_collections(user=user))
    log = StatementLog()
    with connection.execute_wrapper(log):
        vector_ranking(chunks, query=queries[0][1], depth=configs["hybrid"].depth)
    sets = [s for s in log.statements if s.sql.startswith("SET LOCAL")]
    logged = next(s for s in log.statements if s.kind == "vector")
    plan = explain(
        Statement("vector", logged.sql, (logged.params, sets), 0), analyze=False
    )
    out["vector_plan"] = "HNSW" if HNSW_INDEX in plan else "exact"
    recalls, recalls_100 = [], []
    sweep: dict[int, tuple[list[float], list[float]]] = {
        ef: ([], []) for ef in EF_SWEEP
    }
    sweep_plans: dict[int, str] = {}
    for index, (_, text, _) in enumerate(queries):
        approximate = [pk for pk, _ in vector_ranking(chunks, query=text, depth=10)]
        deeper = [pk for pk, _ in vector_ranking(chunks, query=text, depth=100)][:10]
        vector = provider.embed_query(text)
        distance = CosineDistance(
            Cast("embedding", VectorField(dimensions=DIMENSIONS)), vector
        )
        ranked = chunks.filter(
            collection__embedding_model=settings.EMBEDDING_MODEL,
            embedding_dimensions=DIMENSIONS,
        ).annotate(distance=distance)
        exact_qs = ranked.order_by("distance", "pk").values_list("pk", flat=True)[:10]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            if index == 0:
                sql, params = exact_qs.query.sql_with_params()
                cursor.execute("EXPLAIN " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                if "hnsw" in plan:
                    raise SystemExit(f"Exact search used the HNSW index:\n{plan}")
            exact = list(exact_qs)
        recalls.append(len(set(approximate) & set(exact)) / max(len(exact), 1))
        recalls_100.append(len(set(deeper) & set(exact)) / max(len(exact), 1))
        # The same walk as vector_ranking(depth=10) at other ef_search values.
        walk = ranked.order_by("distance").values_list("pk", flat=True)[:10]
        for ef, (ef_recalls, ef_ms) in sweep.items():
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef])
                cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                if index == 0:
                    sql, params = walk.query.sql_with_params()
                    cursor.execute("EXPLAIN " + sql, params)
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    sweep_plans[ef] = "" if HNSW_INDEX in plan else ", exact plan"
                started = time.perf_counter()
                found = list(walk.all())  # a fresh query each time, no cache
                ef_ms.append((time.perf_counter() - started) * 1000)
            ef_recalls.append(len(set(found) & set(exact)) / max(len(exact), 1))
    out["recall10"] = statistics.fmean(recalls)
    out["recall10_depth100"] = statistics.fmean(recalls_100)
    out["sweep"] = {
        ef: (
            statistics.fmean(r),
            percentile(ms, 50),
            percentile(ms, 95),
            sweep_plans[ef],
        )
        for ef, (r, ms) in sweep.items()
    }

    # Profiled hybrid pass: where a query's time goes, statement by statement.
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    slowest: dict[str, list[Statement]] = {"vector": [], "lexical": []}
    matched: list[int] = []
    for (_, text, _), embed_ms in zip(queries, out["embed"], strict=True):
        log = StatementLog()
        # Inside a transaction chunk_search runs the vector query on this
        # connection, after BM25, so every statement is logged here and the
        # phases add up; the timed passes above run it alongside BM25.
        with connection.execute_wrapper(log), transaction.atomic():
            total = timed(lambda t=text: search(t, configs["hybrid"]))
        sums = dict.fromkeys(PHASES, 0.0)
        for statement in log.statements:
            phase = statement.kind
            if phase not in (
                "vector",
                "lexical",
                "sentences",
                "term stats",
                "query terms",
            ):
                phase = "other SQL"
            sums[phase] += statement.seconds * 1000
        sums["embed"] = embed_ms
        sums["python"] = max(total - sum(sums.values()), 0.0)
        for phase in PHASES:
            phases[phase].append(sums[phase])
        lexical = [s for s in log.statements if s.kind == "lexical"]
        if lexical:
            tsquery = [p for p in lexical[-1].params if isinstance(p, str)][-1]
            matched.append(
                sql_value(
                    "SELECT count(*) FROM documents_chunk"
                    " WHERE search_vector @@ %s::tsquery",
                    [tsquery],
                )
            )
        for name in slowest:
            statements = [s for s in log.statements if s.kind == name]
            if name == "vector":  # with the SET LOCALs it runs under
                sets = [s for s in log.statements if s.sql.startswith("SET LOCAL")]
                statements = [
                    Statement(s.kind, s.sql, (s.params, sets), s.seconds)
                    for s in statements
                ]
            slowest[name].extend(statements)
    for name in slowest:
        slowest[name] = sorted(slowest[name], key=lambda s: -s.seconds)[:2]
    out["phases"] = phases
    out["matched"] = matched
    out["slowest"] = slowest
    return out


def explain(statement: Statement, *, analyze: bool = True) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a logged statement, run again as it ran."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        params = statement.params
        if statement.kind == "vector":
            params, sets = params
            for setting in sets:
                cursor.execute(setting.sql, setting.params)
        options = "(ANALYZE, BUFFERS) " if analyze else ""
        cursor.execute(f"EXPLAIN {options}" + statement.sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


# --- Report -------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with_name = Path("/proc/cpuinfo")
    if with_name.is_file():
        for line in with_name.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM"


def plot(results: list[SizeResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r.chunks for r in results]
    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    series = (("hybrid", "C0"), ("lexical", "C1"), ("vector", "C2"))
    for name, colour in series:
        values = [getattr(r, name) for r in results]
        axes.plot(
            sizes, [percentile(v, 50) for v in values], "o-", color=colour,
            label=f"{name} p50",
        )  # fmt: skip
        axes.plot(
            sizes, [percentile(v, 95) for v in values], "s--", color=colour,
            label=f"{name} p95",
        )  # fmt: skip
    axes.axhline(TARGET_P95_MS, color="grey", linewidth=0.8, linestyle=":")
    axes.annotate(
        f"target: hybrid p95 ≤ {TARGET_P95_MS:.0f} ms",
        (sizes[0], TARGET_P95_MS),
        textcoords="offset points",
        xytext=(2, 4),
        fontsize=8,
        color="grey",
    )
    axes.set_xscale("log")
    axes.set_xticks(sizes, [f"{s // 1000}k" for s in sizes])
    axes.minorticks_off()
    axes.set_xlabel("chunks in the collection")
    axes.set_ylabel("chunk_search latency (ms)")
    axes.set_ylim(bottom=0)
    axes.set_title("ragapp search latency against corpus size (SciFact test queries)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, ncols=3)
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT)
    plt.close(figure)


def report(
    results: list[SizeResult],
    *,
    command: str,
    started: dt.datetime,
    minutes: float,
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    server: dict[str, str],
    data: dict[str, Any],
    explains: dict[str, list[tuple[float, str]]],
) -> str:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q):.1f}"

    def load(avg: tuple[float, ...]) -> str:
        return " / ".join(f"{x:.2f}" for x in avg)

    sizes_rows = "\n".join(
        f"| {r.chunks:,} | {r.documents:,} | {r.load_s:.1f} | {r.lexicon_s:.1f} | "
        f"{r.gin_s:.1f} | {r.gin_mb:.0f} | {r.hnsw_s:.1f} | {r.hnsw_mb:.0f} | "
        f"{r.heap_mb:.0f} | {r.total_mb:.0f} | {r.sentences_mb:.0f} |"
        for r in results
    )
    latency_rows = "\n".join(
        f"| {r.chunks:,} | {ms(r.hybrid, 50)} | {ms(r.hybrid, 95)} | "
        f"{max(r.hybrid):.1f} | {ms(r.lexical, 50)} | {ms(r.lexical, 95)} | "
        f"{ms(r.vector, 50)} | {ms(r.vector, 95)} | {ms(r.embed, 50)} | "
        f"{r.recall10:.3f} | {r.recall10_depth100:.3f} | {r.vector_plan} | "
        f"{r.hit10:.3f} of {r.reachable:.3f} | "
        f"{load(r.loadavg)} |"
        for r in results
    )
    phase_rows = "\n".join(
        f"| {r.chunks:,} | "
        + " | ".join(
            f"{statistics.fmean(r.phases[p]):.1f} / {percentile(r.phases[p], 95):.1f}"
            for p in PHASES
        )
        + f" | {percentile(r.matched, 50):,.0f} / {percentile(r.matched, 95):,.0f}"
        + f" ({percentile(r.matched, 50) / r.chunks:.0%} / "
        + f"{percentile(r.matched, 95) / r.chunks:.0%}) |"
        for r in results
    )
    sweep_rows = "\n".join(
        f"| {r.chunks:,} | {r.recall10:.3f} | "
        + " | ".join(
            f"{recall:.3f} ({p50:.1f} / {p95:.1f} ms{plan})"
            for recall, p50, p95, plan in r.sweep.values()
        )
        + " |"
        for r in results
    )
    notices = sorted({n for r in results for n in r.notices})
    notice_text = (
        "\n\nPostgreSQL notices while building indexes:\n\n"
        + "\n".join(f"- `{n}`" for n in notices)
        if notices
        else ""
    )
    explain_text = ""
    for name, plans in explains.items():
        for seconds, text in plans:
            explain_text += (
                f"\n<details><summary>{name} statement, {seconds * 1000:.0f} ms "
                f"when profiled</summary>\n\n```\n{text}\n```\n\n</details>\n"
            )
    last = results[-1]
    verdict = (
        f"At {last.chunks:,} chunks: hybrid p95 {ms(last.hybrid, 95)} ms "
        f"(target ≤ {TARGET_P95_MS:.0f} ms: "
        f"{'met' if percentile(last.hybrid, 95) <= TARGET_P95_MS else 'missed'}), "
        f"HNSW recall@10 {last.recall10:.3f} (target ≥ {TARGET_RECALL}: "
        f"{'met' if last.recall10 >= TARGET_RECALL else 'missed'})."
    )
    settings_text = ", ".join(f"{k} {v}" for k, v in server.items())
    embed_note = (
        "read from the cache"
        if data["cached"]
        else f"embedded in {data['embed_s']:.0f} s this run"
    )
    return f"""# Search at scale: latency and HNSW recall up to {last.chunks:,} chunks

Command: `{command}`, {started:%Y-%m-%d %H:%M} UTC, {machine()}, Python
{platform.python_version()}, {server.get("server_version", "?")} with pgvector
{server.get("pgvector", "?")} (embedded, in a temporary data dir). The whole run took
{minutes:.1f} min. Code: {data["code"]}.

Load average (1/5/15 min) {load(loads[0])} before, {load(loads[1])}
after; per size below, taken as its queries started (another benchmark may have
shared the machine).

{verdict}

## How the data was made

- SciFact's {data["abstracts"]:,} abstracts (`shared/eval/scifact/corpus.jsonl`,
  read in place) split into sentences at `. ! ?` before a capital, digit or
  bracket: {data["sentences"]:,} distinct sentences.
- Each chunk is 2-5 sentences (uniform) of one abstract, in their original order,
  with the abstract's title as heading; {CHUNKS_PER_DOCUMENT} chunks per document, a
  document being one draw of an abstract (title = the abstract's title). No chunk
  repeats (same abstract, same sentences). Seed {data["seed"]}; every size is a
  prefix of the largest. Mean chunk length {data["mean_words"]:.0f} words.
- **Vectors are synthetic**: embedding {last.chunks:,} chunks with MiniLM would take
  over an hour, so each distinct sentence was embedded once with the default
  provider (`{data["model"]}`, {data["sentences"]:,} sentences, {embed_note}) and a
  chunk's vector is the L2-normalised mean of its sentences' vectors. Queries are
  embedded for real, by `chunk_search` itself. Chunks of one abstract share
  sentences, so the vector space is clustered more tightly than real chunks would be,
  which makes the HNSW walk harder rather than easier.
- Documents are inserted with `bulk_create` (status ready, `indexed_version=1`),
  chunks by binary `COPY` (PostgreSQL computes `search_vector`, `search_length` and
  `embedding_dimensions`), and each chunk's sentences with their vectors (the
  cached ones above) into `documents_chunksentence`, into one collection readable by one group; the searching
  user is a plain member of it (no admin rights), so every query carries the
  reader-group access subquery, as in the app. `lexicon_rebuild` recounts BM25's
  statistics after each load.
- Before each load the GIN (`{GIN_INDEX}`) and HNSW (`{HNSW_INDEX}`, m=16,
  ef_construction=64) indexes are dropped; afterwards they are rebuilt with the
  model's own definitions (timed below, `maintenance_work_mem` {BUILD_MEMORY} for
  the builds), then `VACUUM ANALYZE`.
- Server settings as the app runs them: {settings_text}.

## Build and size

Seconds and MB; "table" is heap + TOAST of `documents_chunk`, "total" adds all its
indexes; "sentences" is `documents_chunksentence` with its index (the kept
sentence vectors, half precision, COPYed with the chunks).

| chunks | documents | COPY s | lexicon_rebuild s | GIN s | GIN MB | HNSW s | HNSW MB | table MB | total MB | sentences MB |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{sizes_rows}{notice_text}

## Latency and recall

{data["queries"]} SciFact test queries (`qrels/test.tsv`), {data["warmup"]} warm-up
pass(es) of hybrid search first, then one timed pass per configuration, one query
at a time, all through `chunk_search(user=..., query=...)` (limit 10, no rerank):
hybrid = default `SearchConfig()`, lexical = `use_vector=False`, vector =
`use_lexical=False`. Each time includes embedding the query (the "embed" column
is `embed_query` alone). recall@10 = share of the exact top 10 (cosine, index
scans off) that `vector_ranking(depth=10)` returns (ef_search {data["ef_search"]}, iterative scan);
"@100" = the first 10 of `vector_ranking(depth=100)`, the depth the default config
hands to fusion. "vector plan" = whether the app's vector query (EXPLAIN of
the statement `vector_ranking` sends) walks the HNSW index or scans exactly.
hit@10 (sanity only) = share of queries where a hybrid top-10
chunk comes from an abstract judged relevant, "of" the share whose relevant
abstract was drawn into the corpus at that size at all.

| chunks | hybrid p50 | hybrid p95 | hybrid max | lexical p50 | lexical p95 | vector p50 | vector p95 | embed p50 | recall@10 | recall@10 @100 | vector plan | hit@10 | load avg |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{latency_rows}

![latency against size](scale-latency.png)

## Where a hybrid query's time goes

A second hybrid pass with every SQL statement timed (Django execute wrapper),
inside a transaction so that the vector query runs on the same connection after
BM25 and is logged too (the timed passes above run it on a second connection
alongside BM25); mean / p95 ms per query. vector = the HNSW query, lexical = the BM25 ranking
query (one or two per search, MaxScore), sentences = the best kept sentence
of each candidate (ChunkSentence), term stats = the lexicon reads,
query terms = `to_tsvector` of the query, other SQL = access check and the
collections searched, SET LOCAL, savepoints and the final fetch of the
passages; python = the rest (fusion, ORM, waiting for the query's embedding).
embed = the query embedded alone (uncached): `chunk_search` embeds in a thread while the
BM25 statements run, so the phases can add up to more than the query took.
matched = chunks matching the tsquery of the BM25 pass that decides the
ranking (MaxScore's "essential" terms that pass the frequency cap), p50 / p95,
and as a share of the collection: every one of them is scored.

| chunks | {" | ".join(PHASES)} | matched |
| --- | {" | ".join("---" for _ in PHASES)} | --- |
{phase_rows}

## HNSW recall@10 against ef_search

The exact top 10 as above; the index walk of `vector_ranking(depth=10)` (LIMIT
10, relaxed iterative scan) with `hnsw.ef_search` set to each value; in brackets
the statement's p50 / p95 time. The app sets `max(depth, {data["ef_search"]})`. pgvector's cost
estimate grows with ef_search, so on a small collection the planner may choose an
exact scan instead ("exact plan").

| chunks | app (ef {data["ef_search"]}) | {" | ".join(f"ef {ef}" for ef in EF_SWEEP)} |
| --- | --- | {" | ".join("---" for _ in EF_SWEEP)} |
{sweep_rows}

## Slowest statements at {last.chunks:,} chunks, EXPLAIN (ANALYZE, BUFFERS)

Re-run as logged in the profiled pass (the vector one under the same
`SET LOCAL hnsw.*`).
{explain_text}"""


# --- Main ---------------------------------------------------------------------


def code_fingerprint() -> str:
    """Which retrieval code ran: git HEAD, dirty or not, and a hash of its files."""
    import subprocess

    from ragapp.retrieval.search import SearchConfig

    files = sorted(
        [
            *(REPO / "ragapp" / "retrieval").glob("*.py"),
            REPO / "ragapp/documents/models.py",
        ]
    )
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "ragapp"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    state = " + uncommitted changes" if dirty else ""
    return (
        f"git {head or '?'}{state}; ragapp/retrieval/*.py + documents/models.py "
        f"sha256 {digest}; default `{SearchConfig()!r}`"
    )


def server_settings() -> dict[str, str]:
    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "max_parallel_workers_per_gather",
        "effective_cache_size",
        "jit",
    )
    found = {name: str(sql_value(f"SHOW {name}")) for name in names}
    found["server_version"] = "PostgreSQL " + found["server_version"].split()[0]
    found["pgvector"] = str(
        sql_value("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    )
    return found


def run_sizes(
    args: argparse.Namespace, sizes: list[int], scifact: Path
) -> tuple[list[SizeResult], dict[str, list[tuple[float, str]]], dict, dict]:
    """Load and measure each size in turn; return results, plans, settings, data."""
    from django.conf import settings
    from django.db import connection

    from ragapp.retrieval import search
    from ragapp.retrieval.lexicon import lexicon_rebuild

    results: list[SizeResult] = []
    explains: dict[str, list[tuple[float, str]]] = {}
    server = server_settings()
    code = code_fingerprint()
    corpus = load_corpus(scifact / "corpus.jsonl")
    vectors, embed_s, cached = sentence_vectors(corpus)
    print(
        f"{len(corpus.ids)} abstracts, {len(corpus.texts)} sentences "
        f"({'cached vectors' if cached else f'embedded in {embed_s:.0f} s'})"
    )
    plan = plan_chunks(corpus, sizes[-1], args.seed)
    queries = load_queries(scifact, args.queries)
    setup = create_scope()
    notices: list[str] = []
    connection.ensure_connection()
    connection.connection.add_notice_handler(
        lambda diag: notices.append(diag.message_primary or "")
    )
    document_abstract: dict[int, str] = {}
    loaded = 0
    for size in sizes:
        print(f"== {size} chunks")
        notices.clear()
        drop_index(HNSW_INDEX)
        drop_index(GIN_INDEX)
        started_load = time.perf_counter()
        load_chunks(setup, corpus, plan, vectors, loaded, size)
        load_s = time.perf_counter() - started_load
        loaded = size
        for index, pk in setup.document_pks.items():
            document_abstract[pk] = corpus.ids[plan.document_abstract[index]]
        started_lexicon = time.perf_counter()
        lexicon_rebuild(collection_id=setup.collection_id)
        lexicon_s = time.perf_counter() - started_lexicon
        sql_run(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        gin_s = create_index(GIN_INDEX)
        hnsw_s = create_index(HNSW_INDEX)
        sql_run("RESET maintenance_work_mem")
        # The whole database: the access rule's small tables (collections,
        # reader groups) need statistics too, or the planner misjudges the
        # vector query (see the report).
        vacuum_s = sql_run("VACUUM ANALYZE")
        print(
            f"  COPY {load_s:.1f} s, lexicon {lexicon_s:.1f} s, GIN {gin_s:.1f} s,"
            f" HNSW {hnsw_s:.1f} s, vacuum analyze {vacuum_s:.1f} s"
        )
        loadavg = os.getloadavg()
        measured = measure(setup, size, queries, document_abstract, max(args.warmup, 0))
        result = SizeResult(
            chunks=size,
            documents=len(setup.document_pks),
            load_s=load_s,
            lexicon_s=lexicon_s,
            gin_s=gin_s,
            gin_mb=megabytes(GIN_INDEX),
            hnsw_s=hnsw_s,
            hnsw_mb=megabytes(HNSW_INDEX),
            heap_mb=megabytes("documents_chunk", "pg_table_size"),
            total_mb=megabytes("documents_chunk", "pg_total_relation_size"),
            sentences_mb=megabytes("documents_chunksentence", "pg_total_relation_size"),
            vacuum_s=vacuum_s,
            loadavg=loadavg,
            notices=list(notices),
            **measured,
        )
        results.append(result)
        print(
            f"  hybrid p50 {percentile(result.hybrid, 50):.1f} ms, "
            f"p95 {percentile(result.hybrid, 95):.1f} ms; lexical p95 "
            f"{percentile(result.lexical, 95):.1f}; vector p95 "
            f"{percentile(result.vector, 95):.1f}; recall@10 "
            f"{result.recall10:.3f} (@100 {result.recall10_depth100:.3f}); "
            f"load {loadavg}"
        )
    for name, statements in results[-1].slowest.items():
        explains[name] = [(s.seconds, explain(s)) for s in statements]
    data = {
        "abstracts": len(corpus.ids),
        "sentences": len(corpus.texts),
        "seed": args.seed,
        "model": settings.EMBEDDING_MODEL,
        "cached": cached,
        "embed_s": embed_s,
        "queries": len(queries),
        "warmup": args.warmup,
        "mean_words": mean_words(corpus, plan),
        "ef_search": search.HNSW_EF_SEARCH,
        "code": code,
    }
    return results, explains, server, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--max", type=int, help="largest size to run (caps --sizes)")
    parser.add_argument("--queries", type=int, help="use only the first N queries")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up passes")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--keep", action="store_true", help="leave the database running; print where"
    )
    args = parser.parse_args()
    sizes = sorted({s for s in args.sizes if not args.max or s <= args.max})
    if args.max and (not sizes or sizes[-1] < args.max):
        sizes.append(args.max)
    run_started = time.monotonic()
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    print(f"sizes {sizes}; load average before {load_before}")

    scifact = eval_path("scifact", "corpus.jsonl")
    workdir = Path(tempfile.mkdtemp(prefix="ragapp-bench-scale-"))
    with private_stack(workdir, discard=not args.keep):
        results, explains, server, data = run_sizes(args, sizes, scifact)
    if args.keep:
        print(f"kept: RAGAPP_DATA_DIR={workdir}")

    load_after = os.getloadavg()
    minutes = (time.monotonic() - run_started) / 60
    plot(results)
    text = report(
        results,
        command=command_line(),
        started=started,
        minutes=minutes,
        loads=(load_before, load_after),
        server=server,
        data=data,
        explains=explains,
    )
    print(f"load average after {load_after}; run took {minutes:.1f} min")
    last = results[-1]
    report_write(
        "scale.md",
        text,
        {
            "chunks": last.chunks,
            "p95_ms": f"{percentile(last.hybrid, 95):.0f}",
            "recall10": f"{last.recall10:.2f}",
        },
    )


if __name__ == "__main__":
    main()
