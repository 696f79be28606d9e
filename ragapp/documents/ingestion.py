"""The ingestion pipeline: claim a document, parse and chunk it, embed, swap in.

Two stages, two queues. Parsing (a sandboxed child process per file) runs on
the default queue; embedding runs on its own queue, served by one worker
process that has every core for the model. So the next file is parsed while
the previous one is embedded, and embedders never fight over cores (measured:
docs/BENCHMARKS.md, ingestion).

PostgreSQL, not the broker, is the source of truth. A task only carries a
document id; whoever claims the document's row (a conditional UPDATE) does the
stage's work, so redelivered or duplicated messages are harmless. The claim is
a lease renewed as work goes on; a killed worker's lease runs out (or its
process is seen gone) and the next delivery or the sweeper takes the document
up again. Parsing writes the new chunks, without vectors, under a new version
beside the searchable ones; embedding fills in the missing vectors (a killed
embedder resumes where it stopped) and swaps the version in with one
transaction, so nothing is ever half-indexed.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psutil
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from ragapp.documents.chunking import (
    ChunkDraft,
    ChunkingConfig,
    SentenceSpan,
    chunk_blocks,
    embedding_text,
    passage_sentences,
)
from ragapp.documents.models import Chunk, ChunkSentence, Collection, Document
from ragapp.documents.parsing import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    parse_file_isolated,
)
from ragapp.providers.base import EmbeddingProvider
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderUnavailableError,
)
from ragapp.retrieval.lexicon import lexicon_apply

logger = logging.getLogger(__name__)

# A document whose processing ended without a result this many times in a row
# (worker killed, out of memory) is failed instead of being retried for ever.
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=120)
EMBED_BATCH = 32

Status = Document.Status


class ClaimLostError(Exception):
    """Another worker took the document over; this one must stop writing."""


@dataclass(frozen=True)
class Claim:
    """This worker's right to process one document."""

    document_id: int
    token: uuid.UUID
    attempts: int


