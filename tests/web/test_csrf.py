"""CSRF on every route, and no state change by GET (T08).

Generated from the URLconf (tests/web/routes.py), so a route added later is
replayed with no edit. Every POST is made by a signed-in admin with a client
that enforces CSRF, as a browser's form and as htmx sends it (the token in
X-CSRFToken): without a token, and with a valid token from a foreign Origin,
Django's CSRF check must refuse it. A same-origin POST with the token must
then get past the check and reach the view with ids it accepts, which proves
the refusals were the check's and that the route was really exercised.
"""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.db import connection
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from tests.web.routes import Route, app_routes, build_world, sign_in, url_for

pytestmark = pytest.mark.django_db

ROUTES = app_routes(token_auth=False)
SAME_ORIGIN = "http://testserver"
FOREIGN_ORIGIN = "https://evil.example"
HTMX = {"HX-Request": "true"}
# Tables a GET may write to, and why. Everything else in ragapp's apps and
# auth must be byte-for-byte the same after any GET.
WRITTEN_BY_GET = {
    "answers.ConversationRead": "an admin opening someone's conversation is audited",
}
FINGERPRINTED_APPS = {
    config.label
    for config in apps.get_app_configs()
    if config.name.startswith("ragapp.") or config.label == "auth"
}


@pytest.fixture
def world(settings, tmp_path):
    return build_world(settings, tmp_path / "media")


@pytest.fixture
def admin_client(world) -> Client:
    """A signed-in admin's client that enforces CSRF, as a browser does."""
    client = Client(enforce_csrf_checks=True)
    sign_in(client, world, "admin")
    return client


def csrf_token(client: Client) -> str:
    """Give `client` a CSRF cookie, as any page would, and return its token."""
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    return token


def csrf_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "django.security.csrf"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_post_without_a_token_is_refused(admin_client, world, route, caplog):
    url = url_for(route, world, "admin")
    caplog.set_level(logging.WARNING, logger="django.security.csrf")
    for headers in ({}, HTMX):
        response = admin_client.post(
            url, {}, headers={"Origin": SAME_ORIGIN, **headers}
        )
        assert response.status_code == 403, f"POST {url} {headers} without a token"
    assert len(csrf_refusals(caplog)) == 2, caplog.text


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_post_from_a_foreign_origin_is_refused(admin_client, world, route, caplog):
    url = url_for(route, world, "admin")
    token = csrf_token(admin_client)
    caplog.set_level(logging.WARNING, logger="django.security.csrf")
    as_form = admin_client.post(
        url, {"csrfmiddlewaretoken": token}, headers={"Origin": FOREIGN_ORIGIN}
    )
    as_htmx = admin_client.post(
        url, {}, headers={"Origin": FOREIGN_ORIGIN, "X-CSRFToken": token, **HTMX}
    )
    assert (as_form.status_code, as_htmx.status_code) == (403, 403), url
    refusals = csrf_refusals(caplog)
    assert len(refusals) == 2, caplog.text
    assert all("Origin checking failed" in refusal for refusal in refusals), refusals


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_same_origin_post_with_the_token_reaches_the_view(
    admin_client, world, route, caplog
):
    """The control for the two refusals above: the check lets this one through."""
    url = url_for(route, world, "admin")
    token = csrf_token(admin_client)
    caplog.set_level(logging.WARNING, logger="django.security.csrf")
    response = admin_client.post(
        url, {}, headers={"Origin": SAME_ORIGIN, "X-CSRFToken": token, **HTMX}
    )
    assert csrf_refusals(caplog) == []
    assert response.status_code != 404, (
        f"POST {url} ({route.id}) answered 404: the ids the test filled in do "
        "not reach the view, so its CSRF protection is not really exercised. "
        "Make build_world() in tests/web/routes.py create the objects this "
        "route needs, and path_values() (or ROUTE_VALUES) name them."
    )


def fingerprint() -> dict[str, str]:
    """Return a digest of every row of ragapp's and auth's tables, per table."""
    tables = {
        model._meta.label: model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in FINGERPRINTED_APPS
        and model._meta.managed
        and not model._meta.proxy
        and model._meta.label not in WRITTEN_BY_GET
    }
    quote = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT %s, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "  # noqa: S608
        f"FROM {quote(table)} t"
        for table in tables.values()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(tables))
        return dict(cursor.fetchall())


@pytest.mark.parametrize("role", ["staff", "admin"])
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.id)
def test_get_changes_nothing(client, world, route: Route, role):
    """GET to any route, mutating ones included, writes nothing (or is a 405)."""
    sign_in(client, world, role)
    url = url_for(route, world, role)
    before = fingerprint()
    for headers in ({}, HTMX):
        response = client.get(url, headers=headers)
        if response.streaming and not response.is_async:
            response.getvalue()  # a download: read it, so the client closes it
    after = fingerprint()
    changed = sorted(table for table in before if before[table] != after[table])
    assert not changed, (
        f"GET {url} as {role} ({response.status_code}) changed {changed}. A GET "
        "must not change state: make the view POST-only (require_POST), or, "
        "for a write that is only a record of the reading, add it to "
        "WRITTEN_BY_GET with the reason."
    )
