"""Fixtures for the APIs: keys, and the official `openai` SDK as the client.

The SDK talks to the Django app in this process through httpx's WSGI
transport: real requests through every middleware and route, on the test's
database. It is built with `_strict_response_validation=True`, so the SDK
checks each reply against its own types. Grounded answers are written by the
real background runner, on its own connection, so tests that ask commit
(transactional).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connections

from ragapp.answers import runner
from ragapp.api.keys import IssuedKey, apikey_create
from tests.answers.conftest import (  # noqa: F401 (fixtures)
    garden,
    handbook,
    media,
    readers,
    staff,
)

BASE_URL = "http://testserver/v1"


@pytest.fixture
def wsgi_http() -> Iterator[httpx.Client]:
    """An httpx client whose requests go to the Django app in this process.

    As Django's own test client does, requests do not close the database
    connection at their start and end: it holds the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    request_finished.connect(_close_in_other_threads)
    try:
        with warnings.catch_warnings():
            # WSGI serves a streamed (async) reply by reading it whole first;
            # tests/browser/test_api_live.py streams over ASGI for real.
            warnings.filterwarnings(
                "ignore", message="StreamingHttpResponse must consume asynchronous"
            )
            yield httpx.Client(
                transport=httpx.WSGITransport(app=get_wsgi_application())
            )
    finally:
        request_finished.disconnect(_close_in_other_threads)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _close_in_other_threads(**kwargs) -> None:
    """Close the connection of a request served in an SDK helper's thread.

    The SDK's batch upload sends from a thread pool; each thread's connection
    would otherwise outlive the test and block the test database's drop.
    """
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()


@pytest.fixture
def make_key(db) -> Callable[..., IssuedKey]:
    def make(user, **options) -> IssuedKey:
        options.setdefault("name", "test key")
        return apikey_create(user=user, **options)

    return make


@pytest.fixture
def staff_key(staff, make_key) -> str:  # noqa: F811 (the fixture)
    return make_key(staff).secret


@pytest.fixture
def sdk(wsgi_http) -> Callable[[str], openai.OpenAI]:
    def client(key: str, *, strict: bool = True, **options) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=key,
            base_url=BASE_URL,
            http_client=wsgi_http,
            max_retries=0,
            _strict_response_validation=strict,
            **options,
        )

    return client


@pytest.fixture
def staff_sdk(sdk, staff_key) -> openai.OpenAI:
    return sdk(staff_key)


@pytest.fixture
def idle_runner():
    """No test leaves an answer being written behind it."""
    yield
    assert runner.wait_idle(30), "an answer was still being written"
