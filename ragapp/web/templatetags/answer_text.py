"""Template filters for answer text while it streams (before Markdown renders it)."""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Markers arrive normalised, one number per bracket (ragapp.answers.citations).
_MARKER = re.compile(r"\[(\d{1,3})\]")


@register.filter
def live_text(text: str, message_id: int) -> SafeString:
    """Escape streamed text and link its citation markers to their sources.

    The text is escaped first; a marker is digits in brackets, which escaping
    leaves as they are, so the links are the only markup in the result.
    """
    escaped = escape(text)

    def link(match: re.Match[str]) -> str:
        marker = int(match.group(1))
        href = reverse("web:citation", args=[message_id, marker])
        return format_html('<a class="cite" href="{}">[{}]</a>', href, marker)

    return mark_safe(_MARKER.sub(link, escaped))  # noqa: S308 - escaped above
