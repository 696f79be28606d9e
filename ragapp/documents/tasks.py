"""Celery tasks of the ingestion pipeline: thin wrappers over the services.

Both take only a document id and are safe to run twice (the document row is
claimed). reject_on_worker_lost puts a message back when the worker process
dies mid-task; the claim's attempt counter bounds how often that can happen.
"""

import logging
from datetime import timedelta

import kombu.exceptions
from celery import Task, shared_task
from django.conf import settings

from ragapp.documents import ingestion
from ragapp.providers.exceptions import ProviderUnavailableError

logger = logging.getLogger(__name__)

_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True}


def enqueue(task: Task, document_id: int) -> None:
    """Send `task` for a document; if the broker is down, the sweeper sends it later.

    Called after commit: the document row already says what is to be done,
    so a lost send delays the work but never loses it.
    """
    try:
        task.delay(document_id)
    except Exception as exc:
        # A broker that is down or not started (kombu's OperationalError, e.g.
        # `manage.py ingest --now` with the app stopped) is said in one line;
        # anything else keeps its traceback.
        logger.warning(
            "Could not send %s for document %s now (%s); the sweeper will.",
            task.name,
            document_id,
            exc,
            exc_info=None
            if isinstance(exc, kombu.exceptions.OperationalError)
            else exc,
        )


@shared_task(**_RELIABLE)
def document_ingest_task(document_id: int) -> None:
    """Parse and chunk one document (default queue), then queue its embedding."""
    ingestion.document_parse(document_id=document_id)


@shared_task(
    **_RELIABLE,
    autoretry_for=(ProviderUnavailableError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def document_embed_task(document_id: int) -> None:
    """Embed one parsed document and swap it in (embedding queue)."""
    ingestion.document_embed(document_id=document_id)


@shared_task
def documents_sweep_task() -> int:
    """Re-send documents whose message or worker was lost; return how many."""
    stale_after = timedelta(seconds=2 * settings.INGEST_SWEEP_SECONDS)
    found = ingestion.documents_needing_work(stale_after=stale_after)
    for document_id in found[ingestion.PARSE]:
        document_ingest_task.delay(document_id)
    for document_id in found[ingestion.EMBED]:
        document_embed_task.delay(document_id)
    return sum(len(ids) for ids in found.values())
