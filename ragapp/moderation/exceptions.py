"""Errors of the moderation app; messages are safe to show to the person asking."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from ragapp.moderation.models import ModerationCheck


class ModerationError(Exception):
    """Base class: `code` is a short machine reason, `message` a plain sentence."""

    code = "moderation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModerationUnavailableError(ModerationError):
    """The content check could not give a verdict and moderation is required.

    `check` is the recorded "unavailable" verdict. Nothing unscreened may be
    shown: the caller stops and shows `message`.
    """

    code = "moderation_unavailable"

    def __init__(
        self, message: str | None = None, *, check: ModerationCheck | None = None
    ) -> None:
        if message is None:
            message = unavailable_message(check.source if check else "question")
        super().__init__(message)
        self.check = check


def unavailable_message(source: str) -> str:
    """Return what the person is told when the check is down, by what was checked."""
    if source == "answer":
        return _(
            "The content check is unavailable right now, so the answer was "
            "withheld. Try again in a minute."
        )
    return _(
        "The content check is unavailable right now, so this question was not "
        "answered. Try again in a minute."
    )
