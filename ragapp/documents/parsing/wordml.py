"""Read DOCX files: check the package, then walk it with python-docx.

A DOCX is XML inside a ZIP, so both bomb classes apply. `check_docx_package`
inspects the ZIP directory (zipcheck) and refuses any XML part that declares a
DTD or entities before python-docx touches the file. python-docx's own lxml
parser also has `resolve_entities=False` and lxml never loads external
entities or the network by default, so a part that slipped past the check
still could not expand entities or read local files; both layers are tested.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from lxml import etree

from ragapp.documents.parsing.base import (
    DOCX,
    HEADING_SEPARATOR,
    Block,
    ParsedDocument,
    ParseLimits,
)
from ragapp.documents.parsing.errors import ParseError, UnsupportedTypeError
from ragapp.documents.parsing.zipcheck import ZipLimits, inspect_zip, open_zip

CONTENT_TYPES_PART = "[Content_Types].xml"
WORD_MAIN_TYPES = frozenset(
    {
        # Only plain documents: macro-enabled (docm) and templates are refused.
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    }
)
_MAX_CONTENT_TYPES_BYTES = 1024 * 1024
# Main parts of documents, templates and macro-enabled files alike, so that a
# .docm is named for what it is rather than "not a Word file".
_WORD_TYPE_PREFIXES = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.",
    "application/vnd.ms-word.",
)
_PEEK_BYTES = 64
_MAX_STYLE_DEPTH = 20
# "<!D" (DOCTYPE) and "<!E" (ENTITY) in every encoding an XML parser accepts.
_DTD_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!D", "<!E")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_XML_STARTS = (b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00", b"<\x00")
_HEADING_STYLE = re.compile(r"heading\s*([1-9])")
_SPACES = re.compile(r"[ \t]+")

_SAFE_XML_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
)


def zip_limits(limits: ParseLimits) -> ZipLimits:
    """Return the ZIP bounds that follow from the parse limits."""
    return ZipLimits(
        max_entries=limits.max_zip_entries,
        max_total_bytes=limits.max_decompressed_bytes,
    )


def main_document_type(archive: zipfile.ZipFile) -> str | None:
    """Return the content type of the package's main part, or None if it has none.

    A ZIP is a Word document only if `[Content_Types].xml` names a main document
    part with a WordprocessingML type; a plain ZIP or an XLSX has none.
    """
    try:
        info = archive.getinfo(CONTENT_TYPES_PART)
    except KeyError:
        return None
    if info.file_size > _MAX_CONTENT_TYPES_BYTES or info.flag_bits & 0x1:
        return None
    try:
        raw = archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError):
        return None
    root = parse_safe_xml(raw)
    if root is None:
        return None
    for override in root.iter("{*}Override"):
        content_type = override.get("ContentType", "")
        if content_type.startswith(_WORD_TYPE_PREFIXES) and content_type.endswith(
            ".main+xml"
        ):
            return content_type
    return None


def parse_safe_xml(raw: bytes) -> Any:
    """Parse XML that must not declare a DTD; return None if it does or is broken."""
    if declares_dtd(raw):
        return None
    try:
        return etree.fromstring(raw, parser=_SAFE_XML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None


def declares_dtd(raw: bytes) -> bool:
    """Return whether XML bytes carry a DOCTYPE or ENTITY declaration.

    Word never writes either; a DTD in a DOCX part exists only to expand entities
    (billion laughs) or pull in external ones (XXE).
    """
    return any(marker in raw for marker in _DTD_MARKERS)


def check_docx_package(data: bytes, limits: ParseLimits) -> zipfile.ZipFile:
    """Refuse bombs, unsafe names, non-Word ZIPs and DTDs before python-docx runs."""
    archive = open_zip(data)
    infos = inspect_zip(archive, zip_limits(limits))
    content_type = main_document_type(archive)
    if content_type is None:
        raise UnsupportedTypeError("not_docx")
    if content_type not in WORD_MAIN_TYPES:
        raise UnsupportedTypeError(
            "not_docx",
            "The file is a Word template or macro-enabled document; "
            "save it as a plain .docx document.",
        )
    for info in infos:
        if info.is_dir() or info.file_size == 0:
            continue
        try:
            with archive.open(info) as member:
                head = member.read(_PEEK_BYTES)
                if not head.lstrip(b" \t\r\n").startswith(_XML_STARTS):
                    continue
                raw = head + member.read()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ParseError("corrupt") from exc
        if declares_dtd(raw):
            raise ParseError("unsafe_xml")
    return archive


def parse_docx(data: bytes, limits: ParseLimits) -> ParsedDocument:
    """Check the package, then return its paragraphs, lists, tables and headings."""
    check_docx_package(data, limits)
    return read_docx(data)


def read_docx(data: bytes) -> ParsedDocument:
    """Walk an already checked DOCX body in order with python-docx.

    Kept apart from `parse_docx` so tests can show python-docx alone does not
    expand entities either. Headers, footers, footnotes and text boxes are not
    read: they are mostly boilerplate, and python-docx does not expose them in
    body order.
    """
    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (OpcError, KeyError, ValueError, zipfile.BadZipFile, etree.LxmlError) as exc:
        raise ParseError("corrupt") from exc
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    title = (document.core_properties.title or "").strip()
    first_heading = ""
    for item in document.iter_inner_content():
        heading = HEADING_SEPARATOR.join(text for _, text in path)
        if isinstance(item, Table):
            text = _table_text(item)
            if text:
                blocks.append(
                    Block(text=text, page=None, heading=heading, kind="table")
                )
            continue
        text = _SPACES.sub(" ", item.text).strip()
        if not text:
            continue
        level = _heading_level(item)
        if level is not None:
            if level == 0:  # the "Title" style: the document's name, not a section
                title = title or text
            else:
                path = [(lvl, t) for lvl, t in path if lvl < level]
                path.append((level, text))
                first_heading = first_heading or text
            heading = HEADING_SEPARATOR.join(t for _, t in path)
            blocks.append(Block(text=text, page=None, heading=heading, kind="heading"))
        elif _is_list_item(item):
            blocks.append(
                Block(text=text, page=None, heading=heading, kind="list_item")
            )
        else:
            blocks.append(
                Block(text=text, page=None, heading=heading, kind="paragraph")
            )
    return ParsedDocument(
        content_type=DOCX,
        title=title or first_heading,
        page_count=None,
        blocks=blocks,
        pages_without_text=[],
        warnings=[],
    )


def _styles(paragraph: Any) -> list[Any]:
    """Return the paragraph's style and its base styles, nearest first."""
    chain = []
    style = paragraph.style
    while style is not None and len(chain) < _MAX_STYLE_DEPTH:
        chain.append(style)
        style = style.base_style
    return chain


