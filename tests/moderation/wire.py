"""OpenAI's moderation object on the wire, for respx routes."""

from __future__ import annotations

import json

import httpx

from ragapp.providers.base import MODERATION_CATEGORIES


def moderation_result(*found: str, score: float = 0.91) -> dict:
    """Return one result as omni-moderation-latest sends it."""
    return {
        "flagged": bool(found),
        "categories": {name: name in found for name in MODERATION_CATEGORIES},
        "category_scores": {
            name: score if name in found else 0.000012 for name in MODERATION_CATEGORIES
        },
        "category_applied_input_types": {
            name: ["text"] for name in MODERATION_CATEGORIES
        },
    }


def moderation_body(*results: dict, model: str = "omni-moderation-latest") -> dict:
    return {"id": "modr-5f2c9d", "model": model, "results": list(results)}


def answer(*found: str, score: float = 0.91):
    """Return a respx side effect answering one result per input."""

    def respond(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["input"]
        count = len(inputs) if isinstance(inputs, list) else 1
        result = moderation_result(*found, score=score)
        return httpx.Response(200, json=moderation_body(*[result] * count))

    return respond


def server_error(status: int = 500) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    )
