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
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from ragapp.celery import app as celery_app
from ragapp.runtime import embedded_postgres
from tests import egress
from tests.factories import UserFactory
from tests.model_stub import STUB_API_KEY, ModelStub

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


# --- Evaluation data (../shared/eval beside the checkout, read in place) -------


def eval_dir() -> Path | None:
    """Return the shared evaluation data directory, if it is beside this checkout."""
    for candidate in (
        os.environ.get("RAGAPP_EVAL_DIR"),
        REPO_ROOT.parent / "shared" / "eval",
    ):
        if candidate and (Path(candidate) / "pdfs" / "SOURCE.md").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def eval_pdfs() -> Path:
    """The five real PDFs of the evaluation set, read in place (never copied)."""
    path = eval_dir()
    if path is None:
        pytest.skip("../shared/eval is not beside this checkout (set RAGAPP_EVAL_DIR)")
    return path / "pdfs"


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
    """Create the test database inside the embedded server (after it is up).

    Searches outside a transaction rank by vectors on threads that keep
    their own connections; those close first, or the test database could
    not be dropped.
    """
    from ragapp.retrieval.search import close_vector_side_connections

    yield
    close_vector_side_connections()


# --- Answer event log -------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def answer_events() -> Iterator[str]:
    """Answers' event streams go to the test Redis, under a prefix of this run's."""
    import redis

    prefix = f"ragapp-test-{uuid.uuid4().hex[:8]}:answer"
    settings.ANSWER_EVENTS_REDIS_URL = TEST_REDIS_URL
    settings.ANSWER_EVENTS_PREFIX = prefix
    yield prefix
    if _redis_answers(TEST_REDIS_URL):
        client = redis.Redis.from_url(TEST_REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


# --- Celery worker (RW in the reliability plan) ---------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session", autouse=True)
def celery_broker() -> str:
    """Point this process's Celery app at the test Redis and a queue of its own.

    Autouse and session-wide, so it runs before any test sends a task: Celery
    caches its producer pool and routes on first use, and a later change of
    configuration would not reach them.
    """
    queue = f"ragapp-test-{uuid.uuid4().hex[:8]}"
    celery_app.conf.update(
        broker_url=TEST_REDIS_URL,
        result_backend=TEST_REDIS_URL,
        task_default_queue=queue,
        task_routes={
            "ragapp.documents.tasks.document_embed_task": {"queue": f"{queue}.embed"}
        },
    )
    return queue


class Worker:
    """A real `celery worker` subprocess that tests can kill and start again.

    It uses the test database, the test Redis queue and its own data dir (so
    uploaded files go to a temporary media root the test process shares). The
    visibility timeout is 10 s so that messages of a killed worker come back
    within a test's patience.
    """

    VISIBILITY_TIMEOUT = 10

    def __init__(self, queue: str, database_url: str, data_dir: Path) -> None:
        self.queue = queue
        self.data_dir = data_dir
        self.log_path = data_dir / "worker.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": TEST_REDIS_URL,
            "RAGAPP_CELERY_QUEUE": queue,
            "RAGAPP_DATA_DIR": str(data_dir),
            "RAGAPP_CELERY_VISIBILITY_TIMEOUT": str(self.VISIBILITY_TIMEOUT),
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def media_root(self) -> Path:
        return self.data_dir / "media"

    def start(self) -> None:
        self.starts += 1
        command = [
            sys.executable, "-m", "celery", "-A", "ragapp", "worker",
            "--loglevel", "INFO", "--concurrency", "1", "--pool", "prefork",
            "--queues", f"{self.queue},{self.queue}.embed",
            "--hostname", f"{self.queue}-{self.starts}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while " ready." not in self.log()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"The Celery worker did not start:\n{self.log()}")
            time.sleep(0.2)

    def pids(self) -> set[int]:
        """Return the main process and its pool children."""
        main = psutil.Process(self.process.pid)
        return {main.pid, *(child.pid for child in main.children(recursive=True))}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the main process and its pool children, as a crash would."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            _stop_process_group(self.process)


@pytest.fixture(scope="session")
def celery_worker(
    celery_broker: str, django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[Worker]:
    """Start a real worker on the test database and the test Redis queue."""
    from django.db import connection

    if not _redis_answers(TEST_REDIS_URL):
        pytest.fail(
            f"No Redis answers at {TEST_REDIS_URL}. Run the suite with `make test`, "
            "which starts one, or start redis-server on 127.0.0.1:6379."
        )

    with django_db_blocker.unblock():
        params = connection.get_connection_params()
    database_url = (
        f"postgres://{params['user']}@/{params['dbname']}"
        f"?host={params['host']}&port={params.get('port') or 5432}"
    )
    worker = Worker(celery_broker, database_url, tmp_path_factory.mktemp("worker"))
    worker.start()
    _SESSION_WORKERS.append(worker)
    try:
        yield worker
    finally:
        worker.stop()


_SESSION_WORKERS: list[Worker] = []


@pytest.fixture
def worker_stopped(celery_broker: str) -> Iterator[None]:
    """Stop the session's worker, if one runs, while a test drives ingestion by hand.

    Transactional tests commit, so what they send reaches the shared test
    queue, and a live worker would do their work concurrently with the test's
    own steps. What the test sent is dropped before the worker starts again.
    """
    import redis

    running = [w for w in _SESSION_WORKERS if w.process and w.process.poll() is None]
    for worker in running:
        worker.stop()
    try:
        yield
    finally:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        for key in client.scan_iter(match=f"{celery_broker}*"):
            client.delete(key)
        for worker in running:
            worker.start()


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


# --- The OpenAI HTTP edge -------------------------------------------------------


@pytest.fixture
def openai_http(settings):
    """A fake OpenAI API speaking the real wire format (see tests/openai_fake.py)."""
    from tests.openai_fake import fake_openai

    yield from fake_openai(settings)


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


# --- The hostile model stub (HS in the reliability plan) -----------------------


@pytest.fixture(scope="session")
def model_stub_server() -> Iterator[ModelStub]:
    """Run one stub for the session; `model_stub` resets it for each test."""
    stub = ModelStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def model_stub(model_stub_server: ModelStub, settings) -> Iterator[ModelStub]:
    """The stub, reset, with the settings pointing every OpenAI client at it."""
    model_stub_server.reset()
    settings.OPENAI_BASE_URL = model_stub_server.base_url
    settings.OPENAI_API_KEY = STUB_API_KEY
    settings.MODEL_TIMEOUT_SECONDS = 2.0
    settings.FALLBACK_CHAT_MODEL = ""
    yield model_stub_server
    model_stub_server.reset()
