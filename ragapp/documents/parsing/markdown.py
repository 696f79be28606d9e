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
from ragapp.documents.parsing.hidden import hidden_text_warning, sample
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
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# A comment this many words long is prose someone hid, not a marker.
_PROSE_WORDS = 8


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
    text, warnings = _drop_comments(normalize_newlines(text))
    lines = text.split("\n")
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
        warnings=warnings,
    )


def _drop_comments(text: str) -> tuple[str, list[str]]:
    """Remove HTML comments outside code blocks: rendered Markdown never shows them.

    Each comment leaves its line breaks behind, so blocks around it keep their
    shape. Comments holding prose are reported as hidden text.
    """
    if "<!--" not in text:
        return text, []
    fenced: list[tuple[int, int]] = []
    offset, fence_start, marker = 0, -1, ""
    for line in text.split("\n"):
        fence = _FENCE.match(line)
        if fence and not marker:
            fence_start, marker = offset, fence.group(1)
        elif marker and line.strip().startswith(marker):
            fenced.append((fence_start, offset + len(line)))
            marker = ""
        offset += len(line) + 1
    if marker:
        fenced.append((fence_start, len(text)))
    prose: list[str] = []

    def drop(match: re.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in fenced):
            return match.group()
        body = match.group()[4:-3]
        if len(body.split()) >= _PROSE_WORDS:
            prose.append(" ".join(body.split()))
        return "\n" * match.group().count("\n")

    text = _COMMENT.sub(drop, text)
    if not prose:
        return text, []
    return text, [
        hidden_text_warning(
            f"{len(prose)} HTML comment(s) holding prose, which rendered Markdown "
            f"does not show, were left out (“{sample(' '.join(prose))}”)."
        )
    ]


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
