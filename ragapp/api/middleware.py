"""Request ids, the API request log, and JSON for every API error.

For paths under /api/ and /v1/ only. Each request gets an id (the
`x-request-id` header, which the OpenAI SDK exposes as `_request_id`), and one
ApiRequest row: key, user, route pattern, status, tokens, latency. No
headers, query strings or bodies are logged, so neither keys nor document
text reach the log. An error Django answers before any API view runs (an
unknown route, a wrong method, a body over the size limit) still gets the
route's JSON error shape, never an HTML page or an empty body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from ragapp.api.errors import error_response, shape_of
from ragapp.api.models import ApiRequest

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/v1/")
REASONS = {
    404: _("Unknown request URL. Check the path and the method."),
    405: _("Method not allowed for this URL."),
    413: _("The request is too large."),
}


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


class ApiRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        request.request_id = "req_" + uuid.uuid4().hex
        request.api_tokens = 0
        started = time.monotonic()
        response = self.get_response(request)
        response = self._json_errors(request, response)
        response["x-request-id"] = request.request_id
        latency_ms = int((time.monotonic() - started) * 1000)
        self._log(request, response, latency_ms)
        return response

    @staticmethod
    def _json_errors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code < 400 or response.streaming:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        message = REASONS.get(status) or _("The request could not be served.")
        replaced = error_response(shape_of(request), status=status, message=message)
        # Keep what the inner middleware set (Allow, X-Frame-Options, the CSP,
        # Vary): only the body and its type change.
        for header, value in response.items():
            if header.lower() not in ("content-type", "content-length"):
                replaced[header] = value
        return replaced

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponse, latency_ms: int) -> None:
        caller = getattr(request, "auth", None)
        key = getattr(caller, "key", None)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "(unresolved)"
        try:
            row = ApiRequest.objects.create(
                key=key,
                user=key.user if key is not None else None,
                request_id=request.request_id,
                method=request.method or "",
                route=route[:200],
                status=response.status_code,
                tokens=getattr(request, "api_tokens", 0),
                latency_ms=latency_ms,
            )
        except Exception:  # the log must never fail the request it logs
            logger.exception("Could not log API request %s", request.request_id)
            return
        request.api_request_row = row.pk
        logger.info(
            "api request",
            extra={
                "request_id": request.request_id,
                "key_id": key.pk if key is not None else None,
                "route": route,
                "status": response.status_code,
                "latency_ms": latency_ms,
            },
        )
