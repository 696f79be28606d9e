"""Login throttling (T06) with django-axes: failed sign-ins counted per client IP.

After AXES_FAILURE_LIMIT failures from one address, that address gets 429
with Retry-After until the cool-off ends, whatever username it tries; a
person signing in from elsewhere is not affected (locking by username alone
would let anyone lock a colleague out). The address is the connection's
own: X-Forwarded-For is never read here, so a client cannot spoof its way
past the count. Behind a TLS proxy, uvicorn's --forwarded-allow-ips sets
the connection's address from the proxy's header for trusted proxies only.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def client_ip(request: HttpRequest) -> str | None:
    """The peer address of the connection, as the ASGI server reports it."""
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    """The sign-in page, saying plainly to wait, with 429 and Retry-After."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = max(1, round(seconds / 60))
    response = render(
        request,
        "accounts/login.html",
        {
            "locked_out": _(
                "Too many failed sign-ins from your network. Try again in "
                "%(minutes)d minutes, or ask an admin to reset your password."
            )
            % {"minutes": minutes},
        },
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
