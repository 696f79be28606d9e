"""DATABASE_URL pointing at a PostgreSQL without pgvector fails with a clear reason.

Uses the machine's own PostgreSQL on 127.0.0.1:5432 (Debian's, which has no
pgvector package); where none runs, `make test` has nothing to point at.
"""

import uuid

import psycopg
import pytest

from tests.processes import manage

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def database_without_pgvector():
    try:
        admin = psycopg.connect(SYSTEM_PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL without pgvector on 127.0.0.1:5432 ({exc})")
    with admin:
        if admin.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone():
            pytest.skip("the PostgreSQL on 127.0.0.1:5432 has pgvector")
        name = f"ragapp_nopgvector_{uuid.uuid4().hex[:8]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgres://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrate_names_the_missing_extension_without_a_traceback(
    database_without_pgvector,
):
    result = manage("migrate", env={"DATABASE_URL": database_without_pgvector})
    assert result.returncode != 0
    assert "does not have the pgvector extension 'vector'" in result.stderr
    assert "unset DATABASE_URL to use the embedded PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_database_url_that_is_not_postgresql_is_refused():
    result = manage("check", env={"DATABASE_URL": "sqlite:///tmp/x.db"})
    assert result.returncode == 2
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
