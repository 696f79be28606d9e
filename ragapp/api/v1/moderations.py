"""POST /v1/moderations: the screening every question and answer gets, on demand.

Results carry all 13 of OpenAI's categories whatever provider screened. The
local classifier scores some categories only; the others are sent as false /
0.0 with the input types they were checked for (none), as WIRE.md asks.
Images are not screened offline: an image part is refused with a 400 rather
than passed as safe.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Schema
from pydantic import ConfigDict

from ragapp.api.exceptions import ApiError, UnavailableError
from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.services import screen
from ragapp.providers.base import MODERATION_CATEGORIES

router = Router(tags=["moderations"])

MAX_INPUTS = 32
MAX_CHARS = 100_000


class TextPart(Schema):
    type: Literal["text"]
    text: str


class ImagePart(Schema):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: dict[str, Any]


class ModerationRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[TextPart | ImagePart]
    model: str | None = None


def _texts(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise ApiError(_("'input' must not be empty."), param="input")
    if len(items) > MAX_INPUTS:
        raise ApiError(
            _("'input' may hold at most %(n)d items.") % {"n": MAX_INPUTS},
            param="input",
        )
    if any(isinstance(item, ImagePart) for item in items):
        raise ApiError(
            _("This server screens text only; remove the image parts."),
            param="input",
            code="unsupported_input",
        )
    if any(isinstance(item, TextPart) for item in items):
        # Parts make up one input together, as OpenAI treats them.
        items = [" ".join(item.text for item in items)]
    if any(len(item) > MAX_CHARS for item in items):
        raise ApiError(
            _("Each input may be at most %(n)d characters.") % {"n": MAX_CHARS},
            param="input",
        )
    return items


def moderation_result(check: Any) -> dict:
    """One result object of OpenAI's shape from a stored ModerationCheck."""
    categories = {
        name: bool(check.categories.get(name, False)) for name in MODERATION_CATEGORIES
    }
    scores = {
        name: float(check.category_scores.get(name, 0.0))
        for name in MODERATION_CATEGORIES
    }
    scored = {name for name in MODERATION_CATEGORIES if name in check.category_scores}
    return {
        "flagged": bool(check.flagged),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {
            name: (["text"] if name in scored else []) for name in MODERATION_CATEGORIES
        },
    }


@router.post("/moderations", summary="Create a moderation")
def moderations_create(request: HttpRequest, body: ModerationRequest) -> dict:
    results = []
    model = ""
    for text in _texts(body.input):
        try:
            check = screen(text, user=request.auth.user, source="api")
        except ModerationUnavailableError as exc:
            raise UnavailableError(
                _("The moderation service is not answering; try again in a minute."),
                code="moderation_unavailable",
            ) from exc
        if check.status != "ok":
            raise UnavailableError(
                _("The moderation service is not answering; try again in a minute."),
                code="moderation_unavailable",
            )
        model = model or check.model or check.provider
        results.append(moderation_result(check))
    return {"id": f"modr-{uuid.uuid4().hex}", "model": model, "results": results}
