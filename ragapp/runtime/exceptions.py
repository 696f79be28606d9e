"""Errors of the runtime: each message says what went wrong and what to do."""


class RuntimeSetupError(Exception):
    """A start-up problem the operator can fix; the message is safe to print."""


class EmbeddedServiceError(RuntimeSetupError):
    """An embedded service (PostgreSQL, Redis) could not be started or reached."""


class MissingPgvectorError(RuntimeSetupError):
    """The configured PostgreSQL has no pgvector extension available."""
