"""Moderation providers: OpenAI's `/v1/moderations`, or the offline screen.

`get_moderation_provider()` follows RAGAPP_MODERATION_PROVIDER:

- "openai": the moderation endpoint at OPENAI_BASE_URL (OpenAI when unset);
- "local": the offline screen in ragapp.providers.local.moderation;
- "auto" (the default): "openai" when OPENAI_API_KEY is set and OPENAI_BASE_URL
  is unset or OpenAI's own, "local" otherwise. The servers a base URL usually
  points at (Ollama, vLLM, llama.cpp's server) have no moderation endpoint, so
  a base URL alone never sends screening there; "openai" forces it for one
  that does (a LiteLLM proxy in front of OpenAI, for one);
- the dotted path of a ModerationProvider class, built with no arguments.

Screening is in the request path, so the OpenAI call gets one quick retry at
most and the whole call, waits included, ends within
RAGAPP_MODERATION_TIMEOUT_SECONDS (plus a half-second grace for the thread
hand-off): a server that accepts the connection and then stalls cannot hold
a question longer than that.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import openai
from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ragapp.providers.base import (
    MODERATION_CATEGORIES,
    ModerationProvider,
    ModerationResult,
)
from ragapp.providers.exceptions import (
    ProviderConfigurationError,
    ProviderUnavailableError,
)
from ragapp.providers.openai import (
    Failure,
    OpenAIClientProvider,
    RetryPolicy,
    Wording,
    translate_error,
)

logger = logging.getLogger(__name__)

MODERATION_WORDING = Wording(
    unreadable=gettext_lazy(
        "The moderation service sent an answer ragapp cannot read."
    ),
    unknown_model=gettext_lazy(
        "The model provider does not know the moderation model %(model)s "
        "(HTTP 404); check RAGAPP_MODERATION_MODEL."
    ),
    rejected=gettext_lazy(
        "The model provider rejected the moderation request (HTTP %(status)d)."
    ),
)
# Someone is waiting: two retries at most, short waits, and a Retry-After over
# a second is not waited for. The overall bound is the timeout setting.
MODERATION_RETRY = RetryPolicy(
    max_retries=2, base_delay=0.2, max_delay=1.0, max_total_delay=2.0
)
# No attempt is started with less time than this left.
MIN_ATTEMPT_SECONDS = 0.3
# Time allowed past the timeout for the worker thread to hand back its result.
GRACE_SECONDS = 0.5
# Long texts go as several inputs of one request; OpenAI scores each.
MAX_INPUT_CHARS = 8000
OPENAI_HOSTS = frozenset({"api.openai.com"})
# Core categories every moderation model reports; "illicit" and its child are
# missing from the older text-moderation models and default to not found.
REQUIRED_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


class OpenAIModerationProvider(OpenAIClientProvider):
    """Screen text with an OpenAI-format `/v1/moderations` endpoint."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        timeout: float,
        retry: RetryPolicy = MODERATION_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(retry=retry, sleep=sleep, rng=rng)
        self.model = model
        self.timeout = timeout

    def moderate(self, text: str) -> ModerationResult:
        """Return OpenAI's verdict on `text`, or raise within the time budget."""
        deadline = time.monotonic() + self.timeout
        context = contextvars.copy_context()  # the active language, for messages
        future = _executor().submit(context.run, self._moderate, text, deadline)
        try:
            return future.result(timeout=self.timeout + GRACE_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()  # still queued behind stalled calls: never send it
            logger.warning(
                "Moderation request to %s did not finish in %.1f s",
                self.model,
                self.timeout,
            )
            raise ProviderUnavailableError(
                _("The moderation service did not answer in time.")
            ) from None

    def _moderate(self, text: str, deadline: float) -> ModerationResult:
        inputs = _pieces(text)
        retry = 0
        waited = 0.0
        while True:
            remaining = deadline - time.monotonic()
            try:
                raw = self._get_client().moderations.with_raw_response.create(
                    model=self.model,
                    input=inputs[0] if len(inputs) == 1 else inputs,
                    timeout=max(remaining, MIN_ATTEMPT_SECONDS),
                )
                return _parse(raw.http_response.content, self.model, len(inputs))
            except openai.OpenAIError as exc:
                failure = translate_error(exc, self.model, MODERATION_WORDING)
                cause = exc
            except ValueError as exc:  # JSON or shape: see _parse
                failure = Failure(
                    ProviderUnavailableError(MODERATION_WORDING.unreadable),
                    retryable=True,
                )
                cause = exc
            delay = self.retry.next_delay(failure, retry, waited, self._rng)
            left = deadline - time.monotonic()
            if delay is None or delay + MIN_ATTEMPT_SECONDS > left:
                raise failure.error from cause
            logger.warning(
                "Moderation request to %s failed (%s); retry %d in %.2f s",
                self.model,
                failure.error.code,
                retry + 1,
                delay,
            )
            self._sleep(delay)
            waited += delay
            retry += 1


# --- choosing a provider ---------------------------------------------------------


def moderation_provider_choice() -> str:
    """Return "openai", "local" or a dotted path: what the setting resolves to."""
    choice = settings.MODERATION_PROVIDER
    if choice != "auto":
        return choice
    if not settings.OPENAI_API_KEY:
        return "local"
    base_url = settings.OPENAI_BASE_URL
    if not base_url or (urlsplit(base_url).hostname or "") in OPENAI_HOSTS:
        return "openai"
    return "local"


def get_moderation_provider() -> ModerationProvider:
    """Return the configured provider, one per process for the same settings."""
    choice = moderation_provider_choice()
    if choice == "local":
        return _local_provider()
    if choice == "openai":
        if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
            raise ProviderConfigurationError(
                _(
                    "RAGAPP_MODERATION_PROVIDER is openai but neither "
                    "OPENAI_API_KEY nor OPENAI_BASE_URL is set."
                )
            )
        return _openai_provider(
            settings.MODERATION_MODEL,
            settings.MODERATION_TIMEOUT_SECONDS,
            settings.OPENAI_API_KEY,
            settings.OPENAI_BASE_URL,
        )
    return _custom_provider(choice)


@functools.cache
def _local_provider() -> ModerationProvider:
    from ragapp.providers.local.moderation import LocalModerationProvider

    return LocalModerationProvider()


@functools.lru_cache(maxsize=4)
def _openai_provider(
    model: str, timeout: float, api_key: str, base_url: str
) -> OpenAIModerationProvider:
    """Build one provider, and so one connection pool, per configuration.

    The key and URL only key the cache: the client reads the same settings.
    """
    del api_key, base_url
    return OpenAIModerationProvider(model, timeout=timeout)


@functools.cache
def _custom_provider(path: str) -> ModerationProvider:
    try:
        provider = import_string(path)()
    except ImportError as exc:
        raise ProviderConfigurationError(
            _("RAGAPP_MODERATION_PROVIDER names %(path)s, which cannot be imported.")
            % {"path": path}
        ) from exc
    if not isinstance(provider, ModerationProvider):
        raise ProviderConfigurationError(
            _("RAGAPP_MODERATION_PROVIDER names %(path)s, which has no moderate().")
            % {"path": path}
        )
    return provider


def clear_moderation_provider_cache() -> None:
    """Forget built providers (tests, a reloaded configuration)."""
    _local_provider.cache_clear()
    _openai_provider.cache_clear()
    _custom_provider.cache_clear()


# --- the wire format -------------------------------------------------------------


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """Return this process's pool: threads do not survive a Celery prefork."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="ragapp-moderation"
            )
            _pool_pid = os.getpid()
        return _pool


def _pieces(text: str) -> list[str]:
    """Return `text` cut at whitespace into inputs of at most MAX_INPUT_CHARS."""
    pieces: list[str] = []
    while len(text) > MAX_INPUT_CHARS:
        cut = text.rfind(" ", 0, MAX_INPUT_CHARS)
        if cut <= 0:
            cut = MAX_INPUT_CHARS
        pieces.append(text[:cut])
        text = text[cut:].lstrip()
    pieces.append(text)
    return pieces


def _parse(body: bytes, model: str, expected: int) -> ModerationResult:
    """Read a moderation object; raise ValueError for anything else.

    Several inputs give several results: a category is found if any piece
    has it, and its score is the highest.
    """
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    results = data.get("results")
    if not isinstance(results, list) or len(results) != expected:
        raise ValueError("results is missing or has the wrong length")
    categories = dict.fromkeys(MODERATION_CATEGORIES, False)
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.0)
    flagged = False
    for result in results:
        found, score, hit = _read_result(result)
        flagged = flagged or hit
        for name in MODERATION_CATEGORIES:
            categories[name] = categories[name] or found[name]
            scores[name] = max(scores[name], score[name])
    answered_model = data.get("model")
    return ModerationResult(
        flagged=flagged,
        categories=categories,
        category_scores=scores,
        model=answered_model if isinstance(answered_model, str) else model,
    )


def _read_result(result: Any) -> tuple[dict[str, bool], dict[str, float], bool]:
    if not isinstance(result, dict):
        raise ValueError("a result is not an object")
    flagged = result.get("flagged")
    found = result.get("categories")
    scores = result.get("category_scores")
    if not (
        isinstance(flagged, bool)
        and isinstance(found, dict)
        and isinstance(scores, dict)
    ):
        raise ValueError("a result lacks flagged, categories or category_scores")
    missing = [n for n in REQUIRED_CATEGORIES if n not in found or n not in scores]
    if missing:
        raise ValueError(f"a result lacks the categories {missing}")
    hits: dict[str, bool] = {}
    numbers: dict[str, float] = {}
    for name in MODERATION_CATEGORIES:
        hit = found.get(name) or False
        score = scores.get(name) or 0.0
        if not isinstance(hit, bool):
            raise ValueError(f"categories[{name!r}] is not a boolean")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"category_scores[{name!r}] is not a number")
        if not math.isfinite(score):
            raise ValueError(f"category_scores[{name!r}] is not finite")
        hits[name] = hit
        numbers[name] = min(1.0, max(0.0, float(score)))
    return hits, numbers, flagged
