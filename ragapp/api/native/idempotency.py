"""`Idempotency-Key` on writes: the same request twice is done once.

A client that lost the reply to an upload sends it again with the same
Idempotency-Key; within 24 hours the same key, caller (API key) and route
get the first reply back and nothing is uploaded twice. The same
Idempotency-Key with a different body is a 422: it names another request.
While the first is still running, a second is a 409. Only successful replies
are kept; after an error the client may try again with the same key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.api.callers import Caller
from ragapp.api.exceptions import ApiError, ConflictError
from ragapp.api.models import IdempotentRequest

KEEP = timedelta(hours=24)
# A first request still without a reply after this is taken to have died.
LEASE = timedelta(minutes=10)
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def _check_key(value: str) -> str:
    if not KEY_PATTERN.match(value):
        raise ApiError(
            _(
                "The Idempotency-Key header must be 1 to 255 printable ASCII "
                "characters without spaces, e.g. a UUID."
            ),
            param=HEADER,
        )
    return value


def _claim(
    *, caller: Caller, route: str, idempotency_key: str, fingerprint: str
) -> IdempotentRequest | Reply:
    """Record the request as running, or return the reply it already got."""
    now = timezone.now()
    with transaction.atomic():
        IdempotentRequest.objects.filter(
            key=caller.key, created_at__lt=now - KEEP
        ).delete()
        IdempotentRequest.objects.filter(
            key=caller.key,
            route=route,
            idempotency_key=idempotency_key,
            status__isnull=True,
            created_at__lt=now - LEASE,
        ).delete()
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(
                    key=caller.key,
                    route=route,
                    idempotency_key=idempotency_key,
                    fingerprint=fingerprint,
                )
        except IntegrityError:
            pass
        first = IdempotentRequest.objects.get(
            key=caller.key, route=route, idempotency_key=idempotency_key
        )
    if first.fingerprint != fingerprint:
        raise ApiError(
            _(
                "This Idempotency-Key was used for a different request in the "
                "last 24 hours; use a new key for a new request."
            ),
            param=HEADER,
            code="idempotency_key_reused",
            status=422,
        )
    if first.status is None:
        raise ConflictError(
            _(
                "A request with this Idempotency-Key is still being processed; "
                "wait for its reply, then send again."
            ),
            param=HEADER,
            code="idempotency_key_in_use",
        )
    return Reply(status=first.status, body=first.response, replayed=True)


def idempotent(
    request: HttpRequest,
    *,
    idempotency_key: str | None,
    fingerprint: str,
    run: Callable[[], Reply],
) -> Reply:
    """Run `run` once per Idempotency-Key; without one, simply run it."""
    if idempotency_key is None:
        return run()
    caller: Caller = request.auth
    route = f"{request.method} {request.path}"[:300]
    claimed = _claim(
        caller=caller,
        route=route,
        idempotency_key=_check_key(idempotency_key),
        fingerprint=fingerprint,
    )
    if isinstance(claimed, Reply):
        return claimed
    try:
        reply = run()
    except BaseException:
        IdempotentRequest.objects.filter(pk=claimed.pk).delete()
        raise
    IdempotentRequest.objects.filter(pk=claimed.pk).update(
        status=reply.status, response=reply.body
    )
    return reply
