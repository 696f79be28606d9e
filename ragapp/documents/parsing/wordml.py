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
from ragapp.documents.parsing.hidden import hidden_text_warning, sample
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
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALSE = frozenset({"0", "false", "off"})
# Colours this close to white count as white (each channel at least 0xF2).
_WHITE_CHANNEL = 0xF2
# w:sz is in half-points: 2 is 1 pt, too small to read.
_TINY_HALF_POINTS = 2
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
    runs = _RunText(document)
    for item in document.iter_inner_content():
        heading = HEADING_SEPARATOR.join(text for _, text in path)
        if isinstance(item, Table):
            text = _table_text(item, runs)
            if text:
                blocks.append(
                    Block(text=text, page=None, heading=heading, kind="table")
                )
            continue
        text = _SPACES.sub(" ", runs.paragraph_text(item)).strip()
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
        warnings=runs.warnings(),
    )


class _RunText:
    """Read paragraph text run by run, leaving out hidden runs and noting them.

    Word does not show or print runs marked hidden (`w:vanish`, set directly or
    through a character, paragraph or default style), so they are dropped; white
    and 1-pt runs are drawn, perhaps on a dark shading, so they are kept. Both
    are reported (ragapp.documents.parsing.hidden explains the choice).
    """

    def __init__(self, document: Any) -> None:
        self.styles = document.styles.element
        defaults = self.styles.find(f"{_W}docDefaults/{_W}rPrDefault/{_W}rPr")
        self.defaults = [] if defaults is None else [defaults]
        self.chars = {"hidden": 0, "white": 0, "tiny": 0}
        self.samples: dict[str, list[str]] = {kind: [] for kind in self.chars}

    def paragraph_text(self, paragraph: Any) -> str:
        """Return the text python-docx would, without hidden runs."""
        paragraph_rprs = [
            style.element.rPr
            for style in _styles(paragraph)
            if style.element.rPr is not None
        ]
        shaded = _shaded(paragraph._p.pPr)
        parts = []
        for element in paragraph._p.xpath("w:r | w:hyperlink"):
            for run in [element] if element.tag == f"{_W}r" else element.xpath("w:r"):
                text = run.text
                kind = self._kind(run, paragraph_rprs, shaded) if text.strip() else None
                if kind is not None:
                    self.chars[kind] += len(text.strip())
                    if len(self.samples[kind]) < 4:
                        self.samples[kind].append(text)
                if kind != "hidden":
                    parts.append(text)
        return "".join(parts)

    def _kind(self, run: Any, paragraph_rprs: list[Any], shaded: bool) -> str | None:
        rprs = [run.rPr] if run.rPr is not None else []
        style = run.rPr.find(f"{_W}rStyle") if run.rPr is not None else None
        style_id = style.get(f"{_W}val") if style is not None else None
        rprs += self._style_rprs(style_id) + paragraph_rprs + self.defaults
        vanish = _first_value(rprs, "vanish")  # "" when set without a value
        if vanish is not None and vanish not in _FALSE:
            return "hidden"
        size = _int(_first_value(rprs, "sz"))
        if size is not None and size <= _TINY_HALF_POINTS:
            return "tiny"
        if (
            _is_white(_first_value(rprs, "color"))
            and not shaded
            and not any(_shaded(rpr) for rpr in rprs)
        ):
            return "white"
        return None

    def _style_rprs(self, style_id: str | None) -> list[Any]:
        found = []
        while style_id and len(found) < _MAX_STYLE_DEPTH:
            style = self.styles.get_by_id(style_id)
            if style is None:
                break
            if style.rPr is not None:
                found.append(style.rPr)
            style_id = style.basedOn_val
        return found

    def warnings(self) -> list[str]:
        descriptions = {
            "hidden": "characters in runs marked hidden, which Word neither "
            "shows nor prints, were left out",
            "white": "characters in white on an unshaded background, which "
            "readers do not see, are indexed",
            "tiny": "characters 1 point high or smaller, too small to read, are "
            "indexed",
        }
        found = []
        for kind, description in descriptions.items():
            if self.chars[kind]:
                quote = sample(" ".join(self.samples[kind]))
                found.append(
                    hidden_text_warning(
                        f"{self.chars[kind]} {description} (“{quote}”)."
                    )
                )
        return found


def _first_value(rprs: list[Any], name: str) -> str | None:
    """Return w:val of the first w:<name> among run properties, nearest first."""
    for rpr in rprs:
        value = _value(rpr, name)
        if value is not None:
            return value
    return None


def _value(parent: Any, name: str) -> str | None:
    child = parent.find(f"{_W}{name}")
    if child is None:
        return None
    return (child.get(f"{_W}val") or "").strip().lower()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _is_white(value: str | None) -> bool:
    if not value or len(value) != 6:
        return False  # "auto" and theme colours follow the background
    try:
        channels = [int(value[i : i + 2], 16) for i in (0, 2, 4)]
    except ValueError:
        return False
    return min(channels) >= _WHITE_CHANNEL


def _shaded(properties: Any) -> bool:
    """Whether run or paragraph properties paint a background behind the text."""
    if properties is None:
        return False
    highlight = _value(properties, "highlight")
    if highlight and highlight != "none":
        return True
    shading = properties.find(f"{_W}shd")
    if shading is None:
        return False
    fill = (shading.get(f"{_W}fill") or "auto").lower()
    return fill != "auto" and not _is_white(fill)


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


def _table_text(table: Any, runs: _RunText) -> str:
    """Render rows as lines of cells joined by " | ", merged cells once."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(runs.paragraph_text(p) for p in cell.paragraphs)
            cells.append(_SPACES.sub(" ", text).strip())
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
