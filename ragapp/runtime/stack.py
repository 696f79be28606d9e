"""Run the whole app on one machine: database, broker, web server and worker.

`manage.py serve` (what `make run` calls) is a thin shell around these
functions. The supervisor owns every process it starts: children run in their
own sessions so a Ctrl-C reaches only the supervisor, which then stops them in
order (web, worker, broker, database) and waits for each.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

from ragapp.runtime import embedded_postgres, embedded_redis
from ragapp.runtime.database import require_pgvector
from ragapp.runtime.exceptions import RuntimeSetupError

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 20
READY_TIMEOUT_SECONDS = 120


@dataclass
class Child:
    """A supervised process and how to describe it to the operator."""

    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Stack:
    """What the supervisor started, so it can stop exactly that."""

    children: list[Child] = field(default_factory=list)
    stop_postgres: Path | None = None
    # Stop signals received so far; filled by `stop_signals`.
    signals: list[int] = field(default_factory=list)

    def add(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.children.append(Child(name, process))


def check_port_free(host: str, port: int) -> None:
    """Fail with advice if `host:port` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeSetupError(
                    f"Port {port} on {host} is already in use; another program (or "
                    "another ragapp) is listening there. Stop it, or pick another "
                    f"port: RAGAPP_PORT={port + 1} make run"
                ) from exc
            raise RuntimeSetupError(
                f"Cannot listen on {host}:{port} ({exc.strerror}). Set RAGAPP_HOST "
                "and RAGAPP_PORT to an address of this machine."
            ) from exc


def uses_embedded_postgres() -> bool:
    """Return whether the default database is the embedded server."""
    return "EMBEDDED_PGDATA" in settings.DATABASES["default"]


def uses_embedded_broker() -> bool:
    """Return whether Celery talks to the bundled Redis on the data-dir socket."""
    return settings.CELERY_BROKER_URL.startswith("redis+socket://") and (
        settings.CELERY_BROKER_URL.endswith(str(settings.EMBEDDED_REDIS_SOCKET))
    )


def prepare_database(stack: Stack) -> str:
    """Start the embedded server if configured, check pgvector, return a summary."""
    if uses_embedded_postgres():
        server = embedded_postgres.ensure_running(
            settings.DATABASES["default"]["EMBEDDED_PGDATA"]
        )
        if server.started_here:
            stack.stop_postgres = server.pgdata
        where = f"embedded PostgreSQL in {server.pgdata}"
    else:
        where = "PostgreSQL from DATABASE_URL"
    try:
        connection.ensure_connection()
    except Exception as exc:
        raise RuntimeSetupError(f"Cannot connect to the {where}: {exc}") from exc
    version = require_pgvector(connection)
    return f"{where} (pgvector {version})"


def start_broker(stack: Stack) -> str:
    """Start the bundled Redis when no broker is configured; return a summary."""
    if not uses_embedded_broker():
        return "broker from REDIS_URL / CELERY_BROKER_URL"
    process = embedded_redis.start(
        settings.EMBEDDED_REDIS_DIR, settings.EMBEDDED_REDIS_SOCKET
    )
    stack.add("broker", process)
    return f"bundled Redis on {settings.EMBEDDED_REDIS_SOCKET}"


def demo_document_paths() -> list[Path]:
    """Return ragapp's own documentation, the demo collection's documents."""
    return [
        settings.BASE_DIR / "README.md",
        *sorted((settings.BASE_DIR / "docs").glob("**/*.md")),
    ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RAGAPP_DATA_DIR"] = str(settings.DATA_DIR)
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_web(stack: Stack, host: str, port: int) -> None:
    """Start uvicorn serving the ASGI app."""
    command = [
        sys.executable, "-m", "uvicorn", "ragapp.asgi:application",
        "--host", host, "--port", str(port),
        "--no-server-header", "--lifespan", "off", "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip
    stack.add(
        "web",
        subprocess.Popen(command, env=_child_env(), start_new_session=True),  # noqa: S603
    )


def start_workers(stack: Stack, concurrency: int) -> None:
    """Start the two Celery workers: tasks and parsing, and embedding.

    The first serves the default queue with `concurrency` processes and also
    runs beat (one machine, one scheduler: the sweeper that re-sends lost
    ingestion work); the second serves only the embedding queue, one process
    with every core for the model.
    """
    host = socket.gethostname()
    common = [
        sys.executable, "-m", "celery", "-A", "ragapp", "worker",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    tasks = [
        *common,
        "--concurrency", str(concurrency),
        "--queues", settings.CELERY_TASK_DEFAULT_QUEUE,
        "--hostname", f"ragapp@{host}",
        "--beat", "--schedule", str(settings.DATA_DIR / "celerybeat-schedule"),
    ]  # fmt: skip
    embedder = [
        *common,
        "--concurrency", "1",
        "--queues", settings.EMBED_QUEUE,
        "--hostname", f"ragapp-embed@{host}",
    ]  # fmt: skip
    for name, command in (("worker", tasks), ("embedder", embedder)):
        stack.add(
            name,
            subprocess.Popen(command, env=_child_env(), start_new_session=True),  # noqa: S603
        )


def wait_until(
    check: Callable[[], bool], stack: Stack, timeout: float = READY_TIMEOUT_SECONDS
) -> bool:
    """Poll `check` until true; give up early on Ctrl-C or if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if stack.signals or dead_child(stack):
            return False
        time.sleep(0.25)
    return False


def wait_ready(stack: Stack, what: str, check: Callable[[], bool]) -> bool:
    """Wait for `check`; False on Ctrl-C, RuntimeSetupError when it cannot be."""
    if wait_until(check, stack):
        return True
    if stack.signals:
        return False
    child = dead_child(stack)
    if child is not None:
        raise RuntimeSetupError(
            f"The {child.name} process exited during start-up (code "
            f"{child.process.returncode}); its output above says why."
        )
    raise RuntimeSetupError(
        f"The {what} did not become ready within {READY_TIMEOUT_SECONDS} s; "
        "its output above says why."
    )


def web_answers(host: str, port: int) -> bool:
    """Return whether the web server answers its health check."""
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def worker_answers() -> bool:
    """Return whether both Celery workers answer a control ping."""
    from ragapp.celery import app

    try:
        return len(app.control.ping(timeout=1.0)) >= 2
    except Exception:
        return False


def dead_child(stack: Stack) -> Child | None:
    """Return the first supervised process that has exited, if any."""
    for child in stack.children:
        if child.process.poll() is not None:
            return child
    return None


@contextlib.contextmanager
def stop_signals(stack: Stack) -> Iterator[None]:
    """Record SIGINT/SIGTERM on `stack` instead of raising, so shutdown completes."""

    def handler(signum: int, frame: object) -> None:
        stack.signals.append(signum)

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def supervise(stack: Stack) -> int:
    """Block until a stop signal arrives or a child dies; return the exit code."""
    while not stack.signals:
        child = dead_child(stack)
        if child is not None:
            logger.error(
                "The %s process exited unexpectedly (code %s); stopping ragapp.",
                child.name,
                child.process.returncode,
            )
            return 1
        time.sleep(0.5)
    return 0


def shutdown(stack: Stack) -> None:
    """Stop web first (no new work), then worker, broker and database."""
    for child in reversed(stack.children):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while child.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if child.process.poll() is None:
                logger.warning("The %s process did not stop; killing it.", child.name)
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        # A worker's pool children live in its session; none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
    if stack.stop_postgres is not None:
        connection.close()
        embedded_postgres.stop(stack.stop_postgres)
