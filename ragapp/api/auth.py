"""Bearer-key authentication for both APIs, with the limits checked at the door.

One decision for every route: the key must be usable (not revoked, not
expired, its user active), then the key's and the user's request rates and
monthly budgets are checked. Keys are accepted only in the Authorization
header; one sent in the URL is refused and never logged (T05).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.security import HttpBearer

from ragapp.accounts.throttling import client_ip
from ragapp.api import limits
from ragapp.api.callers import Caller
from ragapp.api.exceptions import ApiError, AuthenticationError
from ragapp.api.keys import apikey_authenticate, apikey_touch, looks_like_key

URL_KEY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token"})


def _key_in_url(request: HttpRequest) -> bool:
    for name, values in request.GET.lists():
        if name.lower() in URL_KEY_NAMES:
            return True
        if any(looks_like_key(value) for value in values):
            return True
    return False


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer rag_…`; the request's `auth` becomes a Caller."""

    openapi_description = (
        "An API key made on the API keys page, or with `manage.py apikey create`."
    )

    def __call__(self, request: HttpRequest) -> Caller:
        if _key_in_url(request):
            raise ApiError(
                _(
                    "API keys must not be sent in the URL, where logs and "
                    "browser history keep them. Send the key in the "
                    "Authorization header and revoke the one you sent."
                ),
                code="api_key_in_url",
            )
        header = request.headers.get("Authorization", "")
        scheme, _space, secret = header.partition(" ")
        if not header:
            raise AuthenticationError(
                _(
                    "You didn't provide an API key. Send it in the "
                    "Authorization header: 'Authorization: Bearer YOUR_KEY'."
                ),
                code="missing_api_key",
            )
        ip = client_ip(request) or "unknown"
        if (wait := limits.failed_auth_blocked(ip)) is not None:
            raise limits.rate_limited(
                _("Too many requests with invalid API keys; try again later."), wait
            )
        if scheme.lower() != "bearer":
            limits.failed_auth_check(ip)
            raise AuthenticationError(
                _("Send the API key as 'Authorization: Bearer YOUR_KEY'.")
            )
        try:
            key = apikey_authenticate(secret.strip())
        except AuthenticationError:
            limits.failed_auth_check(ip)
            raise
        limits.rate_check(key)
        limits.budget_check(key)
        apikey_touch(key=key)
        caller = Caller(user=key.user, key=key)
        request.user = key.user
        return caller

    def authenticate(self, request: HttpRequest, token: str) -> Caller | None:
        return None  # __call__ does the whole job
