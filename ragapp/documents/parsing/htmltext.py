"""Keep the visible main text of an HTML page, with its heading structure.

lxml's HTML parser is tolerant of broken markup and never fetches anything a
page refers to (no_network, and the HTML parser loads no DTDs or entities).
Boilerplate and hidden elements are removed before the text is collected, so
text a browser would not show a reader (hidden prompts, scripts, templates)
never reaches the index.
"""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

from ragapp.documents.parsing.base import HEADING_SEPARATOR, HTML, Block, ParsedDocument
from ragapp.documents.parsing.errors import ParseError
from ragapp.documents.parsing.plaintext import decode_text

_DROPPED_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "nav", "footer", "head",
        "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math",
        "canvas", "audio", "video", "picture", "map", "button", "select",
        "textarea", "input", "datalist", "dialog", "menu", "link", "meta", "base",
    }
)  # fmt: skip
_BOILERPLATE_ROLES = frozenset({"navigation", "contentinfo", "banner", "search"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "center", "dd",
        "details", "div", "dl", "dt", "fieldset", "figcaption", "figure", "form",
        "header", "hgroup", "hr", "html", "legend", "main", "ol", "p", "section",
        "summary", "ul", "br", "caption",
    }
)  # fmt: skip
_HIDDEN_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)"
    r"|content-visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)


def parse_html(data: bytes) -> ParsedDocument:
    """Return the blocks of the page's main content; h1-h6 build the heading path."""
    text, _ = decode_text(data)
    # lxml refuses str input that carries an XML encoding declaration; the text
    # is already decoded, so the declaration says nothing useful.
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise ParseError("empty")
    parser = lxml.html.HTMLParser(
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        huge_tree=False,
        encoding="utf-8",
    )
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except etree.ParserError as exc:  # "Document is empty"
        raise ParseError("empty") from exc
    title = _title(root)
    _drop_invisible(root)
    content = _main_content(root)
    collector = _Collector()
    collector.walk(content)
    collector.flush()
    if not title:
        title = next((b.text for b in collector.blocks if b.kind == "heading"), "")
    return ParsedDocument(
        content_type=HTML,
        title=title,
        page_count=None,
        blocks=collector.blocks,
        pages_without_text=[],
        warnings=[],
    )


def _title(root: lxml.html.HtmlElement) -> str:
    node = root.find(".//title")
    if node is None:
        return ""
    return _SPACES.sub(" ", node.text_content()).strip()


def _is_hidden(element: lxml.html.HtmlElement) -> bool:
    attrib = element.attrib
    if "hidden" in attrib:
        return True
    if attrib.get("aria-hidden", "").strip().lower() == "true":
        return True
    if attrib.get("role", "").strip().lower() in _BOILERPLATE_ROLES:
        return True
    return bool(_HIDDEN_STYLE.search(attrib.get("style", "")))


def _drop_invisible(root: lxml.html.HtmlElement) -> None:
    """Remove hidden elements and boilerplate, keeping the text that follows them."""
    doomed = [
        element
        for element in root.iter()
        if not isinstance(element.tag, str)  # leftover comments or entities
        or element.tag.lower() in _DROPPED_TAGS
        or _is_hidden(element)
    ]
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()  # keeps element.tail in the parent


def _main_content(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """Prefer <main> (or role=main), then a single <article>, then <body>."""
    for path in (".//main", ".//*[@role='main']"):
        found = root.find(path)
        if found is not None:
            return found
    articles = root.findall(".//article")
    if len(articles) == 1:
        return articles[0]
    body = root.find(".//body")
    return body if body is not None else root


class _Collector:
    """Walk the cleaned tree, cutting blocks at block-level elements."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.path: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.kinds: list[str] = []  # enclosing li/pre, innermost last

    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(text for _, text in self.path)

    def emit(self, text: str, kind: str) -> None:
        if text.strip():
            self.blocks.append(
                Block(text=text, page=None, heading=self.heading_path(), kind=kind)
            )

    def flush(self) -> None:
        raw = "".join(self.buffer)
        self.buffer = []
        kind = self.kinds[-1] if self.kinds else "paragraph"
        if kind == "other":
            self.emit(raw.strip("\n"), kind)
        else:
            self.emit(_SPACES.sub(" ", raw).strip(), kind)

    def walk(self, element: lxml.html.HtmlElement) -> None:
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if tag in _HEADINGS:
            self.flush()
            text = _SPACES.sub(" ", element.text_content()).strip()
            if text:
                level = _HEADINGS[tag]
                self.path = [(lvl, t) for lvl, t in self.path if lvl < level]
                self.path.append((level, text))
                self.emit(text, "heading")
        elif tag == "table":
            self.flush()
            self.emit(_table_text(element), "table")
        elif tag in {"li", "pre"}:
            self.flush()
            self.kinds.append("list_item" if tag == "li" else "other")
            self._children(element)
            self.flush()
            self.kinds.pop()
        elif tag in _BLOCK_TAGS:
            self.flush()
            self._children(element)
            self.flush()
        else:
            self._children(element)
        if element.tail:
            self.buffer.append(element.tail)

    def _children(self, element: lxml.html.HtmlElement) -> None:
        if element.text:
            self.buffer.append(element.text)
        for child in element:
            self.walk(child)


def _table_text(table: lxml.html.HtmlElement) -> str:
    """Render rows as lines of cells joined by " | " (nested tables inline)."""
    lines = []
    for row in table.iter("tr"):
        if row.getparent() is not None and _owning_table(row) is not table:
            continue
        cells = [
            _SPACES.sub(" ", cell.text_content()).strip()
            for cell in row
            if isinstance(cell.tag, str) and cell.tag.lower() in {"td", "th"}
        ]
        if any(cells):
            lines.append(" | ".join(cells))
    caption = table.find("caption")
    if caption is not None:
        text = _SPACES.sub(" ", caption.text_content()).strip()
        if text:
            lines.insert(0, text)
    return "\n".join(lines)


def _owning_table(row: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    parent = row.getparent()
    while parent is not None and parent.tag != "table":
        parent = parent.getparent()
    return parent
