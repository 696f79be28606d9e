"""Split Markdown into headings, paragraphs, list items, tables and code blocks.

A small line-based reader rather than a full CommonMark parser: retrieval needs
the block structure and the heading path, not rendered HTML, and the source text
of each block is kept as written.
"""

from __future__ import annotations

import re

from ragapp.documents.parsing.base import (
    HEADING_SEPARATOR,
    MARKDOWN,
    Block,
    ParsedDocument,
)
from ragapp.documents.parsing.plaintext import decode_text, normalize_newlines

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_TABLE_ROW = re.compile(r"^ {0,3}\|.*\|[ \t]*$")
_THEMATIC_BREAK = re.compile(
    r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$"
)
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.IGNORECASE)


class _Builder:
    """Collect blocks and keep the heading path of the current section."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.path: list[tuple[int, str]] = []
        self.title = ""

    def heading(self, level: int, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self.path = [(lvl, t) for lvl, t in self.path if lvl < level]
        self.path.append((level, text))
        if not self.title and level == 1:
            self.title = text
        self.add(text, "heading")

    def add(self, text: str, kind: str) -> None:
        text = text.strip("\n")
        if text.strip():
            heading = HEADING_SEPARATOR.join(t for _, t in self.path)
            self.blocks.append(Block(text=text, page=None, heading=heading, kind=kind))


def parse_markdown(data: bytes) -> ParsedDocument:
    """Return the blocks of a Markdown file; `#` headings build the heading path."""
    text, _ = decode_text(data)
    lines = normalize_newlines(text).split("\n")
    builder = _Builder()
    index = _skip_front_matter(lines, builder)
    paragraph: list[str] = []
    kind = "paragraph"

    def flush() -> None:
        nonlocal paragraph, kind
        builder.add("\n".join(line.rstrip() for line in paragraph), kind)
        paragraph, kind = [], "paragraph"

    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            flush()
            continue
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            code: list[str] = []
            while index < len(lines) and not lines[index].strip().startswith(marker):
                code.append(lines[index])
                index += 1
            index += 1  # the closing fence, or past the end when it is missing
            builder.add("\n".join(code), "other")
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            builder.heading(len(atx.group(1)), atx.group(2) or "")
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph and kind == "paragraph":
            title = " ".join(p.strip() for p in paragraph)
            paragraph = []
            builder.heading(1 if setext.group(1).startswith("=") else 2, title)
            continue
        if _THEMATIC_BREAK.match(line):
            flush()
            continue
        if _LIST_ITEM.match(line):
            flush()
            kind = "list_item"
            paragraph.append(line.strip())
            continue
        if _TABLE_ROW.match(line):
            if kind != "table":
                flush()
                kind = "table"
            paragraph.append(line.strip())
            continue
        if kind == "table":
            flush()
        paragraph.append(line.strip() if kind == "list_item" else line)
    flush()
    return ParsedDocument(
        content_type=MARKDOWN,
        title=builder.title,
        page_count=None,
        blocks=builder.blocks,
        pages_without_text=[],
        warnings=[],
    )


def _skip_front_matter(lines: list[str], builder: _Builder) -> int:
    """Skip a leading YAML front matter block, keeping its `title:` if any."""
    if not lines or lines[0].strip() != "---":
        return 0
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in {"---", "..."}:
            for line in lines[1:end]:
                match = _FRONT_MATTER_TITLE.match(line)
                if match:
                    builder.title = match.group(1).strip("\"'")
            return end + 1
    return 0
