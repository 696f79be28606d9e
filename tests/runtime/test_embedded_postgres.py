"""The embedded server starts, recovers from killed runs, and explains failures."""

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from ragapp.runtime import embedded_postgres
from ragapp.runtime.exceptions import EmbeddedServiceError

pytestmark = pytest.mark.slow


@pytest.fixture
def pgdata(tmp_path) -> Path:
    path = tmp_path / "pg"
    yield path
    embedded_postgres.stop(path)


def _select_one(server: embedded_postgres.EmbeddedPostgres) -> int:
    with psycopg.connect(server.conninfo()) as conn:
        return conn.execute("SELECT 1").fetchone()[0]


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def test_first_start_creates_a_cluster_with_pgvector_and_a_second_attaches(pgdata):
    first = embedded_postgres.ensure_running(pgdata)
    assert first.started_here
    embedded_postgres.ensure_database(first, "ragapp")
    with psycopg.connect(first.conninfo("ragapp"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        assert conn.execute("SELECT '[1,2]'::vector <=> '[2,4]'::vector").fetchone()[
            0
        ] == pytest.approx(0.0)
    second = embedded_postgres.ensure_running(pgdata)
    assert not second.started_here
    assert second.socket_dir == first.socket_dir


def test_server_killed_with_sigkill_is_restarted_on_next_use(pgdata):
    embedded_postgres.ensure_running(pgdata)
    pid = _postmaster_pid(pgdata)
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(timeout=10) if psutil.pid_exists(pid) else None
    server = embedded_postgres.ensure_running(pgdata)
    assert server.started_here
    assert _select_one(server) == 1


def test_stale_pid_file_naming_a_live_unrelated_process_is_cleared(pgdata):
    embedded_postgres.ensure_running(pgdata)
    pid_file = pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    embedded_postgres.stop(pgdata)
    # After a crash the recorded pid may belong to any process by now.
    impostor = subprocess.Popen(["sleep", "60"])
    try:
        lines[0] = str(impostor.pid)
        pid_file.write_text("\n".join(lines) + "\n")
        server = embedded_postgres.ensure_running(pgdata)
        assert server.started_here
        assert _select_one(server) == 1
        assert impostor.poll() is None  # the unrelated process was left alone
    finally:
        impostor.kill()
        impostor.wait()


def test_server_that_cannot_start_gives_the_log_and_what_to_do(pgdata):
    embedded_postgres.ensure_running(pgdata)
    embedded_postgres.stop(pgdata)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\nshared_buffers = 'lots'\n")
    with pytest.raises(EmbeddedServiceError) as excinfo:
        embedded_postgres.ensure_running(pgdata)
    message = str(excinfo.value)
    assert "did not start" in message
    assert "shared_buffers" in message  # the server's own complaint, from its log
    assert "try again" in message


def test_cluster_from_another_postgres_major_version_is_explained(pgdata):
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")
    with pytest.raises(EmbeddedServiceError, match="made by PostgreSQL 15"):
        embedded_postgres.ensure_running(pgdata)


def test_stop_ends_the_server(pgdata):
    embedded_postgres.ensure_running(pgdata)
    pid = _postmaster_pid(pgdata)
    embedded_postgres.stop(pgdata)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid)


def test_server_config_takes_a_quarter_of_memory_within_bounds():
    mb = 1024 * 1024
    assert embedded_postgres.server_config(24 * 1024 * mb) == {
        "shared_buffers": "4096MB"
    }
    assert embedded_postgres.server_config(8 * 1024 * mb) == {
        "shared_buffers": "2048MB"
    }
    assert embedded_postgres.server_config(256 * mb) == {"shared_buffers": "128MB"}


def test_first_start_already_runs_with_ragapp_settings_and_operators_edits_win(pgdata):
    wanted = embedded_postgres.server_config(embedded_postgres.host_memory())
    server = embedded_postgres.ensure_running(pgdata)
    with psycopg.connect(server.conninfo()) as conn:
        shown = conn.execute(
            "SELECT setting::bigint * 8192 / 1048576 || 'MB', sourcefile"
            " FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()
    assert shown == (wanted["shared_buffers"], str(pgdata / "ragapp.conf"))
    embedded_postgres.stop(pgdata)
    # An operator's value after the include line overrides ragapp's.
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = '96MB'\n")
    server = embedded_postgres.ensure_running(pgdata)
    with psycopg.connect(server.conninfo()) as conn:
        assert conn.execute("SHOW shared_buffers").fetchone()[0] == "96MB"
    conf = (pgdata / "postgresql.conf").read_text()
    assert conf.count("include_if_exists = 'ragapp.conf'") == 1


@pytest.mark.parametrize(
    "v2, v1, expected_gb",
    [
        ("max", None, 24),  # v2 without a limit: the host's memory
        ("2147483648", None, 2),  # v2 limit
        (None, "1073741824", 1),  # v1 limit
        (None, "9223372036854771712", 24),  # v1 without a limit: huge
        (None, None, 24),  # no cgroup files at all
    ],
)
def test_host_memory_is_the_containers_limit_when_it_has_one(
    tmp_path, monkeypatch, v2, v1, expected_gb
):
    gb = 1024**3
    files = []
    for name, value in (("v2", v2), ("v1", v1)):
        path = tmp_path / name
        if value is not None:
            path.write_text(value + "\n")
        files.append(path)
    monkeypatch.setattr(embedded_postgres, "_CGROUP_MEMORY_LIMITS", tuple(files))
    monkeypatch.setattr(
        embedded_postgres.psutil,
        "virtual_memory",
        lambda: type("Memory", (), {"total": 24 * gb})(),
    )
    assert embedded_postgres.host_memory() == expected_gb * gb
