"""Citation markers in a streamed answer: kept when they point at a passage, dropped otherwise.

The model writes [1], [2][3] or [1, 2] after a claim; the number is the
passage's position in what it was given. A number that points at nothing it
was given is removed from the text before anyone sees it, so a citation can
never be invented. Markers may be split across streamed pieces ("[" in one,
"12]" in the next): a short tail that could still become a marker is held
back until the next piece decides it.
"""

from __future__ import annotations

import re
from collections.abc import Container

# "[3]", "[1, 2]", "[1][2]" (each bracket on its own), "[ 4 ]".
_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]")
# An unfinished marker at the end of the text seen so far.
_PARTIAL = re.compile(r"\[[\d\s,;]{0,24}$")


class CitationFilter:
    """Rewrite a stream of text pieces, keeping only markers of known passages.

    `feed` returns the text that is safe to show now and the markers that
    appeared in it for the first time; `finish` flushes what was held back.
    Valid markers are normalised to one bracket per number: "[1, 2]" → "[1][2]".
    """

    def __init__(self, valid: Container[int]) -> None:
        self.valid = valid
        self.cited: list[int] = []
        self._held = ""

    def feed(self, piece: str) -> tuple[str, list[int]]:
        text = self._held + piece
        partial = _PARTIAL.search(text)
        if partial:
            self._held, text = text[partial.start() :], text[: partial.start()]
        else:
            self._held = ""
        return self._rewrite(text)

    def finish(self) -> tuple[str, list[int]]:
        text, self._held = self._held, ""
        return self._rewrite(text)

    def _rewrite(self, text: str) -> tuple[str, list[int]]:
        new: list[int] = []

        def replace(match: re.Match[str]) -> str:
            numbers = [int(n) for n in re.split(r"[,;]", match.group(1))]
            kept = [n for n in numbers if n in self.valid]
            for number in kept:
                if number not in self.cited:
                    self.cited.append(number)
                    new.append(number)
            return "".join(f"[{n}]" for n in kept)

        return _MARKER.sub(replace, text), new


def strip_markers(text: str) -> str:
    """Remove every citation marker: earlier answers in a prompt must not cite
    passages by numbers that meant something else in their own turn."""
    return re.sub(r"\s*" + _MARKER.pattern, "", text)
