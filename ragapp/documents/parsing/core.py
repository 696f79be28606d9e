"""Parse bytes of a sniffed type into a ParsedDocument, in this process."""

from __future__ import annotations

import dataclasses
import time
import zipfile

from ragapp.documents.parsing.base import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN_TEXT,
    SUPPORTED_TYPES,
    TEXT_TYPES,
    ParsedDocument,
    ParseLimits,
)
from ragapp.documents.parsing.errors import ParseError, UnsupportedTypeError
from ragapp.documents.parsing.hidden import InvisibleCharacters
from ragapp.documents.parsing.sniff import sniff_content_type


def parse_bytes(
    data: bytes, *, content_type: str, limits: ParseLimits
) -> ParsedDocument:
    """Return the structured text of `data`, parsed as `content_type`.

    ParseError (and its subclass UnsupportedTypeError) is the only exception
    that escapes: every library error becomes one, so a caller can mark the
    document failed with a reason and never retry. The content is sniffed again
    and must agree with `content_type`, so a caller that passes the wrong type
    cannot make a parser read a file it was not written for.

    No time or memory limit applies in-process; `parse_file_isolated` adds them.
    """
    started = time.monotonic()
    try:
        _check_type(data, content_type)
        if len(data) > limits.max_chars * 4 and content_type in TEXT_TYPES:
            raise _too_much_text(limits)  # even UTF-32 needs no more bytes
        document = _parse(data, content_type, limits, started)
        _check_size(document, limits)
        return document
    except ParseError:
        raise
    except MemoryError as exc:
        raise ParseError("too_large") from exc
    except RecursionError as exc:
        raise ParseError(
            "unreadable", "The file is nested too deeply to be read."
        ) from exc
    except (UnicodeError, zipfile.BadZipFile, EOFError) as exc:
        raise ParseError("corrupt") from exc
    except Exception as exc:  # the documented contract: ParseError only
        raise ParseError(
            "unreadable", f"The file could not be read ({type(exc).__name__})."
        ) from exc


_CLAIMED_NAMES = {PDF: "document.pdf", DOCX: "document.docx"}


def _check_type(data: bytes, content_type: str) -> None:
    if content_type not in SUPPORTED_TYPES:
        raise UnsupportedTypeError("unsupported_type")
    # Sniff as if the file were named for the claimed type, so the refusal
    # reads as it would for an upload (a ZIP claimed as DOCX is "not_docx").
    actual = sniff_content_type(data, _CLAIMED_NAMES.get(content_type, ""))
    if content_type in TEXT_TYPES and actual in TEXT_TYPES:
        return  # Markdown, plain text and HTML are choices among readings of text
    if actual != content_type:
        raise UnsupportedTypeError("type_mismatch")


def _parse(
    data: bytes, content_type: str, limits: ParseLimits, started: float
) -> ParsedDocument:
    if content_type == PDF:
        from ragapp.documents.parsing.pdf import deadline_for, parse_pdf

        return strip_invisible(
            parse_pdf(data, limits, deadline=deadline_for(limits, started))
        )
    if content_type == DOCX:
        from ragapp.documents.parsing.wordml import parse_docx

        document = parse_docx(data, limits)
    elif content_type == HTML:
        from ragapp.documents.parsing.htmltext import parse_html

        document = parse_html(data)
    elif content_type == MARKDOWN:
        from ragapp.documents.parsing.markdown import parse_markdown

        document = parse_markdown(data)
    else:
        if content_type != PLAIN_TEXT:
            raise UnsupportedTypeError("unsupported_type")
        from ragapp.documents.parsing.plaintext import parse_plain_text

        document = parse_plain_text(data)
    document = strip_invisible(document)
    if not document.blocks:
        raise ParseError("empty", "The file holds no text.")
    return document


def strip_invisible(document: ParsedDocument) -> ParsedDocument:
    """Remove invisible characters from every text of `document`, warning if any hid text.

    Done here, once for every format, so no parser can forget it
    (ragapp.documents.parsing.hidden says why these characters go).
    """
    invisible = InvisibleCharacters()
    # Headings repeat block texts (and titles often do): strip them uncounted.
    repeated = InvisibleCharacters()
    blocks = []
    texts = set()
    for block in document.blocks:
        texts.add(block.text)
        text = invisible.strip(block.text)
        if text.strip():
            blocks.append(
                dataclasses.replace(
                    block, text=text, heading=repeated.strip(block.heading)
                )
            )
    title_counter = repeated if document.title in texts else invisible
    return dataclasses.replace(
        document,
        title=title_counter.strip(document.title).strip(),
        blocks=blocks,
        warnings=[*document.warnings, *invisible.warnings()],
    )


def _check_size(document: ParsedDocument, limits: ParseLimits) -> None:
    chars = sum(len(block.text) for block in document.blocks)
    if chars > limits.max_chars:
        raise _too_much_text(limits)


def _too_much_text(limits: ParseLimits) -> ParseError:
    return ParseError(
        "too_large",
        f"The file holds more than {limits.max_chars:,} characters of text; "
        "split it into smaller files.",
    )
