"""The ingestion pipeline: claim a document, parse, chunk, embed, swap in.

PostgreSQL, not the broker, is the source of truth. A task only carries a
document id; whoever claims the document's row (a conditional UPDATE) does the
work, so redelivered or duplicated messages are harmless. The claim is a lease
renewed as work goes on; a killed worker's lease runs out (or its process is
seen gone) and the next delivery or the sweeper takes the document up again.
New chunks are written under a new version beside the searchable ones and
swapped in by one transaction, so nothing is ever half-indexed.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

import psutil
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ragapp.documents.chunking import ChunkDraft, ChunkingConfig, chunk_blocks
from ragapp.documents.models import Chunk, Document
from ragapp.documents.parsing import ParseError, ParseLimits, parse_file_isolated
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderUnavailableError,
)

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


def document_claim(*, document_id: int) -> Claim | None:
    """Claim the document for processing, or return None if there is nothing to do.

    Claimable: queued documents, and documents in progress whose lease ran out
    or whose holder process is gone. Ready and failed documents are left alone,
    so a message delivered twice does the work once.
    """
    now = timezone.now()
    in_progress = Q(status__in=[Status.PARSING, Status.EMBEDDING])
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(skip_locked=True)
            .filter(pk=document_id)
            .filter(Q(status=Status.QUEUED) | in_progress)
            .first()
        )
        if document is None:
            return None
        if document.status != Status.QUEUED and not (
            document.lease_expires_at is None
            or document.lease_expires_at < now
            or _holder_is_gone(document.claimed_by)
        ):
            return None  # someone is working on it right now
        token = uuid.uuid4()
        attempts = document.attempts + 1
        Document.objects.filter(pk=document_id).update(
            status=Status.PARSING,
            status_changed_at=now,
            claim_token=token,
            claimed_by=worker_identity(),
            lease_expires_at=now + LEASE + _parse_timeout(),
            attempts=attempts,
            started_at=now,
            error_code="",
            error_message="",
            progress_done=0,
            progress_total=0,
        )
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


def _fail(claim: Claim, code: str, message: str) -> None:
    now = timezone.now()
    Document.objects.filter(pk=claim.document_id, claim_token=claim.token).update(
        status=Status.FAILED,
        status_changed_at=now,
        finished_at=now,
        error_code=code,
        error_message=message,
        claim_token=None,
        lease_expires_at=None,
        attempts=0,
    )
    logger.info("Document %s failed: %s (%s)", claim.document_id, message, code)


def document_release(*, claim: Claim, count_attempt: bool) -> None:
    """Give the document back to the queue after a failure that may heal.

    An unavailable model API does not count towards MAX_ATTEMPTS (nothing is
    wrong with the document); an unexpected error does, so a document that
    keeps breaking the pipeline ends failed instead of looping.
    """
    Document.objects.filter(pk=claim.document_id, claim_token=claim.token).update(
        status=Status.QUEUED,
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


def document_ingest(*, document_id: int) -> None:
    """Take a document from queued to ready (or failed, with a reason).

    Raises ProviderUnavailableError when the embedding API is down, after
    handing the document back, so the task can retry later with backoff.
    """
    claim = document_claim(document_id=document_id)
    if claim is None:
        return
    if claim.attempts > MAX_ATTEMPTS:
        _fail(
            claim,
            "worker_lost",
            f"Processing stopped without a result {MAX_ATTEMPTS} times (the worker "
            "was killed or ran out of memory). The file may be too large or "
            "malformed; retry it, or split it into smaller files.",
        )
        return
    try:
        _ingest_claimed(claim)
    except ClaimLostError:
        logger.warning("Lost the claim on document %s; stopping.", document_id)
    except ProviderConfigurationError as exc:
        _fail(claim, "embedding_config", str(exc))
    except ProviderUnavailableError:
        document_release(claim=claim, count_attempt=False)
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
            document_release(claim=claim, count_attempt=True)
        raise


def _ingest_claimed(claim: Claim) -> None:
    document = Document.objects.select_related("collection").get(pk=claim.document_id)
    try:
        parsed = parse_file_isolated(
            document.file.path,
            content_type=document.content_type,
            limits=parse_limits(),
        )
    except ParseError as exc:
        _fail(claim, exc.code, str(exc))
        return
    if parsed.page_count is not None and (
        parsed.page_count > settings.MAX_PAGES_PER_DOCUMENT
    ):
        _fail(
            claim,
            "too_many_pages",
            f"The document has {parsed.page_count} pages; the limit is "
            f"{settings.MAX_PAGES_PER_DOCUMENT} (RAGAPP_MAX_PAGES).",
        )
        return
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
        return
    if len(drafts) > settings.MAX_CHUNKS_PER_DOCUMENT:
        _fail(
            claim,
            "too_many_chunks",
            f"The document would make {len(drafts)} passages; the limit is "
            f"{settings.MAX_CHUNKS_PER_DOCUMENT} (RAGAPP_MAX_CHUNKS_PER_DOCUMENT).",
        )
        return

    new_version = document.indexed_version + 1
    # Leftovers of an earlier attempt at this version (a killed worker) go first.
    Chunk.objects.filter(
        document_id=document.pk, version__gt=document.indexed_version
    ).delete()
    _update_claimed(
        claim,
        status=Status.EMBEDDING,
        status_changed_at=timezone.now(),
        page_count=parsed.page_count,
        warnings=parsed.warnings,
        progress_done=0,
        progress_total=len(drafts),
    )
    provider = get_embedding_provider(document.collection.embedding_model)
    for start in range(0, len(drafts), EMBED_BATCH):
        batch = drafts[start : start + EMBED_BATCH]
        vectors = provider.embed([draft.text for draft in batch])
        _write_chunks(document, new_version, batch, vectors)
        _update_claimed(claim, progress_done=start + len(batch))
    _swap_in(claim, document, new_version, parsed.title)


def _write_chunks(
    document: Document,
    version: int,
    drafts: list[ChunkDraft],
    vectors: list[list[float]],
) -> None:
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
            embedding=vector,
        )
        for draft, vector in zip(drafts, vectors, strict=True)
    )


def _swap_in(claim: Claim, document: Document, version: int, title: str) -> None:
    """Make `version` the searchable one and drop the old chunks, atomically."""
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Document.objects.select_for_update()
            .filter(pk=document.pk, claim_token=claim.token)
            .first()
        )
        if locked is None:
            raise ClaimLostError(document.pk)
        Chunk.objects.filter(document_id=document.pk).exclude(version=version).delete()
        fields: dict[str, object] = {
            "indexed_version": version,
            "indexed_at": now,
            "status": Status.READY,
            "status_changed_at": now,
            "finished_at": now,
            "claim_token": None,
            "lease_expires_at": None,
            "attempts": 0,
            "error_code": "",
            "error_message": "",
        }
        if title and locked.title == locked.original_filename:
            fields["title"] = title[:500]
        Document.objects.filter(pk=document.pk).update(**fields)
    logger.info("Document %s is ready (version %s).", document.pk, version)


def documents_needing_work(*, stale_after: timedelta) -> list[int]:
    """Return ids of documents whose work may have been lost.

    Queued documents older than `stale_after` (their message may have been lost
    with the broker) and documents in progress whose lease ran out or whose
    worker process is gone. Sending them again is safe: claims make work
    happen once.
    """
    now = timezone.now()
    stale = Document.objects.filter(
        Q(status=Status.QUEUED, status_changed_at__lt=now - stale_after)
        | Q(status__in=[Status.PARSING, Status.EMBEDDING], lease_expires_at__lt=now)
    ).order_by("status_changed_at")
    running = Document.objects.filter(
        status__in=[Status.PARSING, Status.EMBEDDING], lease_expires_at__gte=now
    ).values_list("pk", "claimed_by")
    orphaned = [pk for pk, holder in running if _holder_is_gone(holder)]
    return [*stale.values_list("pk", flat=True)[:1000], *orphaned]