def worker_identity() -> str:
    """Return "host:pid" of this process, recorded on the claims it makes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_gone(claimed_by: str) -> bool:
    """Whether a claim's holder is a process on this host that no longer runs.

    Lets the next worker on the same machine take over at once after a pool
    child was killed, instead of waiting for the lease to run out.
    """
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        return psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# Which statuses each stage claims, and the status it works under.
PARSE, EMBED = "parse", "embed"
_CLAIMABLE = {PARSE: (Status.QUEUED, Status.PARSING), EMBED: (Status.EMBEDDING,)}
_WORKING = {PARSE: Status.PARSING, EMBED: Status.EMBEDDING}
_RELEASED = {PARSE: Status.QUEUED, EMBED: Status.EMBEDDING}


def document_claim(*, document_id: int, stage: str = PARSE) -> Claim | None:
    """Claim the document for `stage`, or return None if there is nothing to do.

    Claimable: documents waiting for the stage, and documents in it whose
    lease ran out or whose holder process is gone. Ready and failed documents,
    and documents someone is working on right now, are left alone, so a
    message delivered twice does the work once. A document whose claims ran
    out (MAX_ATTEMPTS deliveries that never finished) is failed instead.
    """
    now = timezone.now()
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(skip_locked=True)
            .filter(pk=document_id, status__in=_CLAIMABLE[stage])
            .first()
        )
        if document is None:
            return None
        if document.claim_token is not None and not (
            document.lease_expires_at is None
            or document.lease_expires_at < now
            or _holder_is_gone(document.claimed_by)
        ):
            return None  # someone is working on it right now
        attempts = document.attempts + 1
        if attempts > MAX_ATTEMPTS:
            # Failed in the claim's own transaction: no holder ever shows for
            # a delivery that will not run (one was seen and killed as if
            # it were running the document).
            Document.objects.filter(pk=document_id).update(
                **_failed_fields(
                    now,
                    "worker_lost",
                    f"Processing stopped without a result {MAX_ATTEMPTS} times "
                    "(the worker was killed or ran out of memory). The file may "
                    "be too large or malformed; retry it, or split it into "
                    "smaller files.",
                )
            )
            logger.info(
                "Document %s failed: worker lost %d times", document_id, MAX_ATTEMPTS
            )
            return None
        token = uuid.uuid4()
        fields: dict[str, object] = {
            "status": _WORKING[stage],
            "claim_token": token,
            "claimed_by": worker_identity(),
            "lease_expires_at": now
            + LEASE
            + (_parse_timeout() if stage == PARSE else timedelta()),
            "attempts": attempts,
        }
        if stage == PARSE:
            fields.update(
                status_changed_at=now,
                started_at=now,
                error_code="",
                error_message="",
                progress_done=0,
                progress_total=0,
            )
        Document.objects.filter(pk=document_id).update(**fields)
    return Claim(document_id, token, attempts)


def _parse_timeout() -> timedelta:
    return timedelta(seconds=settings.PARSE_TIMEOUT_SECONDS)


def _update_claimed(claim: Claim, **fields: object) -> None:
    """Write fields of the claimed document and renew the lease, or stop."""
    fields.setdefault("lease_expires_at", timezone.now() + LEASE)
    updated = Document.objects.filter(
        pk=claim.document_id, claim_token=claim.token
    ).update(**fields)
    if not updated:
        raise ClaimLostError(claim.document_id)


def _failed_fields(now: datetime, code: str, message: str) -> dict[str, object]:
    return {
        "status": Status.FAILED,
        "status_changed_at": now,
        "finished_at": now,
        "error_code": code,
        "error_message": message,
        "claim_token": None,
        "lease_expires_at": None,
        "attempts": 0,
    }


def _fail(claim: Claim, code: str, message: str) -> None:
    Document.objects.filter(pk=claim.document_id, claim_token=claim.token).update(
        **_failed_fields(timezone.now(), code, message)
    )
    logger.info("Document %s failed: %s (%s)", claim.document_id, message, code)


def document_release(*, claim: Claim, stage: str, count_attempt: bool) -> None:
    """Give the document back to the queue after a failure that may heal.

    An unavailable model API does not count towards MAX_ATTEMPTS (nothing is
    wrong with the document); an unexpected error does, so a document that
    keeps breaking the pipeline ends failed instead of looping.
    """
    Document.objects.filter(pk=claim.document_id, claim_token=claim.token).update(
        status=_RELEASED[stage],
        status_changed_at=timezone.now(),
        claim_token=None,
        lease_expires_at=None,
        attempts=F("attempts") if count_attempt else F("attempts") - 1,
    )


def parse_limits() -> ParseLimits:
    """Return the parse limits configured in settings."""
    return ParseLimits(
        max_pages=settings.MAX_PAGES_PER_DOCUMENT,
        timeout_seconds=settings.PARSE_TIMEOUT_SECONDS,
        memory_bytes=settings.PARSE_MEMORY_MB * 1024 * 1024,
    )


def chunking_config() -> ChunkingConfig:
    """Return the chunk sizes configured in settings."""
    return ChunkingConfig(
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )


def document_parse(*, document_id: int) -> bool:
    """Parse and chunk a queued document; return True when it is ready to embed."""
    return _run_stage(document_id, PARSE, _parse_claimed)


def document_embed(*, document_id: int) -> None:
    """Embed a parsed document's chunks and make them searchable.

    Raises ProviderUnavailableError when the embedding API is down, after
    handing the document back, so the task can retry later with backoff.
    """
    _run_stage(document_id, EMBED, _embed_claimed)


def document_ingest(*, document_id: int) -> None:
    """Run both stages in this process (management commands, tests)."""
    if document_parse(document_id=document_id):
        document_embed(document_id=document_id)


def _run_stage(document_id: int, stage: str, work: object) -> bool:
    claim = document_claim(document_id=document_id, stage=stage)
    if claim is None:
        return False
    try:
        return work(claim)
    except ClaimLostError:
        logger.warning("Lost the claim on document %s; stopping.", document_id)
        return False
    except ProviderConfigurationError as exc:
        _fail(claim, "embedding_config", str(exc))
        return False
    except ProviderUnavailableError:
        document_release(claim=claim, stage=stage, count_attempt=False)
        raise  # the task retries with backoff
    except Exception:
        logger.exception("Unexpected error while ingesting document %s", document_id)
        if claim.attempts >= MAX_ATTEMPTS:
            _fail(
                claim,
                "internal_error",
                "An unexpected error stopped processing several times. The "
                "worker log has the details; retry once the cause is fixed.",
            )
        else:
            document_release(claim=claim, stage=stage, count_attempt=True)
        raise


def _parse_claimed(claim: Claim) -> bool:
    document = Document.objects.get(pk=claim.document_id)
    try:
        parsed = parse_file_isolated(
            document.file.path,
            content_type=document.content_type,
            limits=parse_limits(),
        )
    except ParseError as exc:
        _fail(claim, exc.code, str(exc))
        return False
    if parsed.page_count is not None and (
        parsed.page_count > settings.MAX_PAGES_PER_DOCUMENT
    ):
        _fail(
            claim,
            "too_many_pages",
            f"The document has {parsed.page_count} pages; the limit is "
            f"{settings.MAX_PAGES_PER_DOCUMENT} (RAGAPP_MAX_PAGES).",
        )
        return False
    drafts = chunk_blocks(parsed.blocks, chunking_config())
    if not drafts:
        _fail(
            claim,
            "no_text",
            "No text could be read from this file"
            + (
                " (its pages have no text layer)." if parsed.pages_without_text else "."
            ),
        )
        return False
    if len(drafts) > settings.MAX_CHUNKS_PER_DOCUMENT:
        _fail(
            claim,
            "too_many_chunks",
            f"The document would make {len(drafts)} passages; the limit is "
            f"{settings.MAX_CHUNKS_PER_DOCUMENT} (RAGAPP_MAX_CHUNKS_PER_DOCUMENT).",
        )
        return False
    _store_parsed(claim, document, parsed, drafts)
    return True


def _store_parsed(
    claim: Claim, document: Document, parsed: ParsedDocument, drafts: list[ChunkDraft]
) -> None:
    """Write the chunks (no vectors yet) and hand the document to the embedder."""
    version = document.indexed_version + 1
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_claimed(claim)
        # Leftovers of an earlier attempt at this version (a killed worker) go.
        Chunk.objects.filter(
            document_id=document.pk, version__gt=document.indexed_version
        ).delete()
        Chunk.objects.bulk_create(
            Chunk(
                document_id=document.pk,
                collection_id=document.collection_id,
                version=version,
                ordinal=draft.ordinal,
                text=draft.text,
                heading=draft.heading[:500],
                token_count=draft.token_count,
                page_start=draft.page_start,
                page_end=draft.page_end,
            )
            for draft in drafts
        )
        fields: dict[str, object] = {
            "status": Status.EMBEDDING,
            "status_changed_at": now,
            "page_count": parsed.page_count,
            "warnings": parsed.warnings,
            "progress_done": 0,
            "progress_total": len(drafts),
            "claim_token": None,
            "lease_expires_at": None,
            "attempts": 0,
        }
        if parsed.title and locked.title == locked.original_filename:
            fields["title"] = parsed.title[:500]
        Document.objects.filter(pk=document.pk).update(**fields)
        transaction.on_commit(lambda: _enqueue_embed(document.pk), robust=True)


def _enqueue_embed(document_id: int) -> None:
    from ragapp.documents.tasks import document_embed_task, enqueue

    enqueue(document_embed_task, document_id)


def _lock_claimed(claim: Claim) -> Document:
    """Lock the claimed document's row for a final write, or stop if the claim is gone."""
    locked = (
        Document.objects.select_for_update()
        .filter(pk=claim.document_id, claim_token=claim.token)
        .first()
    )
    if locked is None:
        raise ClaimLostError(claim.document_id)
    return locked


