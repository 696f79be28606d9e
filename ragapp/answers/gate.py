"""Hold answer text back until the moderation window holding it has passed.

A flagged answer that has already reached a screen cannot be un-read, so no
text leaves the server (to the web page or any API) before the check that
covers it. Text collects in a window; the window is screened (with the tail
of the one before, so a phrase cut at the boundary is still seen whole) and
only then released. The first window is small so the first words come
quickly; later ones are larger so a long answer costs few checks; a window
that has waited long (a slow model) is screened early. At the end the whole
answer is screened once more, and the last window is released only after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from ragapp.answers.events import AnswerEvent, Delta
from ragapp.answers.models import Message
from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.models import ModerationCheck

Screen = Callable[[str], ModerationCheck]


class AnswerWithheldError(Exception):
    """The answer may not be shown: moderation flagged it or could not check it.

    `status` is the message status to record and `message` what the reader is
    told; `check` is the verdict that decided, when one was recorded.
    """

    def __init__(
        self, status: str, message: str, check: ModerationCheck | None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.check = check


@dataclass
class ModerationGate:
    """Events waiting for their window's verdict, and what was already released."""

    screen: Screen
    first_window: int
    window: int
    max_wait_seconds: float
    clock: Callable[[], float] = time.monotonic
    released_text: str = ""
    checks: list[ModerationCheck] = field(default_factory=list)
    _pending: list[AnswerEvent] = field(default_factory=list)
    _pending_text: str = ""
    _pending_since: float | None = None

    @property
    def text(self) -> str:
        """Everything written so far, released or not."""
        return self.released_text + self._pending_text

    def hold(self, events: list[AnswerEvent]) -> list[AnswerEvent]:
        """Take new events; return those whose window has now passed."""
        for event in events:
            if isinstance(event, Delta):
                self._pending_text += event.text
                if self._pending_since is None:
                    self._pending_since = self.clock()
            self._pending.append(event)
        if self._due():
            return self._release(self._window_to_screen())
        return []

    def finish(self) -> list[AnswerEvent]:
        """Screen the whole answer and release what is left."""
        return self._release(self.text)

    def _due(self) -> bool:
        if not self._pending_text.strip():
            return False
        size = self.first_window if not self.released_text else self.window
        if len(self._pending_text) >= size:
            return True
        waited = self.clock() - (self._pending_since or self.clock())
        return waited >= self.max_wait_seconds

    def _window_to_screen(self) -> str:
        overlap = self.released_text[-max(self.window // 4, 1) :]
        return overlap + self._pending_text

    def _release(self, window: str) -> list[AnswerEvent]:
        if window.strip():
            self._check(window)
        released = _merged(self._pending)
        self.released_text += self._pending_text
        self._pending, self._pending_text, self._pending_since = [], "", None
        return released

    def _check(self, window: str) -> None:
        try:
            check = self.screen(window)
        except ModerationUnavailableError as exc:
            if exc.check is not None:
                self.checks.append(exc.check)
            raise AnswerWithheldError(
                Message.Status.FAILED, exc.message, exc.check
            ) from exc
        self.checks.append(check)
        if check.flagged:
            raise AnswerWithheldError(
                Message.Status.STOPPED,
                _(
                    "The answer was withheld: the content check flagged it "
                    "(%(categories)s)."
                )
                % {"categories": flagged_categories(check)},
                check,
            )


def _merged(events: list[AnswerEvent]) -> list[AnswerEvent]:
    """Join consecutive deltas, keeping each citation after the text citing it."""
    merged: list[AnswerEvent] = []
    for event in events:
        if isinstance(event, Delta) and merged and isinstance(merged[-1], Delta):
            merged[-1] = Delta(text=merged[-1].text + event.text)
        else:
            merged.append(event)
    return merged


def flagged_categories(check: ModerationCheck) -> str:
    names = [name for name, hit in (check.categories or {}).items() if hit]
    return ", ".join(names) or _("unspecified")
