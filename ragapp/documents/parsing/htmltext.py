"""Keep the visible main text of an HTML page, with its heading structure.

lxml's HTML parser is tolerant of broken markup and never fetches anything a
page refers to (no_network, and the HTML parser loads no DTDs or entities).
Boilerplate and hidden elements are removed before the text is collected, so
text a browser would not show a reader (hidden prompts, scripts, templates,
comments) never reaches the index; hidden elements and comments that held
prose are reported with a hidden-text warning, as is white text, which is kept
(ragapp.documents.parsing.hidden says why). Hidden means the `hidden`
attribute, `aria-hidden`, or an inline style or a top-level stylesheet rule
with a simple selector (tag, .class, #id) that sets display:none,
visibility:hidden, font-size:0 or opacity:0. Rules inside @media and rules
with combinators are not applied: they hide text only on some screens.
"""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

from ragapp.documents.parsing.base import HEADING_SEPARATOR, HTML, Block, ParsedDocument
from ragapp.documents.parsing.errors import ParseError
from ragapp.documents.parsing.hidden import hidden_text_warning, sample
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
    r"|content-visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em|rem|%)?"
    r"|opacity\s*:\s*0(?:\.0*)?)\s*(?:!important\s*)?(?:;|$)",
    re.IGNORECASE,
)
_WHITE_STYLE = re.compile(
    r"(?:^|;)\s*color\s*:\s*(?:white|#fff(?:fff)?|rgba?\(\s*255\s*,\s*255\s*,"
    r"\s*255\s*(?:,\s*1(?:\.0*)?\s*)?\))\s*(?:!important\s*)?(?:;|$)",
    re.IGNORECASE,
)
_BACKGROUND_STYLE = re.compile(r"(?:^|;)\s*background", re.IGNORECASE)
_SIMPLE_SELECTOR = re.compile(r"^([a-z][a-z0-9-]*)?((?:[.#][\w-]+)*)$", re.IGNORECASE)
_SELECTOR_PART = re.compile(r"([.#])([\w-]+)")
# A comment this many words long is prose someone hid, not a build marker.
_PROSE_WORDS = 8
# Hidden elements holding fewer characters (a "Close" button) are not reported.
_MIN_HIDDEN_CHARS = 20
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
        remove_comments=False,  # dropped with the hidden elements, and counted
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
    warnings = _white_text(root)
    warnings += _drop_invisible(root, _stylesheet_rules(root))
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
        warnings=warnings,
    )


def _title(root: lxml.html.HtmlElement) -> str:
    node = root.find(".//title")
    if node is None:
        return ""
    return _SPACES.sub(" ", node.text_content()).strip()


_Rules = list[tuple[str | None, set[str], set[str]]]  # tag, classes, ids


def _stylesheet_rules(root: lxml.html.HtmlElement) -> _Rules:
    """Return the simple selectors that top-level <style> rules hide."""
    rules: _Rules = []
    for style in root.iter("style"):
        for selectors, body in _top_level_rules(style.text_content()):
            if not _HIDDEN_STYLE.search(body.replace("\n", " ").strip()):
                continue
            for selector in selectors.split(","):
                match = _SIMPLE_SELECTOR.match(selector.strip())
                if not match or not selector.strip():
                    continue
                parts = _SELECTOR_PART.findall(match.group(2) or "")
                tag = (match.group(1) or "").lower() or None
                rules.append(
                    (
                        tag,
                        {name for mark, name in parts if mark == "."},
                        {name for mark, name in parts if mark == "#"},
                    )
                )
    return rules


