"""Counting what an API request spent: its log row and the key's monthly budget."""

from __future__ import annotations

from django.db.models import F
from django.http import HttpRequest

from ragapp.api import limits
from ragapp.api.models import ApiRequest


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
    request.api_tokens = getattr(request, "api_tokens", 0) + tokens
    row = getattr(request, "api_request_row", None)
    if row is not None:
        ApiRequest.objects.filter(pk=row).update(tokens=F("tokens") + tokens)
