"""Security headers on every route, for every role (T07).

tests/runtime/test_security.py checks the deployment side (`check --deploy`
is clean in the production configuration, cookies are Secure, HttpOnly and
`__Host-` prefixed, HSTS is a year) and one page's headers. This crawls every
route the URLconf has (tests/web/routes.py), as anonymous, staff and admin,
as a page and as an htmx request, so a route added later is checked without
an edit. Every response must carry the policy; an HTML response with scripts
must name the policy's nonce on each of them, or the browser would refuse
them.
"""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponseBase

from tests.web.routes import ROLES, app_routes, build_world, sign_in, url_for

pytestmark = pytest.mark.django_db

ROUTES = app_routes()
STRICT_REFERRER_POLICIES = frozenset(
    {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
)
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
NONCE_ATTRIBUTE = re.compile(r"""\snonce=["']?([^"'\s>]+)""", re.IGNORECASE)
# An on...= attribute inside a tag: the policy blocks inline handlers, so
# one in a page is dead code at best.
INLINE_HANDLER = re.compile(r"<[a-z][^>]*?\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture
def world(settings, tmp_path):
    return build_world(settings, tmp_path / "media")


def csp_directives(policy: str) -> dict[str, list[str]]:
    """Split a Content-Security-Policy header into its directives' sources."""
    directives = {}
    for part in policy.split(";"):
        if words := part.split():
            directives[words[0].lower()] = words[1:]
    return directives


def header_problems(response: HttpResponseBase) -> list[str]:
    """Return what is missing or weak in a response's security headers."""
    problems = []
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if response.headers.get("X-Frame-Options") != "DENY":
        problems.append("X-Frame-Options is not DENY")
    if response.headers.get("Referrer-Policy") not in STRICT_REFERRER_POLICIES:
        problems.append(f"Referrer-Policy is {response.headers.get('Referrer-Policy')}")
    policy = response.headers.get("Content-Security-Policy")
    if not policy:
        return [*problems, "no Content-Security-Policy header"]
    directives = csp_directives(policy)
    if "sandbox" in directives and not _is_html(response):
        # An uploaded file served back (web.sources): the sandbox gives it an
        # opaque origin where nothing runs, stricter than the pages' policy.
        return problems
    for directive in ("object-src", "base-uri", "frame-ancestors"):
        if directives.get(directive) != ["'none'"]:
            problems.append(f"{directive} is {directives.get(directive)}, not 'none'")
    script_src = directives.get("script-src", directives.get("default-src", []))
    problems += [
        f"script-src allows {weak}"
        for weak in ("'unsafe-inline'", "'unsafe-eval'")
        if weak in script_src
    ]
    if _is_html(response):
        problems += _script_problems(
            response.content.decode(errors="replace"), script_src
        )
    return problems


def _is_html(response: HttpResponseBase) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return content_type.startswith("text/html") and not response.streaming


def _script_problems(html: str, script_src: list[str]) -> list[str]:
    nonces = {s[len("'nonce-") : -1] for s in script_src if s.startswith("'nonce-")}
    problems = []
    for tag in SCRIPT_TAG.findall(html):
        match = NONCE_ATTRIBUTE.search(tag)
        if not match or match.group(1) not in nonces:
            problems.append(f"{tag} does not carry the policy's nonce {nonces}")
    problems += [
        f"inline event handler the policy blocks: {tag}…"
        for tag in INLINE_HANDLER.findall(html)
    ]
    return problems


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_every_response_carries_the_security_headers(client, world, route, role):
    sign_in(client, world, role)
    url = url_for(route, world, role)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(url, headers=headers)
        _finish(response)
        assert response.status_code < 500, f"GET {url} as {role} failed"
        problems = header_problems(response)
        assert not problems, f"GET {url} {headers} as {role}: {problems}"


def _finish(response: HttpResponseBase) -> None:
    """Read a file download to its end, so the client closes the file.

    Never `response.close()` by hand: outside the client it sends
    request_finished, which closes the test's database connection. An event
    stream is left unread (it would wait for events).
    """
    if response.streaming and not response.is_async:
        response.getvalue()


def test_the_check_refuses_a_script_without_the_nonce_and_inline_handlers():
    """The crawl's own check, on markup it must refuse."""
    page = (
        '<script nonce="abc" src="/static/ok.js"></script>'
        '<script src="/static/x.js"></script><button onclick="go()">'
    )
    problems = _script_problems(page, ["'self'", "'nonce-abc'"])
    assert problems == [
        "<script src=\"/static/x.js\"> does not carry the policy's nonce {'abc'}",
        "inline event handler the policy blocks: <button onclick=…",
    ]
