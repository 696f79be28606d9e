"""Celery tasks of the ingestion pipeline: thin wrappers over services."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from ragapp.documents import ingestion
from ragapp.providers.exceptions import ProviderUnavailableError


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ProviderUnavailableError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def document_ingest_task(document_id: int) -> None:
    """Ingest one document; safe to run twice (the document row is claimed).

    reject_on_worker_lost puts the message back when the worker process dies
    mid-task; the claim's attempt counter bounds how often that can happen.
    """
    ingestion.document_ingest(document_id=document_id)


@shared_task
def documents_sweep_task() -> int:
    """Re-send documents whose message or worker was lost; return how many."""
    stale_after = timedelta(seconds=2 * settings.INGEST_SWEEP_SECONDS)
    ids = ingestion.documents_needing_work(stale_after=stale_after)
    for document_id in ids:
        document_ingest_task.delay(document_id)
    return len(ids)
