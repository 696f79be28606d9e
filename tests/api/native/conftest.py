"""Fixtures for the native API: an httpx client per key, through the real app.

Requests go through the WSGI app in this process (every middleware and
route, on the test's database), as tests/api/conftest.py's `wsgi_http` does.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from django.core.wsgi import get_wsgi_application

from tests.factories import UserFactory

BASE_URL = "http://testserver/api"


@pytest.fixture
def api(wsgi_http) -> Callable[[str | None], httpx.Client]:
    """`api(secret)`: a client sending that key; `api(None)` sends none."""
    transport = httpx.WSGITransport(app=get_wsgi_application())

    def client(secret: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(transport=transport, base_url=BASE_URL, headers=headers)

    return client


@pytest.fixture
def staff_api(api, staff, make_key) -> httpx.Client:
    return api(make_key(staff).secret)


@pytest.fixture
def boss(db):
    """An administrator (superuser: the role groups do not survive a
    transactional test's flush)."""
    return UserFactory(username="boss", is_superuser=True)


@pytest.fixture
def boss_api(api, boss, make_key) -> httpx.Client:
    return api(make_key(boss).secret)


def assert_error(response: httpx.Response, status: int, code: str | None = None):
    """The native error shape: exactly {"error": {"code", "message"[, "param"]}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) - {"param"} == {"code", "message"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
