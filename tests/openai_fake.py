"""The OpenAI HTTP edge, faked with respx at the transport the SDK really uses.

openai 3.x sends through httpx2/httpcore2, not httpx/httpcore, so respx's default
mocker never sees its requests. respx picks a mocker by name (`using=`); this one
patches httpcore2's connection classes the way respx's own `httpcore` mocker
patches httpcore's. Everything above the transport (SDK, retries, parsing) runs
for real, and an unmatched request fails instead of reaching a network.
"""

from __future__ import annotations

from collections.abc import Iterator

import respx
from respx.mocks import HTTPCoreMocker


class HTTPCore2Mocker(HTTPCoreMocker):
    """Intercept httpcore2 the way respx intercepts httpcore."""

    name = "ragapp-httpcore2"
    targets = [
        "httpcore2._sync.connection.HTTPConnection",
        "httpcore2._sync.connection_pool.ConnectionPool",
        "httpcore2._sync.http_proxy.HTTPProxy",
        "httpcore2._async.connection.AsyncHTTPConnection",
        "httpcore2._async.connection_pool.AsyncConnectionPool",
        "httpcore2._async.http_proxy.AsyncHTTPProxy",
    ]


OPENAI_BASE_URL = "http://openai.test/v1"


def fake_openai(settings) -> Iterator[respx.Router]:
    """Point the settings at a fake OpenAI API and yield its respx router."""
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = OPENAI_BASE_URL
    settings.MODEL_TIMEOUT_SECONDS = 5.0
    with respx.mock(using=HTTPCore2Mocker.name, base_url=OPENAI_BASE_URL) as router:
        yield router
