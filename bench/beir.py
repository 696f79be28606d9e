"""Retrieval quality on BEIR SciFact, through the app's own ingestion and search.

Loads the 5,183 SciFact abstracts of ../shared/eval/scifact (read in place;
RAGAPP_EVAL_DIR overrides) into collections through the real pipeline: each
abstract becomes a Markdown upload (title as its heading) that is stored,
sniffed, parsed in the sandboxed child, chunked, embedded and swapped in by
the same functions the workers run. One collection per local embedder.

Tunes on the 809 training queries only (qrels/train.tsv): BM25's k1 and b,
and the weight of BM25 in the fused ranking. Then runs the 300 test queries
once per configuration through `chunk_search`, the function the app calls,
and scores the runs with ir-measures (trec_eval): nDCG@10 and recall@100 at
document level (a document ranks where its best passage does), plus latency
per query.

The loaded collections are kept in var/bench/beir (its own embedded
PostgreSQL) and reused while the corpus and the ingestion code are
unchanged; --reload forces a fresh load.

    .venv/bin/pip install -e '.[bench]'      # ir-measures, matplotlib
    .venv/bin/python bench/beir.py [--tune] [--reload]

Writes docs/bench/beir.md; the last stdout line is key=value pairs for the
default configuration (nDCG x 100).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _common import REPO, command_line, eval_path, private_stack, report_write

WORKDIR = REPO / "var" / "bench" / "beir"
DEFAULT_MODEL = "local/all-MiniLM-L6-v2"
MODELS = {
    DEFAULT_MODEL: "scifact-minilm",
    "local/wordllama-l2-supercat": "scifact-wordllama",
}
# Code whose change alters what gets indexed: a change means a fresh load.
# Migrations are not in it: `migrate` brings the loaded data along, as it
# does for any installation (generated columns such as the lexical field
# are recomputed by the migration that changes them).
INDEXING_CODE = (
    "ragapp/documents/chunking.py",
    "ragapp/documents/ingestion.py",
    "ragapp/documents/parsing/markdown.py",
    "ragapp/providers/local",
)
RUN_DEPTH = 100  # documents per query in the evaluated run (recall@100)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def fingerprint(corpus: Path, model: str) -> str:
    digest = hashlib.sha256(corpus.read_bytes())
    digest.update(model.encode())
    for name in INDEXING_CODE:
        path = REPO / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


# --- loading -------------------------------------------------------------------


def staged_files(corpus: list[dict[str, Any]]) -> list[Path]:
    """Write each abstract as `<id>.md` (title as heading) once; return the paths."""
    staging = WORKDIR / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in corpus:
        path = staging / f"{doc['_id']}.md"
        text = f"# {doc['title'].strip()}\n\n{doc['text'].strip()}\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def load_collection(
    model: str, slug: str, paths: list[Path], mark: str, *, force: bool
) -> Any:
    """Return the collection for `model`, loading it through the pipeline if stale.

    A load that was interrupted resumes: files already uploaded are known by
    their hash, and only documents not yet ready are processed.
    """
    from django.db import connection

    from ragapp.documents import ingestion, services
    from ragapp.documents.models import Collection, Document
    from ragapp.providers.catalog import embedding_dimensions

    Status = Document.Status  # noqa: N806
    existing = Collection.objects.filter(slug=slug).first()
    if existing is not None and existing.description == mark and not force:
        ready = existing.documents.filter(status=Status.READY).count()
        print(f"{slug}: reusing {ready} ready documents ({mark})", flush=True)
        return existing
    if existing is not None and (force or existing.description != f"loading {mark}"):
        services.collection_delete(collection=existing)
        existing = None
    collection = existing or Collection.objects.create(
        name=f"SciFact ({model})",
        slug=slug,
        embedding_model=model,
        embedding_dimensions=embedding_dimensions(model),
        description=f"loading {mark}",
    )
    started = time.perf_counter()
    for path in paths:
        services.document_upload_path(collection=collection, path=path)
    # This process is the only worker: claims of an interrupted run are void.
    documents = collection.documents.exclude(status=Status.READY)
    documents.filter(status=Status.PARSING).update(status=Status.QUEUED)
    documents.update(claim_token=None, lease_expires_at=None, attempts=0)
    to_parse = list(documents.filter(status=Status.QUEUED).values_list("pk", flat=True))
    to_embed = list(
        documents.filter(status=Status.EMBEDDING).values_list("pk", flat=True)
    )
    uploaded = time.perf_counter()
    print(
        f"{slug}: {len(paths)} files uploaded or known in {uploaded - started:.0f} s;"
        f" {len(to_parse)} to parse, {len(to_embed)} to embed",
        flush=True,
    )

    def parse(document_id: int) -> int:
        try:
            ingestion.document_parse(document_id=document_id)
            return document_id
        finally:
            connection.close()

    for document_id in to_embed:
        ingestion.document_embed(document_id=document_id)
    # Two parse children at a time; this thread embeds what they hand over.
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in concurrent.futures.as_completed(
            [pool.submit(parse, pk) for pk in to_parse]
        ):
            ingestion.document_embed(document_id=future.result())
            done += 1
            if done % 250 == 0:
                rate = done / (time.perf_counter() - uploaded)
                print(
                    f"{slug}: {done}/{len(to_parse)} indexed, {rate:.1f} docs/s",
                    flush=True,
                )
    statuses = _status_counts(collection)
    elapsed = time.perf_counter() - started
    print(f"{slug}: loaded in {elapsed:.0f} s: {statuses}", flush=True)
    collection.description = mark
    collection.save(update_fields=["description"])
    return collection


def _status_counts(collection: Any) -> dict[str, int]:
    from django.db.models import Count

    return dict(
        collection.documents.values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )


def reader(collections: Iterable[Any]) -> Any:
    """A staff user who reads the bench collections through a group, like any reader."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()  # noqa: N806
    group, _ = Group.objects.get_or_create(name="SciFact readers")
    user, _ = User.objects.get_or_create(username="scifact-bench")
    user.groups.add(group)
    for collection in collections:
        collection.reader_groups.add(group)
    return user


