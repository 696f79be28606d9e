"""/healthz tells a load balancer whether the database and broker answer."""

import pytest

from ragapp.celery import app

pytestmark = pytest.mark.django_db


def test_healthy_when_database_with_pgvector_and_broker_answer(client, celery_broker):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["pgvector"].count(".") == 2
    assert "no-store" in response.headers["Cache-Control"]


def test_degraded_503_when_the_broker_is_down(client, celery_broker, monkeypatch):
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    monkeypatch.setitem(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"
    assert response.json()["status"] == "degraded"


def test_health_is_get_only(client):
    assert client.post("/healthz").status_code == 405
