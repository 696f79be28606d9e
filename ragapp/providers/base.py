"""The interfaces every model provider meets, whatever runs behind them.

Callers (ingestion, retrieval, moderation) type against these Protocols and get
an implementation from a factory (`ragapp.providers.embeddings`), so the OpenAI
SDK, a LAN server speaking its format and the offline models stay
interchangeable. `ChatProvider` and `ModerationProvider` join this module when
answers and moderation are built; they keep OpenAI's shapes too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turn text into unit vectors of one model, for cosine search in pgvector.

    `dimensions` is the vector size a collection stores; `max_input_tokens` is
    the longest input in the model's own tokens: local models truncate past it,
    so chunkers should stay under it. Documents and queries go through separate
    methods because some models (e5, nomic) want a different prefix on each.
    """

    model: str
    dimensions: int
    max_input_tokens: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one L2-normalised vector per document text, in input order.

        Raise ValueError for a blank text (there is nothing to embed, and the
        OpenAI API rejects it), ProviderError subclasses when the model fails.
        """
        ...

    def embed_query(self, text: str) -> list[float]:
        """Return the L2-normalised vector of a search query."""
        ...


def validate_texts(texts: Sequence[str]) -> list[str]:
    """Return `texts` as a list, or raise why it cannot be embedded.

    A bare string is refused: iterating it would embed its characters one by one.
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts; use embed_query() for one.")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"Text {position} is {type(text).__name__}, not str.")
        if not text.strip():
            raise ValueError(f"Text {position} is blank; there is nothing to embed.")
    return texts
