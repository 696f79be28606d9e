"""Text a reader would not see: invisible characters, and the hidden-text warning.

Documents are written by people the asker does not control, and text that a
reader cannot see is the classic way to slip instructions to a model that reads
the document (indirect prompt injection, RELIABILITY.md T13). Every parser
reports such text with one warning per kind, each starting with
HIDDEN_TEXT_PREFIX, so admins can find the documents in the list and the tests
can count them.

What happens to the text depends on how sure the parser can be that nobody
sees it:

- Text a format marks as not shown (HTML `hidden`, `display:none`, comments;
  DOCX hidden runs, `w:vanish`) is dropped. A reader who opens the document
  cannot find it, so an answer must not be built on it or cite it: a citation
  is only worth something if the reader can check it.
- Text that is merely drawn so that it may not be seen (white or 1-pt text,
  PDF text render mode 3) is kept and searchable. White text may sit on a dark
  band, and invisible text is how OCR software lays a searchable text layer
  over a scanned page; dropping it would silently lose real content. It reaches
  a model only as a delimited, quoted passage (ragapp.answers.prompts), and the
  warning lets an admin look at the document.
- Invisible characters (Unicode tag characters, zero-width and bidi marks) are
  stripped from the indexed text of every format: they carry no meaning a
  reader sees, tag characters can spell out whole ASCII instructions invisibly
  ("ASCII smuggling"), and zero-width characters split words so filters miss
  them. A lone zero-width joiner or non-joiner between letters is kept:
  Persian, Indic scripts and emoji sequences need it.
"""

from __future__ import annotations

import re
from collections import Counter

# Every hidden-text warning starts with this; admins and tests look for it.
HIDDEN_TEXT_PREFIX = "Hidden text:"

# U+E0000-U+E007F tag characters spell ASCII invisibly.
_TAGS = "\U000e0000-\U000e007f"
# Zero-width space, LRM/RLM, word joiner and invisible operators, BOM.
_ALWAYS = "\u200b\u200e\u200f\u2060-\u2064\ufeff"
_JOINERS = "\u200c\u200d"  # ZWNJ, ZWJ
_INVISIBLE = re.compile(f"[{_TAGS}{_ALWAYS}{_JOINERS}]+")
_TAG_RUN = re.compile(f"[{_TAGS}]+")


def hidden_text_warning(detail: str) -> str:
    """Return a hidden-text warning: the stable prefix, then `detail`."""
    return f"{HIDDEN_TEXT_PREFIX} {detail}"


def is_hidden_text_warning(warning: str) -> bool:
    """Return whether a document warning reports hidden text."""
    return warning.startswith(HIDDEN_TEXT_PREFIX)


class InvisibleCharacters:
    """Strip invisible characters from texts and remember what was removed."""

    def __init__(self) -> None:
        self.tags = 0
        self.tag_text: list[str] = []
        self.zero_width = 0
        # Runs of two or more (hidden data) or characters inside a Latin word
        # (splitting it past a filter); a lone one elsewhere is typography.
        self.suspicious = 0

    def strip(self, text: str) -> str:
        """Return `text` without invisible characters, counting them."""
        if not _INVISIBLE.search(text):
            return text
        return _INVISIBLE.sub(lambda match: self._replace(match, text), text)

    def _replace(self, match: re.Match[str], text: str) -> str:
        run = match.group()
        start, end = match.span()
        if (
            run in _JOINERS
            and start > 0
            and end < len(text)
            and not text[start - 1].isspace()
            and not text[end].isspace()
        ):
            return run  # a lone joiner inside a word or emoji sequence
        counts = Counter("tag" if ch >= "\U000e0000" else "zw" for ch in run)
        self.tags += counts["tag"]
        self.zero_width += counts["zw"]
        inside_word = (
            start > 0
            and end < len(text)
            and text[start - 1].isascii()
            and text[start - 1].isalpha()
            and text[end].isascii()
            and text[end].isalpha()
        )
        if counts["zw"] and (len(run) > 1 or inside_word):
            self.suspicious += 1
        for tags in _TAG_RUN.findall(run):
            if len(self.tag_text) < 3:
                self.tag_text.append(_decode_tags(tags))
        return ""

    def warnings(self) -> list[str]:
        """Return hidden-text warnings for what was stripped, if any of it hid text."""
        found = []
        if self.tags:
            sample = " / ".join(t for t in self.tag_text if t)
            found.append(
                hidden_text_warning(
                    f"{self.tags} Unicode tag characters, which no reader sees, "
                    "were removed"
                    + (f" (they spelled “{_shorten(sample)}”)." if sample else ".")
                )
            )
        if self.suspicious:
            found.append(
                hidden_text_warning(
                    f"{self.zero_width} zero-width characters were removed; "
                    f"{self.suspicious} of them sat in runs or inside words, as "
                    "if to hide data or to split words past a filter."
                )
            )
        return found


def _decode_tags(run: str) -> str:
    """Return the ASCII that tag characters stand for (U+E0041 is "A")."""
    return "".join(
        chr(ord(ch) - 0xE0000) for ch in run if 0x20 <= ord(ch) - 0xE0000 < 0x7F
    )


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample(text: str) -> str:
    """Return a short, single-line quote of hidden text for a warning."""
    return _shorten(text, 60)