def _embed_claimed(claim: Claim) -> bool:
    document = Document.objects.select_related("collection").get(pk=claim.document_id)
    version = document.indexed_version + 1
    pending = Chunk.objects.filter(
        document_id=document.pk, version=version, embedding__isnull=True
    ).order_by("ordinal")
    total = Chunk.objects.filter(document_id=document.pk, version=version).count()
    if total == 0:
        # Nothing was parsed for this version (a message from an older run).
        raise ClaimLostError(document.pk)
    provider = get_embedding_provider(document.collection.embedding_model)
    while batch := list(pending[:EMBED_BATCH]):
        sentences = _embed_batch(provider, batch)
        # A worker that lost its claim may still write here: the vectors are the
        # same model's for the same text, so the second writer changes nothing
        # (and its sentences collide with the first writer's and are dropped).
        # One transaction: a chunk with a vector has all its sentences.
        with transaction.atomic():
            ChunkSentence.objects.bulk_create(sentences, ignore_conflicts=True)
            Chunk.objects.bulk_update(batch, ["embedding"])
        done = total - pending.count()
        _update_claimed(claim, progress_done=done, progress_total=total)
    _swap_in(claim, document, version)
    return True


def _embed_batch(
    provider: EmbeddingProvider, batch: list[Chunk]
) -> list[ChunkSentence]:
    """Set each chunk's vector; return its sentences' rows, vectors and all.

    One call to the model for chunks and sentences together. A chunk of one
    sentence would embed the same text twice, so its sentence takes the
    chunk's vector.
    """
    spans = [
        passage_sentences(chunk.text) if settings.INDEX_SENTENCES else []
        for chunk in batch
    ]
    separate = _separate_sentences(batch, spans)
    vectors = provider.embed(
        [embedding_text(chunk.heading, chunk.text) for chunk in batch]
        + [embedding_text(chunk.heading, span.text) for chunk, span in separate]
    )
    for chunk, vector in zip(batch, vectors[: len(batch)], strict=True):
        chunk.embedding = vector
    return _sentence_rows(batch, spans, vectors[len(batch) :])


