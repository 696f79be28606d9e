"""Checks on the configured PostgreSQL that the app cannot run without."""

from django.db.backends.base.base import BaseDatabaseWrapper

from ragapp.runtime.exceptions import MissingPgvectorError


def pgvector_available_version(connection: BaseDatabaseWrapper) -> str | None:
    """Return the pgvector version the server could install, or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def pgvector_installed_version(connection: BaseDatabaseWrapper) -> str | None:
    """Return the pgvector version installed in the current database, or None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return row[0] if row else None


def require_pgvector(connection: BaseDatabaseWrapper) -> str:
    """Return the available pgvector version or explain how to get one."""
    version = pgvector_available_version(connection)
    if version is None:
        params = connection.get_connection_params()
        where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        raise MissingPgvectorError(
            f"The PostgreSQL server at {where} (database "
            f"{connection.settings_dict['NAME']!r}) does not have the pgvector "
            "extension 'vector', which ragapp needs for embeddings. Install pgvector "
            "on that server (package postgresql-<version>-pgvector, or the "
            "pgvector/pgvector Docker image), or unset DATABASE_URL to use the "
            "embedded PostgreSQL that ships with pgvector."
        )
    return version
