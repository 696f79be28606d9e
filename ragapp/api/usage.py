"""Counting what an API request spent: its log row and the key's monthly budget."""

from __future__ import annotations

import threading

from django.db.models import F
from django.http import HttpRequest

from ragapp.answers.models import Message
from ragapp.api import limits
from ragapp.api.models import ApiKey, ApiRequest


def tokens_spent(request: HttpRequest, tokens: int) -> None:
    """Record `tokens` against the request's key, now or once its stream ends.

    A non-streamed reply is logged after this runs (with `api_tokens`); a
    streamed one was logged when its headers went out, so its row is updated.
    """
    if tokens <= 0:
        return
    caller = getattr(request, "auth", None)
    key = getattr(caller, "key", None)
    if key is not None:
        limits.spend(key, tokens)
    _log_tokens(request, tokens)


def _log_tokens(request: HttpRequest, tokens: int) -> None:
    request.api_tokens = getattr(request, "api_tokens", 0) + tokens
    row = getattr(request, "api_request_row", None)
    if row is not None:
        ApiRequest.objects.filter(pk=row).update(tokens=F("tokens") + tokens)


class AnswerCharge:
    """Charges a key once for one background-written answer (T37).

    The request charges it when it sees the answer end; when it never does
    (the client hung up mid-stream, or asked for a background response), the
    writer's end hook charges the answer's recorded tokens instead, so
    leaving early spends the budget all the same. The lock makes it once,
    and makes a request that lost the race wait until the spend is written.
    """

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.key: ApiKey | None = getattr(getattr(request, "auth", None), "key", None)
        self._lock = threading.Lock()
        self._charged = False

    def by_request(self, tokens: int) -> None:
        """The request saw the answer end with `tokens`: log them, charge once."""
        if tokens > 0:
            _log_tokens(self.request, tokens)
        with self._lock:
            if self._charged:
                return
            self._charged = True
            if self.key is not None:
                limits.spend(self.key, tokens)

    def at_end(self, message_id: int) -> None:
        """The writer's end hook: charge the recorded tokens unless charged."""
        with self._lock:
            if self._charged:
                return
            self._charged = True
            if self.key is None:
                return
            for row in Message.objects.filter(pk=message_id).only(
                "prompt_tokens", "completion_tokens"
            ):
                limits.spend(self.key, row.prompt_tokens + row.completion_tokens)
