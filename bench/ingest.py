"""Ingestion throughput: the five eval PDFs through the real worker, per embedder.

For each local embedder, uploads the five PDFs of ../shared/eval/pdfs (read in
place, never copied) into a fresh collection, lets a real `celery worker`
(the `make run` shape: prefork, RAGAPP_WORKER_CONCURRENCY processes) parse,
chunk, embed and store them, and measures end to end: pages/s, chunks/s and
the peak RSS of the worker's whole process tree (parse children included).
Then, in the same run, it times the embedder alone on exactly the chunk texts
the pipeline produced, and reports the pipeline's efficiency: end-to-end
pages/s divided by embedder-only pages/s (1.0 = parsing, chunking, queueing and
writes fully hidden behind embedding).

Everything runs in a temporary data dir with its own embedded PostgreSQL and
bundled Redis, so nothing of a developer's data is touched.

    .venv/bin/python bench/ingest.py [--models local/all-MiniLM-L6-v2 ...]

Writes docs/bench/ingest.md (docs/bench/ingest-without-sentences.md with
--without-sentences: RAGAPP_INDEX_SENTENCES=false); the last stdout line is
key=value pairs for the default embedder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from _common import REPO, command_line, eval_path, private_stack, report_write

DEFAULT_MODEL = "local/all-MiniLM-L6-v2"
MODELS = (DEFAULT_MODEL, "local/wordllama-l2-supercat")


class RssSampler(threading.Thread):
    """Sample the summed RSS of a process tree until stopped; keep the peak.

    The report adds the peaks of the two workers' trees, an upper bound of
    their peak together.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._done.wait(0.1)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


@dataclass
class Result:
    model: str
    documents: int
    pages: int
    chunks: int
    sentences: int
    seconds: float
    embed_seconds: float
    peak_rss_mb: float
    failed: list[str]

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def embed_pages_per_s(self) -> float:
        return self.pages / self.embed_seconds

    @property
    def efficiency(self) -> float:
        return self.pages_per_s / self.embed_pages_per_s


