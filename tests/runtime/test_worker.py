"""A real Celery worker process executes what the web code sends, JSON only (T25)."""

import time
import uuid

import pytest
from celery.result import AsyncResult
from kombu import Connection, Exchange, Producer

from ragapp.celery import app
from ragapp.runtime.tasks import worker_ping_task

pytestmark = pytest.mark.worker


def test_task_sent_from_this_process_runs_in_the_worker_process(celery_worker):
    token = uuid.uuid4().hex
    result = worker_ping_task.delay(token).get(timeout=30)
    assert result["token"] == token
    assert result["pid"] in celery_worker.pids()
    assert result["pid"] != __import__("os").getpid()


def test_pickled_message_is_refused_and_never_executed(celery_worker):
    pickled_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.as_task_v2(
        pickled_id, worker_ping_task.name, args=("pickled",), kwargs={}
    )
    with Connection(app.conf.broker_url) as conn:
        producer = Producer(conn)
        producer.publish(
            body,
            serializer="pickle",
            headers=headers,
            exchange=Exchange(celery_worker.queue, type="direct"),
            routing_key=celery_worker.queue,
            declare=[],
            **properties,
        )
    # The worker takes one message at a time, so once a JSON task sent after
    # the pickled one is done, the pickled one has been dealt with.
    assert worker_ping_task.delay("after").get(timeout=30)["token"] == "after"
    deadline = time.monotonic() + 10
    while "ContentDisallowed" not in celery_worker.log():
        assert time.monotonic() < deadline, celery_worker.log()
        time.sleep(0.1)
    assert AsyncResult(pickled_id, app=app).state == "PENDING"
    assert "Refusing to deserialize untrusted content of type pickle" in (
        celery_worker.log()
    )


def test_celery_accepts_json_only():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.result_accept_content == ["json"]
