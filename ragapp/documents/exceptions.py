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


class PageImageError(DocumentsError):
    """A page of a document cannot be shown as an image; str() says why.

    `code` tells a view what to answer: not_pdf, missing_file and
    page_out_of_range mean there is no such page image; corrupt, encrypted,
    timeout, too_large and render_failed mean the file would not draw.
    """

    code = "page_image"
