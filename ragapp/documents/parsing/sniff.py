"""Decide a file's type from its content, never from what the client claims.

Only PDF, DOCX and text survive. Content decides; the file name only chooses
among the text types (Markdown, plain text, HTML) and must not contradict the
content: an EXE, an HTML page or a ZIP named `.pdf` is refused, as are
PDF/ZIP and PDF/HTML polyglots.

DOCX is told apart from other ZIPs by the package's `[Content_Types].xml`,
which sits in the ZIP directory at the end of the file: pass the whole file as
`head` for DOCX to be recognised (a cut-off ZIP falls back to the member names
in its local headers). Binary files that are refused are named with puremagic,
a maintained pure-Python signature database, so the reason says "image" or
"archive" rather than just "binary"; executables and the formats that matter
here are checked explicitly first because puremagic ranks the bare "MZ" of a
Windows program below other guesses.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from ragapp.documents.parsing.base import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT
from ragapp.documents.parsing.errors import ParseError, UnsupportedTypeError
from ragapp.documents.parsing.plaintext import (
    bom_encoding,
    looks_binary,
    utf16_without_bom,
)
from ragapp.documents.parsing.wordml import WORD_MAIN_TYPES, main_document_type
from ragapp.documents.parsing.zipcheck import open_zip

PDF_EXTENSIONS = frozenset({".pdf"})
DOCX_EXTENSIONS = frozenset({".docx"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
PLAIN_TEXT_EXTENSIONS = frozenset(
    {".txt", ".text", ".log", ".csv", ".tsv", ".rst", ".adoc", ".org", ".ini", ".cfg",
     ".conf", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".xml"}
)  # fmt: skip
# Names that promise a binary format: text content under one of these names is a
# mismatch, not a text file.
BINARY_EXTENSIONS = frozenset(
    {".exe", ".dll", ".com", ".scr", ".msi", ".bat", ".cmd", ".ps1", ".sh", ".bin",
     ".so", ".dylib", ".elf", ".jar", ".apk", ".app", ".dmg", ".iso", ".img",
     ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic",
     ".svg", ".ico", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar",
     ".zst", ".doc", ".docm", ".dotx", ".dot", ".xls", ".xlsx", ".xlsm", ".ppt",
     ".pptx", ".odt", ".ods", ".odp", ".rtf", ".epub", ".mp3", ".mp4", ".wav",
     ".avi", ".mov", ".mkv", ".webm", ".ogg", ".flac", ".ps", ".eps", ".swf"}
)  # fmt: skip
_EXECUTABLE_MAGIC = (
    b"MZ",  # Windows PE / DOS
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O 32 and 64 bit, both byte orders
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal, Java class
    b"\x00asm",  # WebAssembly
    b"dex\n",  # Android
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_UNSUPPORTED_TEXT_MAGIC = (b"{\\rtf", b"%!PS", b"%FDF-")
_PDF_HEADER = re.compile(rb"%PDF-\d")
_PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")
_WHITESPACE = b" \t\r\n\x0c"
# PDF readers accept the header anywhere in the first kilobyte.
_PDF_HEADER_WINDOW = 1024
_ZIP_TAIL_WINDOW = 65536 + 22  # the end-of-directory record and its comment
_LOCAL_HEADER = re.compile(rb"PK\x03\x04.{22}(..)(..)", re.DOTALL)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_MARKDOWN_HINT = re.compile(
    r"^(?:#{1,6}\s+\S|```|~~~|\s{0,3}[-*+]\s+\[[ xX]\]\s)", re.M
)
_ARCHIVE_MIME = re.compile(r"zip|gzip|x-7z|rar|x-tar|bzip|x-xz|zstd|x-lzma|cab|archive")
_EXECUTABLE_MIME = re.compile(r"executable|x-msdownload|x-dosexec|x-sharedlib|mach")


def extension(filename: str) -> str:
    """Return the lower-case last suffix of a client-supplied name ("" if none)."""
    name = PurePath(filename.replace("\\", "/").replace("\x00", "")).name
    return PurePath(name).suffix.lower()


def sniff_content_type(head: bytes, filename: str) -> str:
    """Return the MIME type to parse `head` as, or raise UnsupportedTypeError.

    `head` is the file's start: at least 64 KiB, and the whole file for DOCX
    and to catch a ZIP appended to a PDF. An empty file raises
    ParseError("empty").
    """
    if not head.strip(_WHITESPACE):
        raise ParseError("empty")
    ext = extension(filename)
    if head.startswith(_EXECUTABLE_MAGIC):
        raise UnsupportedTypeError("executable")
    pdf_at = _pdf_header_offset(head)
    if head.startswith(_ZIP_MAGIC):
        if pdf_at is not None:
            raise UnsupportedTypeError("type_mismatch")  # ZIP/PDF polyglot
        return _zip_type(head, ext)
    if pdf_at is not None:
        if head[:pdf_at].strip(_WHITESPACE) and _PDF_OBJECT.search(head):
            raise UnsupportedTypeError("type_mismatch")  # HTML/PDF and the like
        if pdf_at == 0 or not head[:pdf_at].strip(_WHITESPACE):
            if _has_zip_directory(head):
                raise UnsupportedTypeError("type_mismatch")  # PDF/ZIP polyglot
            return _require(PDF, ext, PDF_EXTENSIONS)
    if head.startswith(_UNSUPPORTED_TEXT_MAGIC):
        raise UnsupportedTypeError("unsupported_type")
    if not _is_text(head):
        raise UnsupportedTypeError(_binary_reason(head))
    return _text_type(head, ext)


def _pdf_header_offset(head: bytes) -> int | None:
    match = _PDF_HEADER.search(head, 0, _PDF_HEADER_WINDOW + 6)
    return match.start() if match and match.start() <= _PDF_HEADER_WINDOW else None


def _require(content_type: str, ext: str, allowed: frozenset[str]) -> str:
    """Return `content_type` unless the name promises a different type."""
    if ext and ext not in allowed:
        raise UnsupportedTypeError("type_mismatch")
    return content_type


def _has_zip_directory(data: bytes) -> bool:
    if b"PK\x05\x06" not in data[-_ZIP_TAIL_WINDOW:]:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return bool(archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        return False


def _zip_type(head: bytes, ext: str) -> str:
    """Return DOCX for a Word package; refuse every other ZIP."""
    try:
        archive = open_zip(head)
    except ParseError:
        archive = None
    if archive is not None:
        with archive:
            content_type = main_document_type(archive)
        is_docx = content_type in WORD_MAIN_TYPES
    else:
        is_docx = b"word/document.xml" in _local_member_names(head)
    if is_docx:
        return _require(DOCX, ext, DOCX_EXTENSIONS)
    if ext in DOCX_EXTENSIONS:
        raise UnsupportedTypeError("not_docx")
    raise UnsupportedTypeError("archive")


def _local_member_names(head: bytes) -> set[bytes]:
    """Return member names from the local headers in a possibly cut-off ZIP."""
    names = set()
    for match in _LOCAL_HEADER.finditer(head):
        name_length = int.from_bytes(match.group(1), "little")
        start = match.end()
        names.add(head[start : start + name_length])
        if len(names) > 1000:
            break
    return names


def _is_text(head: bytes) -> bool:
    if bom_encoding(head) or utf16_without_bom(head):
        return True
    return not looks_binary(head)


def _binary_reason(head: bytes) -> str:
    """Name what kind of binary file this is, for the rejection reason."""
    import puremagic

    try:
        matches = puremagic.magic_string(head[:65536])
    except (puremagic.PureError, ValueError):
        return "binary"
    for match in matches[:3]:
        mime = match.mime_type or ""
        if mime.startswith("image/"):
            return "image"
        if mime.startswith(("audio/", "video/")):
            return "media"
        if _EXECUTABLE_MIME.search(mime) or "executable" in match.name.lower():
            return "executable"
        if _ARCHIVE_MIME.search(mime):
            return "archive"
    return "binary"


def _text_type(head: bytes, ext: str) -> str:
    """Choose among the text types by name, or by content for unknown names."""
    if ext in HTML_EXTENSIONS:
        return HTML
    if ext in MARKDOWN_EXTENSIONS:
        return MARKDOWN
    if ext in PLAIN_TEXT_EXTENSIONS:
        return PLAIN_TEXT
    if ext in PDF_EXTENSIONS or ext in DOCX_EXTENSIONS or ext in BINARY_EXTENSIONS:
        raise UnsupportedTypeError("type_mismatch")
    sample = _ascii_view(head[:8192])
    if _HTML_START.match(sample.encode("ascii", "replace")):
        return HTML
    if _MARKDOWN_HINT.search(sample):
        return MARKDOWN
    return PLAIN_TEXT


def _ascii_view(head: bytes) -> str:
    """Decode enough of the head to look for markup, whatever its encoding."""
    found = bom_encoding(head)
    encoding = found[0] if found else utf16_without_bom(head)
    if encoding:
        return head[found[1] if found else 0 :].decode(encoding, errors="replace")
    return head.decode("utf-8", errors="replace")
