"""T28 at full size: SIGKILL the worker mid-document, N times, and count outcomes.

Each run uploads a document of about 200 passages (MiniLM, a few seconds of
embedding), waits a random moment into its processing (parsing or embedding),
then SIGKILLs either the pool child holding the document (half the runs) or
the whole worker process group, as a crash would (the other half), starts a
fresh worker where needed, and lets the pipeline finish: the pool child's
message comes back at once (reject_on_worker_lost), a crashed worker's work is
found by the sweeper (called here as beat would call it). A run passes when
the document ends ready exactly once: one chunk version, ordinals 0..n-1 each
once, every chunk embedded. Recovery time is from the kill to ready.

Runs in a temporary data dir with its own embedded PostgreSQL and bundled
Redis; the worker serves both queues with one process (the smallest shape).

    .venv/bin/python bench/worker_kill.py [--runs 50]

Writes docs/bench/worker_kill.md; the last stdout line is key=value pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "bench" / "worker_kill.md"
MODEL = "local/all-MiniLM-L6-v2"
RUN_TIMEOUT = 300


class Worker:
    """One `celery worker` process group serving both pipeline queues."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        from django.conf import settings

        self.command = [
            sys.executable, "-m", "celery", "-A", "ragapp", "worker",
            "--loglevel", "WARNING", "--concurrency", "1",
            "--queues", f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.EMBED_QUEUE}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        time.sleep(3)  # the worker connects; messages wait in Redis meanwhile

    def crash(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def document_text(run: int) -> bytes:
    """Return a plain-text document of about 200 passages, unique per run."""
    return "\n\n".join(
        f"Run {run}, section {i}. "
        + " ".join(
            f"Step {i}.{j} checks valve {j} and logs pressure." for j in range(20)
        )
        for i in range(100)
    ).encode()


def one_run(
    run: int, mode: str, worker: Worker, collection: object, rng: random.Random
) -> dict:
    """Kill the worker once during one document; return what happened."""
    from ragapp.documents import services
    from ragapp.documents.models import Chunk, Document
    from ragapp.documents.tasks import documents_sweep_task

    doc = services.document_upload(
        collection=collection,
        stream=io.BytesIO(document_text(run)),
        filename=f"r{run}.txt",
    ).document
    busy = {Document.Status.PARSING, Document.Status.EMBEDDING}
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:  # wait until some worker process holds the document
        current = Document.objects.get(pk=doc.pk)
        if current.status in busy and current.claim_token is not None:
            break
        if time.monotonic() > deadline:
            return {"ok": False, "why": "never started"}
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 2.5))  # a random step: parsing or some batch
    current = Document.objects.get(pk=doc.pk)
    stage = current.status
    if stage not in busy:
        return {"ok": True, "why": "finished before the kill", "stage": "missed"}
    killed_at = time.monotonic()
    if mode == "child" and current.claim_token is not None:
        pid = int(current.claimed_by.rpartition(":")[2])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    else:
        worker.crash()
        worker.start()
        documents_sweep_task.apply()  # what beat does every sweep interval
    last_sweep = time.monotonic()
    while True:
        current = Document.objects.get(pk=doc.pk)
        if current.status in {Document.Status.READY, Document.Status.FAILED}:
            break
        if time.monotonic() > deadline:
            return {"ok": False, "why": f"stuck in {current.status}", "stage": stage}
        if time.monotonic() - last_sweep > 10:  # beat's sweep, run more often
            documents_sweep_task.apply()
            last_sweep = time.monotonic()
        time.sleep(0.05)
    recovery = time.monotonic() - killed_at
    chunks = Chunk.objects.filter(document=current)
    ordinals = list(chunks.values_list("ordinal", flat=True))
    exactly_once = (
        current.status == Document.Status.READY
        and set(chunks.values_list("version", flat=True)) == {current.indexed_version}
        and sorted(ordinals) == list(range(current.progress_total))
        and not chunks.filter(embedding__isnull=True).exists()
    )
    return {
        "ok": exactly_once,
        "why": "" if exactly_once else f"{current.status} {current.error_code}",
        "stage": stage,
        "recovery": recovery,
    }


def main() -> None:
    """Set up a private stack, run the kills, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ragapp-bench-kill-"))
    os.environ["RAGAPP_DATA_DIR"] = str(workdir)
    os.environ["RAGAPP_CELERY_VISIBILITY_TIMEOUT"] = "30"
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragapp.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from ragapp.documents import services
    from ragapp.providers.catalog import embedding_dimensions
    from ragapp.runtime import embedded_postgres, embedded_redis

    rng = random.Random(args.seed)
    results = []
    redis = None
    worker = None
    try:
        call_command("migrate", interactive=False, verbosity=0)
        redis = embedded_redis.start(
            settings.EMBEDDED_REDIS_DIR, settings.EMBEDDED_REDIS_SOCKET
        )
        worker = Worker(dict(os.environ), workdir / "worker.log")
        worker.start()
        collection = services.collection_create(name="kills", slug="kills")
        collection.embedding_model = MODEL
        collection.embedding_dimensions = embedding_dimensions(MODEL)
        collection.save()
        for run in range(args.runs):
            mode = "child" if run % 2 == 0 else "crash"
            result = {
                "run": run,
                "mode": mode,
                **one_run(run, mode, worker, collection, rng),
            }
            results.append(result)
            print(result, flush=True)
    finally:
        if worker is not None:
            worker.stop()
        if redis is not None and redis.poll() is None:
            redis.terminate()
            redis.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        embedded_postgres.stop(workdir / "postgres")
        shutil.rmtree(workdir, ignore_errors=True)

    lines = []
    summary = {}
    for mode in ("child", "crash"):
        runs = [r for r in results if r["mode"] == mode]
        stages = {
            s: sum(r.get("stage") == s for r in runs)
            for s in ("parsing", "embedding", "missed")
        }
        killed = [r for r in runs if r.get("stage") != "missed"]
        ok = [r for r in killed if r["ok"]]
        times = sorted(r["recovery"] for r in ok)
        p50 = statistics.median(times) if times else float("nan")
        worst = times[-1] if times else float("nan")
        summary[mode] = (len(ok), len(killed), p50, worst)
        lines.append(
            f"| {'pool child SIGKILLed' if mode == 'child' else 'whole worker SIGKILLed, new worker started'} "
            f"| {len(ok)}/{len(killed)} | {stages['parsing']} / {stages['embedding']} "
            f"| {stages['missed']} "
            f"| {p50:.1f} | {worst:.1f} |"
        )
    failures = [r for r in results if not r["ok"]]
    report = (
        "# Worker killed mid-document (T28)\n\n"
        f"Command: `.venv/bin/python bench/worker_kill.py --runs {args.runs}` "
        f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"seed {args.seed}). Each run: a ~200-passage document (MiniLM), SIGKILL at "
        "a random moment while it is held (parsing or embedding), recovery until "
        "ready (a pool child's message returns at once; after a crash a new worker "
        "starts and the sweeper, as beat runs it, re-sends the work). Exactly once "
        "= one chunk version, every ordinal once, every chunk embedded.\n\n"
        "| kill | exactly once | killed while parsing / embedding | done before the "
        "kill (not counted) | recovery p50 s | worst s |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(lines)
        + "\n"
        + (f"\nFailures: {failures}\n" if failures else "")
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(report)
    print(report)
    child, crash = summary["child"], summary["crash"]
    print(
        f"runs={len(results)} exactly_once={child[0] + crash[0]} "
        f"child_recovery_p50_s={child[2]:.1f} crash_recovery_p50_s={crash[2]:.1f}"
    )


if __name__ == "__main__":
    main()