def _separate_sentences(
    batch: list[Chunk], spans: list[list[SentenceSpan]]
) -> list[tuple[Chunk, SentenceSpan]]:
    """The sentences that need a vector of their own: those of multi-sentence chunks."""
    return [
        (chunk, span)
        for chunk, chunk_spans in zip(batch, spans, strict=True)
        if len(chunk_spans) > 1
        for span in chunk_spans
    ]


def _sentence_rows(
    batch: list[Chunk], spans: list[list[SentenceSpan]], vectors: list[list[float]]
) -> list[ChunkSentence]:
    """Rows for every sentence of `batch`: `vectors` for those of multi-sentence
    chunks (in `_separate_sentences` order), the chunk's own vector for a chunk
    of one sentence."""
    single = [
        (chunk, chunk_spans[0], chunk.embedding)
        for chunk, chunk_spans in zip(batch, spans, strict=True)
        if len(chunk_spans) == 1
    ]
    multiple = [
        (chunk, span, vector)
        for (chunk, span), vector in zip(
            _separate_sentences(batch, spans), vectors, strict=True
        )
    ]
    return [
        ChunkSentence(
            chunk=chunk,
            ordinal=span.ordinal,
            start=span.start,
            end=span.end,
            embedding=vector,
        )
        for chunk, span, vector in single + multiple
    ]


