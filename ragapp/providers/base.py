"""The interfaces every model provider meets, whatever runs behind them.

Callers (ingestion, retrieval, moderation) type against these Protocols and get
an implementation from a factory (`ragapp.providers.embeddings`), so the OpenAI
SDK, a LAN server speaking its format and the offline models stay
interchangeable. `ModerationProvider` keeps OpenAI's moderation shape whatever
screens the text.

The chat value types live here, beside `ChatProvider`, so an offline answerer
can produce the same events without importing the OpenAI SDK;
ragapp.providers.chat re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatOptions:
    """Sampling settings of one chat request; None leaves the server's default."""

    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asked for.

    `arguments` is the JSON text exactly as the model sent it: it may be
    invalid JSON, and its values are untrusted input.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens the server counted for one request."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class ChatFinished:
    """The answer is complete: always the last event of a stream that did not fail.

    `model` is the model that answered, the fallback's name when it served;
    `finish_reason` is "stop", "length", "tool_calls" or "content_filter";
    `usage` is None when the server does not report it.
    """

    model: str
    finish_reason: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage | None


ChatEvent = TextDelta | ChatFinished

# Told of each model call made on a caller's behalf: its end (usage), the
# messages sent and the text received, so the caller counts tokens and cost.
UsageSink = Callable[[ChatFinished, list[dict], str], None]


@runtime_checkable
class ChatProvider(Protocol):
    """Stream a chat completion as events, in OpenAI's message and tool formats."""

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        options: ChatOptions,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[ChatEvent]:
        """Yield TextDelta events, then one ChatFinished.

        `response_format` asks for structured output, in OpenAI's shape;
        `extra` carries further request fields (tool_choice, stop).

        Raise ProviderStreamInterruptedError if the answer breaks off after
        text was yielded (never a shortened answer that looks complete), and
        other ProviderError subclasses when no answer could be started.
        """
        ...


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


# OpenAI's moderation categories (omni-moderation), in its order. Every
# ModerationResult carries all of them, whichever provider produced it.
MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class ModerationResult:
    """One verdict on one text, in the shape of OpenAI's moderation object.

    `categories` is the provider's own verdict per category and
    `category_scores` its confidence in [0, 1]; both have a key for every name
    in MODERATION_CATEGORIES.
    """

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    model: str


@runtime_checkable
class ModerationProvider(Protocol):
    """Screen a text for harmful content, as OpenAI's `/v1/moderations` does.

    `name` is recorded with every verdict ("openai", "local").
    """

    name: str
    model: str

    def moderate(self, text: str) -> ModerationResult:
        """Return the verdict on `text`.

        Raise ProviderError subclasses when no verdict could be had (the
        service is down, slow or sent something unreadable), never a guess.
        """
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
