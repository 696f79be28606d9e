"""Read-only probes of the services ragapp depends on."""

import logging

from django.db.backends.base.base import BaseDatabaseWrapper
from kombu.exceptions import OperationalError

from ragapp.celery import app
from ragapp.runtime.database import pgvector_installed_version

logger = logging.getLogger(__name__)


def pgvector_status(connection: BaseDatabaseWrapper) -> str:
    """Return the installed pgvector version, or 'missing'."""
    return pgvector_installed_version(connection) or "missing"


def broker_reachable(timeout: float = 2.0) -> bool:
    """Return whether the Celery broker accepts a connection within `timeout`."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except (OperationalError, OSError):
        logger.warning("Health check: broker unreachable", exc_info=True)
        return False
    return True
