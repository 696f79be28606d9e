"""Errors of the documents app; messages are safe to show to the uploader."""


class DocumentsError(Exception):
    """Base class: `code` is a short machine reason, str() a plain sentence."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class DocumentActionError(DocumentsError):
    """The requested action does not apply to the document in its state."""

    code = "invalid_state"
