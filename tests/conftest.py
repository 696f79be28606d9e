"""Shared fixtures: the embedded database, the egress guard, a real Celery worker.

Everything here is real: the embedded PostgreSQL + pgvector the app itself uses
(a test database in it), Redis on 127.0.0.1:6379 (`make test` starts it when it
is not running) and a `celery worker` subprocess. Only the network edge is ever
faked, and the egress guard makes sure nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from ragapp.celery import app as celery_app
from ragapp.runtime import embedded_postgres
from tests import egress
from tests.factories import UserFactory

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_URL = os.environ.get("RAGAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


# --- Egress guard (EG in the reliability plan) ----------------------------------


@pytest.fixture(scope="session", autouse=True)
def egress_guard() -> Iterator[egress.EgressGuard]:
    """Refuse every connection that would leave loopback, for the whole session."""
    guard = egress.EgressGuard()
    guard.install()
    yield guard
    guard.uninstall()
    assert guard.blocked == [], f"tests tried to leave the machine: {guard.blocked}"


# --- Static files ---------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def collected_static(tmp_path_factory) -> Iterator[Path]:
    """Collect static files as a deployment does, so pages resolve hashed names."""
    from django.core.management import call_command
    from django.test.utils import override_settings

    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root


# --- Database -------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[embedded_postgres.EmbeddedPostgres | None]:
    """Run the app's own embedded server; stop it afterwards if the tests started it."""
    pgdata = settings.DATABASES["default"].get("EMBEDDED_PGDATA")
    if pgdata is None:
        yield None  # DATABASE_URL given: tests use that server
        return
    server = embedded_postgres.ensure_running(pgdata)
    yield server
    if server.started_here:
        from django.db import connections

        connections.close_all()
        embedded_postgres.stop(server.pgdata)


@pytest.fixture(scope="session")
def django_db_setup(embedded_server, django_db_setup):
    """Create the test database inside the embedded server (after it is up)."""
    return


# --- Celery worker (RW in the reliability plan) ---------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@dataclass
class Worker:
    """A running `celery worker` subprocess and where its output goes."""

    process: subprocess.Popen[bytes]
    queue: str
    log_path: Path

    def pids(self) -> set[int]:
        """Return the main process and its pool children."""
        main = psutil.Process(self.process.pid)
        return {main.pid, *(child.pid for child in main.children(recursive=True))}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def celery_broker() -> str:
    """Point this process's Celery app at the test Redis, before it connects."""
    if not _redis_answers(TEST_REDIS_URL):
        pytest.fail(
            f"No Redis answers at {TEST_REDIS_URL}. Run the suite with `make test`, "
            "which starts one, or start redis-server on 127.0.0.1:6379."
        )
    queue = f"ragapp-test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.update(
        broker_url=TEST_REDIS_URL,
        result_backend=TEST_REDIS_URL,
        task_default_queue=queue,
    )
    return queue


@pytest.fixture(scope="session")
def celery_worker(
    celery_broker: str, django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[Worker]:
    """Start a real worker on the test database and the test Redis queue."""
    from django.db import connection

    with django_db_blocker.unblock():
        params = connection.get_connection_params()
    database_url = (
        f"postgres://{params['user']}@/{params['dbname']}"
        f"?host={params['host']}&port={params.get('port') or 5432}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": TEST_REDIS_URL,
        "RAGAPP_CELERY_QUEUE": celery_broker,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "ragapp", "worker",
        "--loglevel", "INFO", "--concurrency", "1", "--pool", "prefork",
        "--queues", celery_broker, "--hostname", f"{celery_broker}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, celery_broker, log_path)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in worker.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"The Celery worker did not start:\n{worker.log()}")
            time.sleep(0.2)
        yield worker
    finally:
        _stop_process_group(process)


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --- People ---------------------------------------------------------------------


@pytest.fixture
def staff_group(db) -> Group:
    return Group.objects.get(name="Staff")


@pytest.fixture
def admin_user(db):
    return UserFactory(is_staff=True, is_superuser=True, username="boss")


@pytest.fixture
def staff_user(db, staff_group):
    user = UserFactory(username="reader")
    user.groups.add(staff_group)
    return user
