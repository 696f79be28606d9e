"""Screen questions and answers, and record every verdict.

`screen()` is the one door: it asks the configured provider, applies ragapp's
thresholds and enforced categories, writes a ModerationCheck and returns it.
When the provider cannot give a verdict (down, slow, unreadable, misconfigured)
the check is recorded as "unavailable"; with RAGAPP_MODERATION_REQUIRED (the
default) that raises ModerationUnavailableError, so nothing unscreened is shown
(fail closed, T16), otherwise the unscreened text is let through.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.models import EXCERPT_CHARS, ModerationCheck
from ragapp.providers.base import MODERATION_CATEGORIES, ModerationResult
from ragapp.providers.exceptions import ProviderError
from ragapp.providers.moderation import (
    get_moderation_provider,
    moderation_provider_choice,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """ragapp's decision on a provider's result."""

    flagged: bool
    categories: dict[str, bool]


def verdict_apply(
    result: ModerationResult,
    *,
    thresholds: Mapping[str, float],
    enforced: Sequence[str],
) -> Verdict:
    """Return the verdict under ragapp's policy.

    A category with a threshold is found when its score is at or over it;
    any other keeps the provider's own verdict. Only enforced categories
    flag the text; the others are recorded for the operator to see.
    """
    categories: dict[str, bool] = {}
    for name in MODERATION_CATEGORIES:
        if name in thresholds:
            score = result.category_scores.get(name, 0.0)
            categories[name] = score >= thresholds[name]
        else:
            categories[name] = bool(result.categories.get(name, False))
    flagged = any(categories[name] for name in enforced)
    return Verdict(flagged=flagged, categories=categories)


def screen(text: str, *, user: Any, source: str) -> ModerationCheck:
    """Screen `text`, record the decision and return the record.

    `source` is "question", "answer" or "api"; `user` is who asked (None or
    an anonymous user for none). Raise ModerationUnavailableError, after
    recording an "unavailable" check, when no verdict could be had and
    moderation is required.
    """
    if source not in ModerationCheck.Source.values:
        raise ValueError(f"Unknown moderation source {source!r}.")
    started = time.monotonic()
    provider_name = _provider_label()
    try:
        provider = get_moderation_provider()
        provider_name = getattr(provider, "name", provider_name)
        if text.strip():
            result = provider.moderate(text)
        else:
            result = _nothing_to_screen(provider.model)
    except Exception as exc:
        # Whatever broke, the guard fails closed with a message, never a 500.
        if isinstance(exc, ProviderError):
            reason = exc.message
            logger.warning("Moderation unavailable (%s): %s", exc.code, reason)
        else:
            reason = "The moderation provider failed unexpectedly."
            logger.exception("Moderation provider %s failed", provider_name)
        check = _record(
            text,
            user=user,
            source=source,
            status=ModerationCheck.Status.UNAVAILABLE,
            provider=provider_name,
            started=started,
            error=reason,
        )
        if settings.MODERATION_REQUIRED:
            raise ModerationUnavailableError(check=check) from exc
        return check

    verdict = verdict_apply(
        result,
        thresholds=settings.MODERATION_THRESHOLDS,
        enforced=settings.MODERATION_CATEGORIES,
    )
    check = _record(
        text,
        user=user,
        source=source,
        status=ModerationCheck.Status.OK,
        provider=provider_name,
        started=started,
        flagged=verdict.flagged,
        categories=verdict.categories,
        category_scores=dict(result.category_scores),
        model=result.model,
    )
    if check.flagged:
        logger.info(
            "Moderation flagged a %s (check %s): %s",
            source,
            check.pk,
            ", ".join(check.flagged_categories),
        )
    return check


# --- helpers -------------------------------------------------------------------


def _provider_label() -> str:
    """Return the configured provider's name before it is built."""
    try:
        return moderation_provider_choice()
    except Exception:  # settings themselves broken: still record something
        return "unknown"


def _storable(text: str) -> str:
    """Return `text` as PostgreSQL can store it: no NUL, no lone surrogate."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


def _nothing_to_screen(model: str) -> ModerationResult:
    return ModerationResult(
        flagged=False,
        categories=dict.fromkeys(MODERATION_CATEGORIES, False),
        category_scores=dict.fromkeys(MODERATION_CATEGORIES, 0.0),
        model=model,
    )


def _record(
    text: str,
    *,
    user: Any,
    source: str,
    status: str,
    provider: str,
    started: float,
    flagged: bool = False,
    categories: dict[str, bool] | None = None,
    category_scores: dict[str, float] | None = None,
    model: str = "",
    error: str = "",
) -> ModerationCheck:
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None  # AnonymousUser
    return ModerationCheck.objects.create(
        user=user,
        source=source,
        status=status,
        flagged=flagged,
        categories=categories or {},
        category_scores=category_scores or {},
        provider=provider[:200],
        model=model[:200],
        text_excerpt=_storable(text[:EXCERPT_CHARS]),
        text_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        latency_ms=round((time.monotonic() - started) * 1000),
        error=error,
    )