def _outline_level(ppr: Any) -> int | None:
    """Return a heading level (1-9) from w:outlineLvl, or None for body text."""
    if ppr is None or ppr.outlineLvl is None:
        return None
    value = ppr.outlineLvl.val
    return value + 1 if isinstance(value, int) and 0 <= value < 9 else None


def _heading_level(paragraph: Any) -> int | None:
    """Return 0 for the Title style, 1-9 for headings, None for anything else."""
    direct = _outline_level(paragraph._p.pPr)
    if direct is not None:
        return direct
    for style in _styles(paragraph):
        name = (style.name or "").strip().lower()
        if name == "title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        level = _outline_level(style.element.pPr)
        if level is not None:
            return level
    return None


def _is_list_item(paragraph: Any) -> bool:
    ppr = paragraph._p.pPr
    if ppr is not None and ppr.numPr is not None:
        return True
    for style in _styles(paragraph):
        if (style.name or "").strip().lower().startswith("list"):
            return True
        style_ppr = style.element.pPr
        if style_ppr is not None and style_ppr.numPr is not None:
            return True
    return False


def _table_text(table: Any) -> str:
    """Render rows as lines of cells joined by " | ", merged cells once."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(_SPACES.sub(" ", cell.text.replace("\n", " ")).strip())
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