# --- evaluation ----------------------------------------------------------------


def beir_ids(collection: Any) -> dict[int, str]:
    """chunk pk -> SciFact document id, for the collection's searchable chunks."""
    from ragapp.documents.models import Chunk

    rows = Chunk.objects.filter(collection=collection).values_list(
        "pk", "document__original_filename"
    )
    return {pk: name.removesuffix(".md") for pk, name in rows}


def documents_ranked(chunk_ranking: Iterable[int], ids: dict[int, str]) -> list[str]:
    """Documents in the order of their best passage."""
    seen: dict[str, None] = {}
    for pk in chunk_ranking:
        seen.setdefault(ids[pk], None)
    return list(seen)


def to_run(ranked: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    return {
        qid: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs[:RUN_DEPTH])}
        for qid, docs in ranked.items()
    }


def measure(
    qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]]
) -> dict[str, float]:
    import ir_measures
    from ir_measures import R, nDCG

    run = to_run(ranked)
    # Judge only the queries that were run (trec_eval would count the others as 0).
    judged = {qid: qrels[qid] for qid in run}
    scores = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], judged, run)
    return {"ndcg10": 100 * scores[nDCG @ 10], "recall100": 100 * scores[R @ 100]}


@dataclass
class Row:
    name: str
    ndcg10: float
    recall100: float
    p50_ms: float
    p95_ms: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_search(
    name: str,
    search: Callable[[str], list[int]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    ids: dict[int, str],
) -> Row:
    """Run every query through `search` (chunk pks, best first); score and time it."""
    for text in list(queries.values())[:5]:  # warm caches and the model
        search(text)
    ranked, latencies = {}, []
    for qid, text in queries.items():
        started = time.perf_counter()
        chunks = search(text)
        latencies.append(1000 * (time.perf_counter() - started))
        ranked[qid] = documents_ranked(chunks, ids)
    figures = measure(qrels, ranked)
    row = Row(
        name,
        figures["ndcg10"],
        figures["recall100"],
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
    )
    print(
        f"  {name}: nDCG@10 {row.ndcg10:.1f}  R@100 {row.recall100:.1f}"
        f"  p50 {row.p50_ms:.0f} ms  p95 {row.p95_ms:.0f} ms",
        flush=True,
    )
    return row


def app_search(user: Any, collection: Any, config: Any) -> Callable[[str], list[int]]:
    from ragapp.retrieval.search import chunk_search

    def search(text: str) -> list[int]:
        passages = chunk_search(
            user=user,
            query=text,
            collection_ids=[collection.pk],
            limit=2 * RUN_DEPTH,
            config=config,
        )
        return [p.chunk_id for p in passages]

    return search


# --- tuning (training queries only) -----------------------------------------------


def tune(
    user: Any,
    collection: Any,
    queries: dict[str, str],
    qrels: dict,
    ids: dict,
    *,
    rerank_sample: int,
    grid: bool = True,
) -> Any:
    """Grid-search BM25's k1, b and the fusion weight on the training queries.

    Without `grid`, keeps the code's defaults for those and tunes only the
    sentence re-score's weight.
    """
    from ragapp.retrieval.fusion import weighted_z
    from ragapp.retrieval.lexical import Bm25, bm25_ranking
    from ragapp.retrieval.search import (
        DEFAULT_CONFIG,
        query_vectors,
        search_scope,
        searchable_chunks,
        sentence_ranking,
        vector_ranking,
    )

    depth = DEFAULT_CONFIG.depth
    chunks = searchable_chunks(user=user, collection_ids=[collection.pk])
    scope = search_scope(user=user, collection_ids=[collection.pk])
    print(f"tuning on {len(queries)} training queries", flush=True)
    grid_k1 = (0.9, 1.2, 1.6) if grid else (DEFAULT_CONFIG.bm25.k1,)
    grid_b = (0.3, 0.5, 0.75) if grid else (DEFAULT_CONFIG.bm25.b,)
    if not grid:
        queries = dict(list(queries.items())[:rerank_sample])
    best_bm25, best_score, lexical = None, -1.0, {}

    def try_bm25(params: Bm25) -> None:
        nonlocal best_bm25, best_score, lexical
        rankings = {
            qid: bm25_ranking(
                chunks, scope=scope, query=text, depth=depth, params=params
            )
            for qid, text in queries.items()
        }
        ranked = {
            qid: documents_ranked((pk for pk, _ in r), ids)
            for qid, r in rankings.items()
        }
        score = measure(qrels, ranked)["ndcg10"]
        print(f"  bm25 k1={params.k1} b={params.b}: nDCG@10 {score:.2f}", flush=True)
        if score > best_score:
            best_bm25, best_score, lexical = params, score, rankings

    default_bm25 = DEFAULT_CONFIG.bm25
    for k1 in grid_k1:
        for b in grid_b:
            try_bm25(replace(default_bm25, k1=k1, b=b))
    vectors, sentences = {}, {}
    for qid, text in queries.items():
        embedded = query_vectors(text, [collection.embedding_model])
        vectors[qid] = vector_ranking(chunks, query=text, depth=depth, vectors=embedded)
        candidates = {pk for pk, _ in lexical[qid]} | {pk for pk, _ in vectors[qid]}
        sentences[qid] = sentence_ranking(
            chunks, candidates=candidates, vectors=embedded
        )

    def fuse(qid: str, weight: float, sentence_weight: float) -> dict[int, float]:
        """As chunk_search fuses (search.py): BM25 and passage vectors share
        1 - sentence_weight."""
        passages = 1 - sentence_weight
        return weighted_z(
            {
                "lexical": lexical[qid],
                "vector": vectors[qid],
                "sentences": sentences[qid],
            },
            weights={
                "lexical": passages * weight,
                "vector": passages * (1 - weight),
                "sentences": sentence_weight,
            },
        )

    default_weights = (DEFAULT_CONFIG.lexical_weight, DEFAULT_CONFIG.sentence_weight)
    grid_weights = (
        [(lw / 20, sw / 20) for lw in range(21) for sw in range(17)]
        if grid
        else [default_weights]
    )
    best_weight, best_sentence_weight, best_fused = 0.0, 0.0, -1.0
    for weight, sentence_weight in grid_weights:
        ranked = {}
        for qid in queries:
            fused = fuse(qid, weight, sentence_weight)
            order = sorted(fused, key=lambda pk: (-fused[pk], pk))
            ranked[qid] = documents_ranked(order, ids)
        score = measure(qrels, ranked)["ndcg10"]
        if sentence_weight in (0.0, 0.5) or not grid:
            print(
                f"  weighted lexical={weight:.2f} sentences={sentence_weight:.2f}:"
                f" nDCG@10 {score:.2f}",
                flush=True,
            )
        if score > best_fused:
            best_weight, best_sentence_weight, best_fused = (
                weight,
                sentence_weight,
                score,
            )
    tuned = replace(
        DEFAULT_CONFIG,
        bm25=best_bm25,
        lexical_weight=best_weight,
        sentence_weight=best_sentence_weight,
    )
    # Sentence embeddings cost about a second a query here: a fixed sample
    # (none: the re-score keeps its default weight).
    sample = dict(list(queries.items())[:rerank_sample])
    if sample:
        fused = {qid: fuse(qid, best_weight, best_sentence_weight) for qid in sample}
        rerank_weight = tune_rerank(sample, qrels, ids, fused, tuned.rerank_depth)
        tuned = replace(tuned, rerank_weight=rerank_weight)
    print(
        f"tuned: k1={best_bm25.k1} b={best_bm25.b} lexical_weight={best_weight}"
        f" sentence_weight={best_sentence_weight}"
        f" (train nDCG@10 {best_fused:.2f}); code default: {DEFAULT_CONFIG}",
        flush=True,
    )
    return tuned


def tune_rerank(
    queries: dict[str, str],
    qrels: dict,
    ids: dict,
    fused_by_query: dict[str, dict[int, float]],
    depth: int,
) -> float:
    """Pick the query-time sentence re-score's weight on train (embedded once per query)."""
    from ragapp.documents.models import Chunk
    from ragapp.retrieval.fusion import weighted_z
    from ragapp.retrieval.rerank import sentence_scores

    fused_top, sentences = {}, {}
    for qid, text in queries.items():
        fused = fused_by_query[qid]
        order = sorted(fused, key=lambda pk: (-fused[pk], pk))
        fused_top[qid] = (order, fused)
        chunks = list(Chunk.objects.filter(pk__in=order[:depth]))
        sentences[qid] = sentence_scores(text, chunks, model=DEFAULT_MODEL)
    best_weight, best_score = 0.0, -1.0
    for step in range(11):
        weight = step / 10
        ranked = {}
        for qid, (order, fused) in fused_top.items():
            top = order[:depth]
            rescored = weighted_z(
                {
                    "fused": [(pk, fused[pk]) for pk in top],
                    "sentences": list(sentences[qid].items()),
                },
                weights={"fused": 1 - weight, "sentences": weight},
            )
            reordered = sorted(top, key=lambda pk: (-rescored[pk], pk)) + order[depth:]
            ranked[qid] = documents_ranked(reordered, ids)
        score = measure(qrels, ranked)["ndcg10"]
        print(
            f"  sentence re-score weight={weight:.1f}: nDCG@10 {score:.2f}", flush=True
        )
        if score > best_score:
            best_weight, best_score = weight, score
    return best_weight


# --- report --------------------------------------------------------------------


def report(rows: list[Row], command: str, notes: list[str]) -> str:
    lines = [
        "# Retrieval on BEIR SciFact",
        "",
        f"Command: `{command}`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "300 test queries (`qrels/test.tsv`), scored with ir-measures (trec_eval) at",
        "document level (a document ranks where its best passage does). Latency is",
        "per query through `chunk_search`, query embedding included.",
        "",
        "| configuration | nDCG@10 (x100) | recall@100 (x100) | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r.name} | {r.ndcg10:.1f} | {r.recall100:.1f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} |"
            for r in rows
        ),
        "",
        *notes,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reload", action="store_true", help="load the corpus afresh")
    parser.add_argument(
        "--tune", action="store_true", help="grid-search on train first"
    )
    parser.add_argument(
        "--queries", type=int, default=0, help="first N test queries only"
    )
    parser.add_argument(
        "--tune-rerank-only",
        action="store_true",
        help="with --tune: keep BM25 and fusion defaults, tune the re-score only",
    )
    parser.add_argument(
        "--rerank-sample",
        type=int,
        default=200,
        help="training queries used to tune the re-score (it is slow; 0: skip)",
    )
    parser.add_argument(
        "--skip-rerank",
        action="store_true",
        help="leave out the sentence re-score row (seconds per query)",
    )
    parser.add_argument(
        "--model-rerank",
        action="store_true",
        help=(
            "add the chat-model rerank row (RAGAPP_SEARCH_RERANK=model); needs "
            "OPENAI_API_KEY or OPENAI_BASE_URL, and RAGAPP_SEARCH_RERANK_MODEL "
            "or RAGAPP_CHAT_MODEL naming the grader"
        ),
    )
    parser.add_argument(
        "--skip-other-models",
        action="store_true",
        help="only the default embedder's collection",
    )
    args = parser.parse_args()
    if args.model_rerank and not (
        os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
    ):
        parser.error("--model-rerank needs OPENAI_API_KEY or OPENAI_BASE_URL")
    try:
        import ir_measures  # noqa: F401
    except ImportError:
        raise SystemExit(
            "Needs the bench extras: .venv/bin/pip install -e '.[bench]'"
        ) from None

    scifact = eval_path("scifact", "corpus.jsonl")
    # This process runs the pipeline stages itself: no broker, no worker. The
    # loaded collections stay in WORKDIR for the next run.
    with private_stack(WORKDIR, broker_url="memory://", discard=False):
        evaluate_all(args, scifact)


def evaluate_all(args: argparse.Namespace, scifact: Path) -> None:
    """Load (or reuse) the collections, tune if asked, run the test queries, report."""
    from ragapp.celery import app as celery_app
    from ragapp.retrieval.search import DEFAULT_CONFIG

    celery_app.conf.result_backend = "cache+memory://"
    corpus = read_jsonl(scifact / "corpus.jsonl")
    paths = staged_files(corpus)

    def collection_for(model: str) -> Any:
        return load_collection(
            model,
            MODELS[model],
            paths,
            fingerprint(scifact / "corpus.jsonl", model),
            force=args.reload,
        )

    main_collection = collection_for(DEFAULT_MODEL)
    user = reader([main_collection])
    queries = {q["_id"]: q["text"] for q in read_jsonl(scifact / "queries.jsonl")}
    test_qrels = read_qrels(scifact / "qrels" / "test.tsv")
    train_qrels = read_qrels(scifact / "qrels" / "train.tsv")
    test = {qid: queries[qid] for qid in test_qrels}
    if args.queries:
        test = dict(list(test.items())[: args.queries])
    ids = beir_ids(main_collection)
    notes = []
    config = DEFAULT_CONFIG
    if args.tune:
        train = {qid: queries[qid] for qid in train_qrels}
        config = tune(
            user,
            main_collection,
            train,
            train_qrels,
            ids,
            rerank_sample=args.rerank_sample,
            grid=not args.tune_rerank_only,
        )
        notes.append(
            f"Tuned on train: BM25 k1={config.bm25.k1}, b={config.bm25.b}; "
            f"BM25 weight {config.lexical_weight}; kept-sentence weight "
            f"{config.sentence_weight}; query-time sentence re-score weight "
            f"{config.rerank_weight}. Code default: k1={DEFAULT_CONFIG.bm25.k1}, "
            f"b={DEFAULT_CONFIG.bm25.b}, weight {DEFAULT_CONFIG.lexical_weight}, "
            f"kept-sentence weight {DEFAULT_CONFIG.sentence_weight}, "
            f"re-score weight {DEFAULT_CONFIG.rerank_weight}."
        )

    print(f"test: {len(test)} queries", flush=True)

    def evaluate(name: str, collection: Any, variant: Any) -> Row:
        search = app_search(user, collection, variant)
        return run_search(name, search, test, test_qrels, beir_ids(collection))

    lexical = evaluate(
        "BM25 in PostgreSQL (lexical only)",
        main_collection,
        replace(config, use_vector=False),
    )
    rows = [lexical]
    rows.append(
        evaluate(
            f"{DEFAULT_MODEL} (vector only)",
            main_collection,
            replace(config, use_lexical=False, sentence_weight=0.0),
        )
    )
    rows.append(
        evaluate(
            "best kept sentence of the vector top 100",
            main_collection,
            replace(config, use_lexical=False, sentence_weight=1.0),
        )
    )
    rows.append(
        evaluate(
            "hybrid, RRF k=60 (BM25, passages, sentences)",
            main_collection,
            replace(config, fusion="rrf"),
        )
    )
    rows.append(
        evaluate(
            "hybrid, weighted z-score, no sentences (BM25 weight 0.55)",
            main_collection,
            replace(config, sentence_weight=0.0, lexical_weight=0.55),
        )
    )
    default = evaluate("hybrid, weighted z-score (default)", main_collection, config)
    rows.append(default)
    if not args.skip_rerank:
        rows.append(
            evaluate(
                f"hybrid + sentence re-score of the top {config.rerank_depth}",
                main_collection,
                replace(config, rerank="sentences"),
            )
        )
    if args.model_rerank:
        from django.conf import settings

        grader = settings.SEARCH_RERANK_MODEL or settings.CHAT_MODEL
        rows.append(
            evaluate(
                f"hybrid + {grader} grading the top {settings.SEARCH_RERANK_DEPTH}",
                main_collection,
                replace(
                    config,
                    rerank="model",
                    rerank_model=grader,
                    rerank_depth=settings.SEARCH_RERANK_DEPTH,
                ),
            )
        )
    for model in MODELS:
        if model == DEFAULT_MODEL or args.skip_other_models:
            continue
        collection = collection_for(model)
        reader([collection])
        rows.append(
            evaluate(
                f"{model} (vector only)",
                collection,
                replace(config, use_lexical=False),
            )
        )

    report_write(
        "beir.md",
        report(rows, command_line(), notes),
        {
            "ndcg10": f"{default.ndcg10:.1f}",
            "recall100": f"{default.recall100:.1f}",
            "lexical_ndcg10": f"{lexical.ndcg10:.1f}",
            "p95_ms": f"{default.p95_ms:.0f}",
        },
    )


if __name__ == "__main__":
    main()
