"""Migration operations of the runtime app."""

from typing import Any

from pgvector.django import VectorExtension

from ragapp.runtime.database import require_pgvector


class CreatePgvectorExtension(VectorExtension):
    """CREATE EXTENSION vector, failing with a plain reason when it is missing.

    Without the check the operator sees `extension "vector" is not available`
    deep inside a migration traceback.
    """

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        """Check availability, then create the extension."""
        require_pgvector(schema_editor.connection)
        super().database_forwards(app_label, schema_editor, from_state, to_state)
