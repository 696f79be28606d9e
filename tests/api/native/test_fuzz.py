"""Schemathesis against /api/openapi.json: no request makes the API fail (no 5xx).

Property-based: for every operation of the published schema, schemathesis
generates requests (valid, and invalid where the schema allows it) and sends
them with a real key through the WSGI app. The one property checked is
`not_a_server_error`; shapes and statuses have their own tests. Examples are
few per operation, to keep the run near a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ragapp.api.native.api import api

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("idle_runner"),
]

EXAMPLES_PER_OPERATION = 8


# The schema /api/openapi.json serves (test_the_fuzzed_schema_is_the_served_one),
# built here because parametrizing needs it when tests are collected, before
# any database: fetching it then would fail to log the request.
# (schemathesis.pytest.from_fixture would fetch it later, but its lazy
# loader sets `node._nodeid`, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_dict(api.get_openapi_schema())
schema.app = get_wsgi_application()


@pytest.fixture
def fuzz_key(wsgi_http, settings, make_key, boss, handbook) -> str:
    """An admin's key, so writes get past the permission checks."""
    # Rate limits would answer 429s instead of exercising the routes.
    settings.API_REQUESTS_PER_MINUTE = 0
    settings.API_USER_REQUESTS_PER_MINUTE = 0
    return make_key(boss).secret


def test_the_fuzzed_schema_is_the_served_one(wsgi_http):
    served = wsgi_http.get("http://testserver/api/openapi.json").json()
    assert served == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_is_answered_with_a_server_error(case, fuzz_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_key}"},
        checks=[not_a_server_error],
    )
