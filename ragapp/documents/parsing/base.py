"""The parser's data shapes: what a parse returns and the limits it runs under."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN = "text/markdown"
PLAIN_TEXT = "text/plain"
HTML = "text/html"

SUPPORTED_TYPES: dict[str, str] = {
    PDF: "PDF",
    DOCX: "DOCX",
    MARKDOWN: "Markdown",
    PLAIN_TEXT: "plain text",
    HTML: "HTML",
}

TEXT_TYPES = frozenset({MARKDOWN, PLAIN_TEXT, HTML})

BLOCK_KINDS = frozenset({"heading", "paragraph", "list_item", "table", "other"})

HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Block:
    """One structural unit of a document, in reading order."""

    text: str
    page: int | None  # 1-based page number for paged formats (PDF); None otherwise
    heading: str  # nearest section heading path, e.g. "2 Scope > 2.1 Terms"
    kind: str  # "heading" | "paragraph" | "list_item" | "table" | "other"


@dataclass(frozen=True)
class ParsedDocument:
    """The text of one file, split into blocks, plus what the admin should know."""

    content_type: str
    title: str
    page_count: int | None
    blocks: list[Block]
    pages_without_text: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return plain JSON data: the child process hands results back this way."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ParsedDocument:
        """Rebuild a document from `to_json` output, checking every type.

        The data comes from another process; a wrong shape raises ValueError
        rather than producing a document that fails later in the pipeline.
        """
        if not isinstance(data, dict):
            raise ValueError("document is not an object")
        blocks = []
        for raw in _typed(data, "blocks", list):
            if not isinstance(raw, dict):
                raise ValueError("block is not an object")
            page = raw.get("page")
            if page is not None and (type(page) is not int or page < 1):
                raise ValueError("block page is not a positive integer")
            kind = _typed(raw, "kind", str)
            if kind not in BLOCK_KINDS:
                raise ValueError(f"unknown block kind {kind!r}")
            blocks.append(
                Block(
                    text=_typed(raw, "text", str),
                    page=page,
                    heading=_typed(raw, "heading", str),
                    kind=kind,
                )
            )
        page_count = data.get("page_count")
        if page_count is not None and type(page_count) is not int:
            raise ValueError("page_count is not an integer")
        pages = _typed(data, "pages_without_text", list)
        warnings = _typed(data, "warnings", list)
        if not all(type(p) is int for p in pages):
            raise ValueError("pages_without_text holds a non-integer")
        if not all(isinstance(w, str) for w in warnings):
            raise ValueError("warnings holds a non-string")
        return cls(
            content_type=_typed(data, "content_type", str),
            title=_typed(data, "title", str),
            page_count=page_count,
            blocks=blocks,
            pages_without_text=pages,
            warnings=warnings,
        )


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{key} is not a {kind.__name__}")
    return value


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what one parse may consume; every bomb test runs against these."""

    max_pages: int = 2000
    max_chars: int = 20_000_000
    # zip/DOCX total and per-PDF-stream decompressed output.
    max_decompressed_bytes: int = 200 * 1024 * 1024
    max_zip_entries: int = 10_000
    timeout_seconds: float = 120
    memory_bytes: int = 512 * 1024 * 1024  # RLIMIT_AS of the child
    # OCR of pages without a text layer. The model needs more address space than
    # parsing does (about 1.3 GB virtual for a 1280-pixel page), so the child lifts
    # its soft RLIMIT_AS to this only after every page image has been decoded and
    # shrunk under `memory_bytes`: the model then sees only bounded input.
    ocr: bool = True
    ocr_memory_bytes: int = 2048 * 1024 * 1024

    def to_json(self) -> dict[str, Any]:
        """Return plain JSON data for the child process."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ParseLimits:
        """Rebuild limits, refusing unknown keys and non-positive numbers."""
        if not isinstance(data, dict):
            raise ValueError("limits is not an object")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "ocr":
                if not isinstance(value, bool):
                    raise ValueError("ocr is not a boolean")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} is not a number")
            elif value <= 0:
                raise ValueError(f"{name} must be positive")
            elif name != "timeout_seconds":
                value = int(value)
            values[name] = value
        return cls(**values)
