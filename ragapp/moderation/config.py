"""Read the moderation settings from their environment strings.

ragapp/settings.py calls these at startup, so a bad value stops the process
with ImproperlyConfigured naming the variable instead of failing on the first
question. Nothing here imports Django models.
"""

from __future__ import annotations

import json
import math

from django.core.exceptions import ImproperlyConfigured

from ragapp.providers.base import MODERATION_CATEGORIES

PROVIDER_CHOICES = ("auto", "openai", "local")


def parse_provider(value: str, variable: str) -> str:
    """Return "auto", "openai", "local" or a dotted class path."""
    choice = value.strip()
    if choice.lower() in PROVIDER_CHOICES:
        return choice.lower()
    if "." in choice and all(part.isidentifier() for part in choice.split(".")):
        return choice
    raise ImproperlyConfigured(
        f"{variable} must be auto, openai, local or the dotted path of a "
        f"ModerationProvider class, not {value!r}."
    )


def parse_thresholds(value: str, variable: str) -> dict[str, float]:
    """Return {category: threshold} from "hate=0.4,violence=0.6" or a JSON object."""
    value = value.strip()
    if not value:
        return {}
    if value.startswith("{"):
        try:
            pairs = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"{variable} is not valid JSON: {exc}") from exc
        if not isinstance(pairs, dict):
            raise ImproperlyConfigured(f"{variable} must be a JSON object.")
        items = list(pairs.items())
    else:
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, number = part.partition("=")
            if not sep:
                raise ImproperlyConfigured(
                    f"{variable}: {part.strip()!r} is not category=threshold."
                )
            items.append((name, number))
    thresholds: dict[str, float] = {}
    for name, raw in items:
        category = _category(str(name).strip(), variable)
        try:
            threshold = float(raw)
        except (TypeError, ValueError):
            threshold = math.nan
        if isinstance(raw, bool) or not 0.0 <= threshold <= 1.0:
            raise ImproperlyConfigured(
                f"{variable}: the threshold of {category} must be a number from 0 "
                f"to 1, not {raw!r}."
            )
        thresholds[category] = threshold
    return thresholds


def parse_categories(values: list[str], variable: str) -> tuple[str, ...]:
    """Return the enforced categories, in OpenAI's order; none given means all."""
    names = {_category(value.strip(), variable) for value in values if value.strip()}
    if not names:
        return MODERATION_CATEGORIES
    return tuple(name for name in MODERATION_CATEGORIES if name in names)


def _category(name: str, variable: str) -> str:
    if name not in MODERATION_CATEGORIES:
        raise ImproperlyConfigured(
            f"{variable}: {name!r} is not a moderation category; use one of "
            f"{', '.join(MODERATION_CATEGORIES)}."
        )
    return name