def start_workers(env: dict[str, str], log_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start the parsing worker and the embedder as `make run` does; wait for both."""
    from django.conf import settings

    common = [
        sys.executable, "-m", "celery", "-A", "ragapp", "worker",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    commands = {
        "worker": [
            *common,
            "--concurrency", str(settings.WORKER_CONCURRENCY),
            "--queues", settings.CELERY_TASK_DEFAULT_QUEUE,
            "--hostname", "bench-worker@%h",
        ],
        "embedder": [
            *common,
            "--concurrency", "1",
            "--queues", settings.EMBED_QUEUE,
            "--hostname", "bench-embedder@%h",
        ],
    }  # fmt: skip
    processes = []
    for name, command in commands.items():
        log = log_dir / f"{name}.log"
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes.append(process)
        deadline = time.monotonic() + 120
        while b" ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start; see {log}")
            time.sleep(0.2)
    return processes


def run_model(model: str, pdfs: list[Path], worker_pids: list[int]) -> Result:
    """Ingest `pdfs` with `model` through the worker; time the embedder alone too."""
    from ragapp.documents import ingestion, services
    from ragapp.documents.models import Chunk, ChunkSentence, Document
    from ragapp.providers.catalog import embedding_dimensions
    from ragapp.providers.embeddings import get_embedding_provider

    collection = services.collection_create(
        name=f"bench {model}", slug=f"bench-{model.replace('/', '-').lower()}"
    )
    collection.embedding_model = model
    collection.embedding_dimensions = embedding_dimensions(model)
    collection.save()

    samplers = [RssSampler(pid) for pid in worker_pids]
    for sampler in samplers:
        sampler.start()
    started = time.monotonic()
    ids = [
        services.document_upload_path(collection=collection, path=path).document.pk
        for path in pdfs
    ]
    done = {Document.Status.READY, Document.Status.FAILED}
    while Document.objects.filter(pk__in=ids).exclude(status__in=done).exists():
        time.sleep(0.2)
    seconds = time.monotonic() - started
    peak = sum(sampler.stop() for sampler in samplers)

    documents = Document.objects.filter(pk__in=ids)
    failed = [
        f"{d.title}: {d.error_message}" for d in documents if d.status == "failed"
    ]
    pages = sum(d.page_count or 0 for d in documents)
    chunks = list(
        Chunk.objects.filter(document__in=ids).order_by("document", "ordinal")
    )
    sentences = ChunkSentence.objects.filter(chunk__document__in=ids).count()
    provider = get_embedding_provider(model)
    provider.embed([chunk.text for chunk in chunks[:8]])  # load the model first
    embed_started = time.monotonic()
    # Exactly the pipeline's model work: passages and, unless switched off,
    # their sentences, in the pipeline's batches (nothing written).
    for start in range(0, len(chunks), ingestion.EMBED_BATCH):
        ingestion._embed_batch(provider, chunks[start : start + ingestion.EMBED_BATCH])
    embed_seconds = time.monotonic() - embed_started
    return Result(
        model=model,
        documents=len(ids),
        pages=pages,
        chunks=len(chunks),
        sentences=sentences,
        seconds=seconds,
        embed_seconds=embed_seconds,
        peak_rss_mb=peak / 1_048_576,
        failed=failed,
    )


def report(results: list[Result], command: str) -> str:
    """Return the markdown report."""
    from django.conf import settings

    rows = "\n".join(
        f"| `{r.model}` | {r.documents} | {r.pages} | {r.chunks} | {r.sentences} | "
        f"{r.seconds:.1f} | "
        f"{r.pages_per_s:.2f} | {r.chunks_per_s:.1f} | {r.embed_pages_per_s:.2f} | "
        f"{r.efficiency:.2f} | {r.peak_rss_mb:.0f} |"
        for r in results
    )
    failures = "".join(
        f"\n- `{r.model}`: {failure}" for r in results for failure in r.failed
    )
    return (
        "# Ingestion throughput\n\n"
        f"Command: `{command}` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; a parsing "
        f"worker of {settings.WORKER_CONCURRENCY} processes and a one-process "
        f"embedder, as `make run` starts them; chunks of "
        f"{settings.CHUNK_MAX_TOKENS} tokens; sentence vectors "
        f"{'kept' if settings.INDEX_SENTENCES else 'off'}).\n\n"
        "The five PDFs of `shared/eval/pdfs` through the real worker (upload to "
        "last document ready), then the embedder alone on the same model work "
        "(passages and their sentences, as the pipeline batches them) in this "
        "process. Efficiency = end-to-end pages/s ÷ embedder-only "
        "pages/s. Peak RSS: both workers' process trees (parse children included).\n\n"
        "| embedder | docs | pages | chunks | sentences kept | seconds | pages/s | "
        "chunks/s | embedder-only pages/s | efficiency | peak worker RSS MB |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"{rows}\n" + (f"\nFailed documents:{failures}\n" if failures else "")
    )


def main() -> None:
    """Set up a private stack, measure each embedder, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument(
        "--without-sentences",
        action="store_true",
        help="RAGAPP_INDEX_SENTENCES=false for the workers and this process",
    )
    args = parser.parse_args()
    if args.without_sentences:
        os.environ["RAGAPP_INDEX_SENTENCES"] = "false"
    pdfs = sorted(eval_path("pdfs", "SOURCE.md").glob("*.pdf"))
    workdir = Path(tempfile.mkdtemp(prefix="ragapp-bench-ingest-"))
    with private_stack(workdir):
        results = run_models(args.models, pdfs, workdir)
    main_result = next((r for r in results if r.model == DEFAULT_MODEL), results[0])
    report_write(
        "ingest-without-sentences.md" if args.without_sentences else "ingest.md",
        report(results, command_line()),
        {
            "pages_per_s": f"{main_result.pages_per_s:.2f}",
            "embed_only_pages_per_s": f"{main_result.embed_pages_per_s:.2f}",
            "efficiency": f"{main_result.efficiency:.2f}",
            "chunks_per_s": f"{main_result.chunks_per_s:.1f}",
            "peak_worker_rss_mb": f"{main_result.peak_rss_mb:.0f}",
        },
    )


def run_models(models: list[str], pdfs: list[Path], workdir: Path) -> list[Result]:
    """Start the bundled Redis and both workers, ingest per model, stop them."""
    from django.conf import settings

    from ragapp.runtime import embedded_redis

    redis = None
    workers: list[subprocess.Popen[bytes]] = []
    try:
        redis = embedded_redis.start(
            settings.EMBEDDED_REDIS_DIR, settings.EMBEDDED_REDIS_SOCKET
        )
        workers = start_workers(dict(os.environ), workdir)
        pids = [process.pid for process in workers]
        return [run_model(model, pdfs, pids) for model in models]
    finally:
        for process in (*workers, redis):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