def sentences_backfill_batch(provider: EmbeddingProvider, batch: list[Chunk]) -> int:
    """Embed and keep the sentences of `batch`, searchable chunks `provider` embedded.

    For chunks indexed before sentence vectors were kept (or with
    RAGAPP_INDEX_SENTENCES off): only the sentences are embedded, the
    passages' own vectors stay. Chunks a re-index or a deletion removed
    meanwhile are skipped (their rows are locked while these are written, so
    a swap waits or has already gone). Returns the sentence rows written or
    found there already (a second backfill running at once adds nothing).
    """
    spans = [passage_sentences(chunk.text) for chunk in batch]
    separate = _separate_sentences(batch, spans)
    vectors = (
        provider.embed(
            [embedding_text(chunk.heading, span.text) for chunk, span in separate]
        )
        if separate
        else []
    )
    rows = _sentence_rows(batch, spans, vectors)
    with transaction.atomic():
        alive = set(
            Chunk.objects.select_for_update()
            .filter(pk__in=[chunk.pk for chunk in batch])
            .values_list("pk", flat=True)
        )
        written = ChunkSentence.objects.bulk_create(
            [row for row in rows if row.chunk_id in alive], ignore_conflicts=True
        )
    return len(written)


def _swap_in(claim: Claim, document: Document, version: int) -> None:
    """Make `version` the searchable one and drop the old chunks, atomically."""
    now = timezone.now()
    with transaction.atomic():
        locked = _lock_claimed(claim)
        lexicon_apply(
            collection_id=locked.collection_id,
            document_id=locked.pk,
            remove_version=locked.indexed_version,
            add_version=version,
        )
        Chunk.objects.filter(document_id=document.pk).exclude(version=version).delete()
        Document.objects.filter(pk=document.pk).update(
            indexed_version=version,
            indexed_at=now,
            status=Status.READY,
            status_changed_at=now,
            finished_at=now,
            claim_token=None,
            lease_expires_at=None,
            attempts=0,
            error_code="",
            error_message="",
        )
    logger.info("Document %s is ready (version %s).", document.pk, version)


def documents_needing_work(*, stale_after: timedelta) -> dict[str, list[int]]:
    """Return ids of documents whose work may have been lost, by stage.

    Documents waiting for a stage longer than `stale_after` (their message
    may have been lost with the broker) and documents in a stage whose lease
    ran out or whose worker process is gone. Sending them again is safe:
    claims make work happen once.
    """
    now = timezone.now()
    waiting = Q(claim_token=None, status_changed_at__lt=now - stale_after)
    expired = Q(claim_token__isnull=False, lease_expires_at__lt=now)
    found: dict[str, list[int]] = {}
    for stage, statuses in _CLAIMABLE.items():
        in_stage = Document.objects.filter(status__in=statuses)
        stale = list(
            in_stage.filter(waiting | expired)
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:1000]
        )
        running = in_stage.filter(
            claim_token__isnull=False, lease_expires_at__gte=now
        ).values_list("pk", "claimed_by")
        found[stage] = [
            *stale,
            *(pk for pk, holder in running if _holder_is_gone(holder)),
        ]
    return found


def sentences_missing(collection: Collection) -> QuerySet[Chunk]:
    """The searchable chunks of `collection` its model embedded, without kept sentences."""
    dimensions = get_embedding_provider(collection.embedding_model).dimensions
    return Chunk.objects.filter(
        ~Exists(ChunkSentence.objects.filter(chunk_id=OuterRef("pk"))),
        collection=collection,
        document__status=Status.READY,
        version=F("document__indexed_version"),
        embedding__isnull=False,
        embedding_dimensions=dimensions,
    )


def sentences_backfill(
    collection: Collection,
    *,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Keep sentence vectors for every chunk of `collection` that lacks them.

    Re-indexing would re-parse every file for the same result; this embeds
    the sentences alone, in pk order, `batch_size` chunks at a time, each
    batch committed, so an interrupted run resumes where it stopped.
    `progress(chunks done, chunks to do)` is called after each batch.
    Returns (chunks, sentences) done.
    """
    provider = get_embedding_provider(collection.embedding_model)
    missing = sentences_missing(collection)
    total = missing.count()
    done = sentences = 0
    after = 0
    while batch := list(
        missing.filter(pk__gt=after)
        .order_by("pk")
        .only("pk", "text", "heading", "embedding")[:batch_size]
    ):
        sentences += sentences_backfill_batch(provider, batch)
        done += len(batch)
        after = batch[-1].pk
        if progress:
            progress(done, total)
    return done, sentences