def _top_level_rules(css: str) -> list[tuple[str, str]]:
    """Split CSS into (selectors, declarations) at depth 0, skipping @-blocks."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules = []
    depth, start, selector = 0, 0, ""
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                selector, start = css[start:index].strip(), index + 1
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                if not selector.startswith("@"):
                    rules.append((selector, css[start:index]))
                start = index + 1
        elif char == ";" and depth == 0:
            start = index + 1  # @import and @charset statements
    return rules


def _matches(element: lxml.html.HtmlElement, rules: _Rules) -> bool:
    if not rules:
        return False
    tag = element.tag.lower()
    classes = set(element.attrib.get("class", "").split())
    ident = element.attrib.get("id", "")
    return any(
        (rule_tag is None or rule_tag == tag)
        and rule_classes <= classes
        and (not rule_ids or rule_ids == {ident})
        and (rule_tag or rule_classes or rule_ids)
        for rule_tag, rule_classes, rule_ids in rules
    )


def _is_hidden(element: lxml.html.HtmlElement, rules: _Rules) -> bool:
    attrib = element.attrib
    if "hidden" in attrib:
        return True
    if attrib.get("aria-hidden", "").strip().lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(attrib.get("style", ""))) or _matches(
        element, rules
    )


def _is_boilerplate(element: lxml.html.HtmlElement) -> bool:
    if element.tag.lower() in _DROPPED_TAGS:
        return True
    return element.attrib.get("role", "").strip().lower() in _BOILERPLATE_ROLES


def _drop_invisible(root: lxml.html.HtmlElement, rules: _Rules) -> list[str]:
    """Remove hidden elements, comments and boilerplate, keeping the text after them.

    Return hidden-text warnings for hidden elements and comments that held text.
    """
    doomed = []
    hidden = []
    comments = []
    for element in root.iter():
        if not isinstance(element.tag, str):  # comments, processing instructions
            doomed.append(element)
            if element.tag is etree.Comment:
                comments.append(element.text or "")
        elif _is_boilerplate(element):
            doomed.append(element)
        elif _is_hidden(element, rules):
            doomed.append(element)
            hidden.append(element)
    doomed_ids = {id(element) for element in doomed}
    hidden_texts = [
        _SPACES.sub(" ", element.text_content()).strip()
        for element in hidden
        if not any(id(a) in doomed_ids for a in element.iterancestors())
    ]
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()  # keeps element.tail in the parent
    warnings = []
    chars = sum(len(text.replace(" ", "")) for text in hidden_texts)
    if chars >= _MIN_HIDDEN_CHARS:
        warnings.append(
            hidden_text_warning(
                f"{chars} characters in elements hidden from readers (hidden, "
                "aria-hidden, display:none and the like) were left out "
                f"(“{sample(' '.join(t for t in hidden_texts if t))}”)."
            )
        )
    prose = [
        " ".join(text.split())
        for text in comments
        if len(text.split()) >= _PROSE_WORDS and not text.lstrip().startswith("[if")
    ]
    if prose:
        warnings.append(
            hidden_text_warning(
                f"{len(prose)} HTML comment(s) holding prose, which readers do not "
                f"see, were left out (“{sample(' '.join(prose))}”)."
            )
        )
    return warnings


def _white_text(root: lxml.html.HtmlElement) -> list[str]:
    """Report text styled white with no background set on it or around it.

    Kept, unlike hidden elements: the page may paint a dark background from a
    stylesheet this reader does not apply.
    """
    texts = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if not _WHITE_STYLE.search(element.attrib.get("style", "")):
            continue
        styles = [element.attrib.get("style", "")]
        styles += [a.attrib.get("style", "") for a in element.iterancestors()]
        if any(_BACKGROUND_STYLE.search(style) for style in styles):
            continue
        text = _SPACES.sub(" ", element.text_content()).strip()
        if text:
            texts.append(text)
    chars = sum(len(text.replace(" ", "")) for text in texts)
    if chars < _MIN_HIDDEN_CHARS:
        return []
    return [
        hidden_text_warning(
            f"{chars} characters styled white without a background, which "
            f"readers may not see, are indexed (“{sample(' '.join(texts))}”)."
        )
    ]


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
