"""Turn bytes of unknown encoding into text, and plain text into blocks."""

from __future__ import annotations

import codecs
import re

from ragapp.documents.parsing.base import PLAIN_TEXT, Block, ParsedDocument
from ragapp.documents.parsing.errors import UnsupportedTypeError

# Byte order marks, longest first: the UTF-32 LE mark starts with the UTF-16 one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control bytes that never occur in text in any ASCII-compatible encoding.
_CONTROL_BYTES = bytes([*range(9), 11, *range(14, 27), *range(28, 32), 127])
_CONTROL_TABLE = bytes.maketrans(_CONTROL_BYTES, b"\0" * len(_CONTROL_BYTES))
_DETECT_SAMPLE = 1024 * 1024
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n+")


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """Return the encoding a byte order mark names and the mark's length."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """Name the UTF-16 byte order of BOM-less text that is mostly ASCII.

    Such text has a NUL in every other byte, which would otherwise be taken for
    binary data.
    """
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even_nuls = sample[0 : pairs * 2 : 2].count(0)
    odd_nuls = sample[1 : pairs * 2 : 2].count(0)
    if odd_nuls > 0.6 * pairs and even_nuls < 0.05 * pairs:
        return "utf-16-le"
    if even_nuls > 0.6 * pairs and odd_nuls < 0.05 * pairs:
        return "utf-16-be"
    return None


def looks_binary(data: bytes) -> bool:
    """Return whether bytes without a BOM are binary rather than text.

    Text in any supported encoding has no NUL bytes (UTF-16 aside, handled by the
    caller) and almost no other C0 control bytes.
    """
    sample = data[:65536]
    if not sample:
        return False
    if 0 in sample:
        return True
    controls = sample.translate(_CONTROL_TABLE).count(0)
    return controls > max(2, len(sample) // 100)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown encoding; return the text and the encoding used.

    Order: a byte order mark, BOM-less UTF-16, strict UTF-8, then
    charset-normalizer for legacy encodings (cp1252, latin-1, Shift-JIS, ...).
    Binary data raises UnsupportedTypeError("binary").
    """
    found = bom_encoding(data)
    if found:
        encoding, skip = found
        return data[skip:].decode(encoding, errors="replace"), encoding
    utf16 = utf16_without_bom(data)
    if utf16:
        return data.decode(utf16, errors="replace"), utf16
    if looks_binary(data):
        raise UnsupportedTypeError("binary")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = _detect_legacy_encoding(data)
    return data.decode(encoding, errors="replace"), encoding


# Single-byte families that charset-normalizer confuses with each other on
# Western and Central European text; Shift-JIS, GB18030, cp1251 and the like
# are never among them.
_SINGLE_BYTE_LATIN = frozenset(
    {
        "cp1250", "cp1252", "cp1254", "cp1257", "cp437", "cp850", "cp858",
        "latin_1", "iso8859_1", "iso8859_2", "iso8859_3", "iso8859_4",
        "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15",
        "iso8859_16", "mac_latin2", "mac_roman", "mac_iceland", "mac_turkish",
    }
)  # fmt: skip
# Tried in this order; the first reads best on ties (cp1252 is by far the most
# common legacy encoding).
_LATIN_CANDIDATES = ("cp1252", "cp1250", "cp1257", "iso8859_15")


def _mid_word_symbols(text: str) -> int:
    """Count non-ASCII non-letters squeezed between letters, like "Za¿ó³æ".

    A wrong Latin code page turns accented letters into symbols in the middle
    of words; the right one gives letters there.
    """
    return sum(
        1
        for i in range(1, len(text) - 1)
        if ord(text[i]) > 127
        and not text[i].isalpha()
        and text[i - 1].isalpha()
        and text[i + 1].isalpha()
    )


def _best_latin_reading(sample: bytes) -> str | None:
    scores = []
    for rank, encoding in enumerate(_LATIN_CANDIDATES):
        try:
            text = sample.decode(encoding)
        except UnicodeDecodeError:
            continue
        scores.append((_mid_word_symbols(text), rank, encoding))
    return min(scores)[2] if scores else None


def _detect_legacy_encoding(data: bytes) -> str:
    """Ask charset-normalizer, then settle the Latin code pages ourselves.

    On short European text charset-normalizer often picks the wrong Latin
    code page (it ranked French cp1252 as cp1257, turning "naïve" into
    "naļve", and found nothing at all for Polish cp1250). When its guess is
    missing or one of those single-byte Latin sets, the code page whose
    reading puts letters, not symbols, inside words wins.
    """
    import charset_normalizer

    sample = data[:_DETECT_SAMPLE]
    best = charset_normalizer.from_bytes(sample).best()
    if best is not None and best.encoding not in _SINGLE_BYTE_LATIN:
        return best.encoding
    return _best_latin_reading(sample) or (best.encoding if best else "cp1252")


def normalize_newlines(text: str) -> str:
    """Use \\n for every line break and drop NULs that decoding let through."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def parse_plain_text(data: bytes) -> ParsedDocument:
    """Split text into paragraphs on blank lines; plain text has no headings."""
    text, _ = decode_text(data)
    text = normalize_newlines(text)
    blocks = [
        Block(text=part.strip(), page=None, heading="", kind="paragraph")
        for part in _PARAGRAPH_BREAK.split(text)
        if part.strip()
    ]
    return ParsedDocument(
        content_type=PLAIN_TEXT,
        title="",
        page_count=None,
        blocks=blocks,
        pages_without_text=[],
        warnings=[],
    )
