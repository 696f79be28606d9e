"""`make run` end to end: `manage.py serve` on a fresh data dir, as a newcomer runs it.

Each run is a real supervisor process with its embedded PostgreSQL, bundled
Redis, uvicorn and Celery worker, stopped with SIGINT as Ctrl-C stops it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

START_TIMEOUT = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """One `manage.py serve` process and everything it printed."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "RAGAPP_DATA_DIR": str(data_dir),
            "RAGAPP_PORT": str(port),
            "RAGAPP_WORKER_CONCURRENCY": "1",
        }
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            self.env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                if text in self.output:
                    return
                pytest.fail(f"serve exited before printing {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not print {text!r}:\n{self.output}")
            time.sleep(0.2)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self) -> int:
        """Send SIGINT, as Ctrl-C in the terminal does, and wait for the exit."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=5)
        return code

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _sign_in(serve: Serve, username: str, password: str) -> httpx.Response:
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        return _sign_in_with(client, serve, username, password)


def _sign_in_with(
    client: httpx.Client, serve: Serve, username: str, password: str
) -> httpx.Response:
    page = client.get(serve.url("/accounts/login/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        serve.url("/accounts/login/"),
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": username,
            "password": password,
        },
        headers={"Referer": serve.url("/accounts/login/")},
    )


def _wait_for_demo_documents(client: httpx.Client, serve: Serve) -> tuple[int, int]:
    """Poll the home page until every demo document is indexed; return the counts."""
    deadline = time.monotonic() + 180
    while True:
        page = client.get(serve.url("/")).text
        found = re.search(r"(\d+) of (\d+) documents? ready", page)
        assert found, page
        ready, total = int(found.group(1)), int(found.group(2))
        if total and ready == total:
            return ready, total
        assert time.monotonic() < deadline, (
            f"demo documents not ready: {found.group(0)}"
        )
        time.sleep(1)


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().splitlines()[0])


def _wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        alive = [p for p in alive if psutil.Process(p).status() != "zombie"]
        time.sleep(0.1)
    return alive


def test_make_run_starts_everything_and_a_second_run_reuses_the_data(tmp_path):
    data_dir = tmp_path / "data"

    first = Serve(data_dir, _free_port())
    try:
        first.wait_for("ragapp is running at")
        password = re.search(r"password: (\S+)", first.output).group(1)
        assert "username: admin" in first.output
        assert password != "admin"

        health = httpx.get(first.url("/healthz"), timeout=10).json()
        assert health == {
            "database": "ok",
            "pgvector": health["pgvector"],
            "broker": "ok",
            "status": "ok",
        }
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            signed_in = _sign_in_with(browser, first, "admin", password)
            assert signed_in.url.path == "/"
            assert "ragapp documentation" in signed_in.text  # the demo collection
            # The demo collection holds ragapp's own docs, indexed by the worker.
            _ready, total = _wait_for_demo_documents(browser, first)
        assert "Demo: " in first.output
        assert total >= 2  # README.md and the docs/ pages

        # A task sent by another process of the app runs in serve's worker.
        sent = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "--no-imports",
                "-c",
                "from ragapp.runtime.tasks import worker_ping_task as t; "
                "print('pid', t.delay('hello').get(timeout=30)['pid'])",
            ],
            cwd=REPO_ROOT,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        worker_pid = int(sent.stdout.split()[-1])
        assert worker_pid in {p.pid for p in first.descendants()}

        children = [p.pid for p in first.descendants()]
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None
    finally:
        code = first.interrupt()
    assert code == 0, first.output
    assert "ragapp stopped." in first.output
    assert _wait_gone(children) == []
    assert _wait_gone([postmaster]) == []

    second = Serve(data_dir, _free_port())
    try:
        second.wait_for("ragapp is running at")
        assert "password:" not in second.output
        assert "Sign in with your existing account" in second.output
        assert "Demo: " not in second.output  # nothing uploaded twice
        assert _sign_in(second, "admin", password).url.path == "/"
    finally:
        assert second.interrupt() == 0, second.output


def test_port_in_use_is_reported_with_what_to_do(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        serve = Serve(tmp_path / "data", port)
        code = serve.process.wait(timeout=60)
        serve._reader.join(timeout=5)
    assert code != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in serve.output
    assert f"RAGAPP_PORT={port + 1} make run" in serve.output
    assert "Traceback" not in serve.output
    assert not (tmp_path / "data" / "postgres").exists()  # failed before starting


def test_unwritable_data_dir_is_reported_with_what_to_do(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    serve = Serve(blocker / "data", _free_port())
    code = serve.process.wait(timeout=60)
    serve._reader.join(timeout=5)
    assert code == 2
    assert "is not writable" in serve.output
    assert "RAGAPP_DATA_DIR" in serve.output
    assert "Traceback" not in serve.output
