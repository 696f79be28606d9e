"""Errors the parsers raise: a short machine code and a sentence safe to show.

The sentences are marked with `gettext_noop` rather than translated here: the
parser also runs in a bare child process with no Django settings, so the layer
that shows the message translates it (the code stays stable for machines).
"""

from __future__ import annotations


def gettext_noop(message: str) -> str:
    """Mark `message` for makemessages (which finds calls by this name).

    Django's own gettext_noop reads settings.USE_I18N, and the parse child
    is given no settings module (nor the secrets it would read).
    """
    return message


# Every code a ParseError can carry, with the sentence shown when no more specific
# one is given. Keep the codes stable: documents store them as failure reasons.
MESSAGES: dict[str, str] = {
    "empty": gettext_noop("The file is empty or has no pages."),
    "encrypted": gettext_noop(
        "The file is protected by a password; upload a copy without the password."
    ),
    "corrupt": gettext_noop(
        "The file is damaged or incomplete and could not be read; "
        "export or save it again and upload the new copy."
    ),
    "too_large": gettext_noop(
        "The file holds more data than ragapp is set to read; "
        "split it into smaller files."
    ),
    "compression_bomb": gettext_noop(
        "The file expands to far more data than its size suggests, "
        "so it was not opened."
    ),
    "unsafe_archive": gettext_noop(
        "The file's internal structure is unsafe (odd or duplicate entry names, "
        "links or overlapping entries), so it was not opened."
    ),
    "unsafe_xml": gettext_noop(
        "The file contains XML entity declarations, which documents from word "
        "processors never need, so it was not opened."
    ),
    "timeout": gettext_noop(
        "Reading the file took too long and was stopped; try a smaller or simpler file."
    ),
    "crashed": gettext_noop(
        "The reader stopped unexpectedly on this file; "
        "try saving it again in another program."
    ),
    "unreadable": gettext_noop("The file could not be read."),
    # Type checks (UnsupportedTypeError).
    "unsupported_type": gettext_noop(
        "This kind of file is not supported; upload a PDF, DOCX, Markdown, "
        "plain text or HTML file."
    ),
    "executable": gettext_noop("The file is a program, not a document."),
    "image": gettext_noop(
        "The file is an image; put it in a PDF or DOCX to have its text read."
    ),
    "media": gettext_noop("The file is audio or video, not a document."),
    "archive": gettext_noop(
        "The file is an archive; unpack it and upload the documents inside."
    ),
    "not_docx": gettext_noop(
        "The file is a ZIP archive but not a Word (DOCX) document."
    ),
    "binary": gettext_noop("The file holds binary data, not readable text."),
    "type_mismatch": gettext_noop(
        "The file's content does not match its name (for example a program or web "
        "page named .pdf); rename it correctly or upload the real document."
    ),
}


class ParseError(Exception):
    """A final, user-visible reason why a file yields no text.

    Final means retrying cannot help: the pipeline marks the document failed with
    `code` and `str(error)` instead of retrying.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in MESSAGES:
            raise ValueError(f"unknown parse error code {code!r}")
        self.code = code
        self.message = message or MESSAGES[code]
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str]]:
        """Keep `code` when the error crosses a pickle boundary (Celery results)."""
        return (type(self), (self.code, self.message))


class UnsupportedTypeError(ParseError):
    """The content is not one of SUPPORTED_TYPES, or disagrees with its name."""

    def __init__(
        self, code: str = "unsupported_type", message: str | None = None
    ) -> None:
        super().__init__(code, message)
