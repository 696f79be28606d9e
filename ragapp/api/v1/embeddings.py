"""POST /v1/embeddings: float or base64, text or token ids, with usage.

The official Python SDK asks for base64 unless told otherwise and decodes
little-endian float32, so both encodings are served. Token-id inputs (what
LangChain sends) are decoded with cl100k_base, the text-embedding-3 encoding,
which ships offline. Offline, OpenAI's embedding model names are served by
the configured local model, and the reply names the model that really
embedded.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from ragapp.api.exceptions import ApiError, UnavailableError
from ragapp.api.usage import tokens_spent
from ragapp.api.v1.catalog import embedding_models, model_server_configured
from ragapp.documents.tokens import count_tokens, encoding
from ragapp.providers.embeddings import get_embedding_provider
from ragapp.providers.exceptions import ProviderError

router = Router(tags=["embeddings"])

MAX_INPUTS = 2048
MAX_REQUEST_TOKENS = 300_000


class EmbeddingRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] | list[int] | list[list[int]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        items: list[Any] = [value]
    else:
        items = list(value)
        if not items:
            raise ApiError(_("'input' must not be empty."), param="input")
        if all(isinstance(i, int) for i in items):
            items = [items]
    if len(items) > MAX_INPUTS:
        raise ApiError(
            _("'input' may hold at most %(n)d items.") % {"n": MAX_INPUTS},
            param="input",
        )
    texts = []
    for position, item in enumerate(items):
        if isinstance(item, list):
            if not item:
                raise ApiError(
                    _("Token arrays must not be empty."), param=f"input[{position}]"
                )
            try:
                item = encoding().decode(item)
            except (KeyError, ValueError, OverflowError):
                raise ApiError(
                    _("Input %(n)d holds token ids cl100k_base does not have.")
                    % {"n": position},
                    param=f"input[{position}]",
                ) from None
        if not item.strip():
            raise ApiError(
                _("Input %(n)d is empty; there is nothing to embed.") % {"n": position},
                param=f"input[{position}]",
            )
        texts.append(item)
    return texts


def _served_model(requested: str) -> str:
    if requested in embedding_models():
        return requested
    if requested.startswith("text-embedding-") and not model_server_configured():
        return settings.EMBEDDING_MODEL
    raise ApiError(
        _("The embedding model '%(model)s' does not exist; choose one of %(known)s.")
        % {"model": requested, "known": ", ".join(embedding_models())},
        param="model",
        code="model_not_found",
        status=404,
    )


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(math.fsum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


@router.post("/embeddings", summary="Create embeddings")
def embeddings_create(request: HttpRequest, body: EmbeddingRequest) -> dict:
    texts = _texts(body.input)
    model = _served_model(body.model)
    tokens = sum(count_tokens(text) for text in texts)
    if tokens > MAX_REQUEST_TOKENS:
        raise ApiError(
            _("This request has %(n)d tokens; at most %(max)d are allowed.")
            % {"n": tokens, "max": MAX_REQUEST_TOKENS},
            param="input",
            code="max_tokens_per_request",
        )
    try:
        provider = get_embedding_provider(model)
        if body.dimensions is not None and body.dimensions > provider.dimensions:
            raise ApiError(
                _(
                    "'%(model)s' makes %(native)d-dimensional vectors; ask for at most that."
                )
                % {"model": model, "native": provider.dimensions},
                param="dimensions",
            )
        vectors = provider.embed(texts)
    except ProviderError as exc:
        raise UnavailableError(exc.message) from exc
    tokens_spent(request, tokens)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encoded(
                    _shorten(vector, body.dimensions), body.encoding_format
                ),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
