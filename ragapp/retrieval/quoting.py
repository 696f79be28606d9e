"""Passages quoted to a model as data, never as instructions.

Documents are written by people the asker does not control, and some of them
say "ignore previous instructions". Whenever passages go to a model (the
answer prompt, the model rerank), each travels inside a delimiter that
carries a random token made for that request, and the instructions say text
inside it is material, never orders. A document cannot close the delimiter
early because it cannot know the token; text that imitates the delimiter's
name is defused anyway, and titles and headings cannot break out of their
attributes.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragapp.retrieval.search import Passage

DELIMITER_NAME = "untrusted-passage"

_DELIMITER_LOOKALIKE = re.compile(re.escape(DELIMITER_NAME), re.IGNORECASE)


@dataclass(frozen=True)
class NumberedPassage:
    """A passage with the number the model refers to it by."""

    number: int
    passage: Passage


def new_delimiter() -> str:
    """Return this request's delimiter tag: unguessable by any document."""
    return f"{DELIMITER_NAME}-{secrets.token_hex(6)}"


def format_passages(passages: Sequence[NumberedPassage], *, delimiter: str) -> str:
    """Render passages as numbered, delimited quoted data."""
    blocks = []
    for item in passages:
        p = item.passage
        text = _DELIMITER_LOOKALIKE.sub("untrusted passage", p.text)
        attributes = f'number="{item.number}" document="{_attribute(p.document_title)}"'
        pages = _pages(p.page_start, p.page_end)
        if pages:
            attributes += f' pages="{pages}"'
        if p.heading:
            attributes += f' section="{_attribute(p.heading)}"'
        blocks.append(f"<{delimiter} {attributes}>\n{text}\n</{delimiter}>")
    return "\n\n".join(blocks)


def _attribute(value: str) -> str:
    """A document's title or heading inside an attribute: no quote or tag can break out."""
    value = _DELIMITER_LOOKALIKE.sub("untrusted passage", value)
    value = value.replace('"', "'").replace("<", "(").replace(">", ")")
    return " ".join(value.split())


def _pages(start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    return str(start) if end in (None, start) else f"{start}-{end}"
