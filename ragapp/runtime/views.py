"""Health endpoint for load balancers, compose healthchecks and `serve`."""

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ragapp.runtime import selectors

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database (with pgvector) and the broker answer."""
    checks: dict[str, str] = {}
    try:
        checks["database"] = "ok"
        checks["pgvector"] = selectors.pgvector_status(connection)
    except DatabaseError:
        logger.exception("Health check: database unreachable")
        checks["database"] = "unavailable"
    checks["broker"] = "ok" if selectors.broker_reachable() else "unavailable"
    healthy = checks["database"] == "ok" and checks["broker"] == "ok"
    checks["status"] = "ok" if healthy else "degraded"
    return JsonResponse(checks, status=200 if healthy else 503)
