"""Django's PostgreSQL backend, pointed at the embedded server.

Starting the server lazily from the backend, rather than in settings, keeps
importing settings free of side effects and lets any process (web, worker,
manage.py, pytest) bring a stopped server back on its next connection.
"""

from typing import Any

from django.db.backends.postgresql import base

from ragapp.runtime import embedded_postgres


class DatabaseWrapper(base.DatabaseWrapper):
    """Connect over the embedded server's Unix socket, starting it if needed."""

    def get_connection_params(self) -> dict[str, Any]:
        """Ensure the server runs, then aim libpq at its socket."""
        params = super().get_connection_params()
        server = embedded_postgres.ensure_running(self.settings_dict["EMBEDDED_PGDATA"])
        dbname = params.get("dbname") or "postgres"
        if not dbname.startswith("test_") and dbname != "postgres":
            # The application database is created on first use; test databases
            # are created (and destroyed) by the test runner itself.
            embedded_postgres.ensure_database(server, dbname)
        params["host"] = str(server.socket_dir)
        params["port"] = server.port
        params["user"] = "postgres"
        return params
