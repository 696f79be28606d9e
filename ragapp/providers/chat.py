"""Streaming chat completions through the official `openai` SDK.

OpenAI itself or any server speaking its format (Ollama, llama.cpp's server,
vLLM). The client, the retry policy and the translation of SDK errors are the
embedding provider's (ragapp.providers.openai); what differs is streaming:

- A failure is retried only while nothing of the answer has been yielded:
  once a person has seen text, asking again would show a different answer
  under the same start and pay for it twice. After that point every failure
  raises `ProviderStreamInterruptedError`, so a cut-off answer never passes
  for a complete one.
- One `stream()` makes at most four upstream calls, the fallback model's
  included, and spends at most a minute on attempts and waits together.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openai.types.chat import ChatCompletionChunk

from ragapp.providers.base import (
    ChatEvent,
    ChatFinished,
    ChatOptions,
    ChatProvider,
    TextDelta,
    ToolCall,
    Usage,
    UsageSink,
)
from ragapp.providers.exceptions import (
    ProviderRateLimitedError,
    ProviderStreamInterruptedError,
    ProviderUnavailableError,
)
from ragapp.providers.openai import (
    Failure,
    OpenAIClientProvider,
    RetryPolicy,
    Wording,
    translate_error,
)

__all__ = [
    "ChatEvent",
    "ChatFinished",
    "ChatOptions",
    "ChatProvider",
    "OpenAIChatProvider",
    "TextDelta",
    "ToolCall",
    "Usage",
    "UsageSink",
    "complete",
    "default_chat_options",
    "get_chat_provider",
]

logger = logging.getLogger(__name__)

CHAT_WORDING = Wording(
    unreadable=gettext_lazy("The model server sent a chat answer ragapp cannot read."),
    unknown_model=gettext_lazy(
        "The model provider does not know the chat model %(model)s (HTTP 404); "
        "check RAGAPP_CHAT_MODEL and RAGAPP_FALLBACK_CHAT_MODEL."
    ),
    rejected=gettext_lazy(
        "The model provider rejected the chat request (HTTP %(status)d)."
    ),
)
# Someone is waiting for the first words: three retries at most (four calls),
# and a minute for the attempts and the waits between them together.
CHAT_RETRY = RetryPolicy(max_retries=3, max_delay=20.0, max_elapsed=60.0)
# Calls given to the chat model before the fallback model, when set, takes over.
PRIMARY_ATTEMPTS = 2
# No attempt is started with less time than this left in the budget.
MIN_ATTEMPT_SECONDS = 1.0

# Servers other than OpenAI use a few other names for the same ends.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
    "eos": "stop",
    "eos_token": "stop",
}


class _MalformedChunkError(Exception):
    """A stream chunk is valid JSON but not the shape of a chat.completion.chunk."""


class _NotStartedError(Exception):
    """An attempt failed before any of the answer was yielded: it may be retried."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error.message)
        self.failure = failure


@dataclass
class _PartialToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _Answer:
    """Collect one streamed answer: its finish reason, tool calls and usage."""

    def __init__(self) -> None:
        self.started = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._tool_calls: dict[int, _PartialToolCall] = {}

    def feed(self, chunk: Any) -> list[str]:
        """Take one chunk; return the pieces of text it adds to the answer."""
        if not isinstance(chunk, ChatCompletionChunk):
            raise _MalformedChunkError(type(chunk).__name__)  # `data: 42`
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = _usage(usage)
        choices = getattr(chunk, "choices", None) or []
        if not isinstance(choices, list):
            raise _MalformedChunkError("choices")
        texts: list[str] = []
        for choice in choices:
            if getattr(choice, "index", 0) != 0:
                continue  # ragapp asks for one choice; ignore any others
            delta = getattr(choice, "delta", None)
            # A refusal is the model's answer too; the person should read it.
            for name in ("content", "refusal"):
                piece = getattr(delta, name, None)
                if piece:
                    texts.append(_text(piece))
            for call in getattr(delta, "tool_calls", None) or ():
                self._add_tool_call(call)
            reason = getattr(choice, "finish_reason", None)
            if reason is not None:
                if reason not in FINISH_REASONS:
                    # vLLM's "abort", for one, means the answer was cut short.
                    raise _MalformedChunkError(f"finish_reason {reason!r}")
                self.finish_reason = FINISH_REASONS[reason]
        if texts:
            self.started = True
        return texts

    def _add_tool_call(self, delta: Any) -> None:
        self.started = True
        index = getattr(delta, "index", None)
        call_id = getattr(delta, "id", None)
        if not isinstance(index, int):
            # `index` is required, but some servers leave it out: a new id
            # starts a new call, anything else continues the last one.
            known = {part.id for part in self._tool_calls.values()}
            new = call_id and call_id not in known
            index = len(self._tool_calls) - (0 if new or not self._tool_calls else 1)
        part = self._tool_calls.setdefault(index, _PartialToolCall())
        if call_id and not part.id:
            part.id = _text(call_id)
        function = getattr(delta, "function", None)
        name = getattr(function, "name", None)
        if name and not part.name:
            part.name = _text(name)
        arguments = getattr(function, "arguments", None)
        if arguments:
            part.arguments.append(_text(arguments))

    def finished(self, model: str) -> ChatFinished:
        calls = tuple(
            ToolCall(
                id=part.id or f"call_{index}",
                name=part.name,
                arguments="".join(part.arguments),
            )
            for index, part in sorted(self._tool_calls.items())
        )
        reason = self.finish_reason or "stop"
        if calls and reason == "stop":
            reason = "tool_calls"  # Ollama and others end tool calls with "stop"
        return ChatFinished(
            model=model, finish_reason=reason, tool_calls=calls, usage=self.usage
        )


class OpenAIChatProvider(OpenAIClientProvider):
    """Stream chat completions from an OpenAI-format `/v1/chat/completions`."""

    def __init__(
        self,
        *,
        retry: RetryPolicy = CHAT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(retry=retry, sleep=sleep, rng=rng)

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        options: ChatOptions,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[ChatEvent]:
        """Yield the answer as TextDelta events, then one ChatFinished.

        `response_format` is passed on as OpenAI's structured-output
        parameter (e.g. a JSON schema) for callers that parse the answer;
        `extra` holds further request fields an API caller sent
        (tool_choice, stop, parallel_tool_calls).
        """
        request = _request(messages, options, tools, response_format)
        for name, value in (extra or {}).items():
            request.setdefault(name, value)
        models = _models(options.model)
        model = models[0]
        calls = 0
        spent = 0.0  # attempts and waits, against the policy's max_elapsed
        while True:
            calls += 1
            began = time.monotonic()
            try:
                yield from self._attempt(model, request, self._timeout(spent))
                return
            except _NotStartedError as failed:
                failure, cause = failed.failure, failed.__cause__
            spent += time.monotonic() - began
            plan = self._next_try(failure, models, model, calls, spent)
            if plan is None:
                logger.warning(
                    "Chat request to %s failed (%s) after %d call(s); giving up",
                    model,
                    failure.error.code,
                    calls,
                )
                raise _final_error(failure) from cause
            next_model, delay = plan
            logger.warning(
                "Chat request to %s failed (%s); calling %s in %.1f s",
                model,
                failure.error.code,
                next_model,
                delay,
            )
            if delay:
                self._sleep(delay)
                spent += delay
            model = next_model

    # --- one call -------------------------------------------------------------

    def _attempt(
        self, model: str, request: dict[str, Any], timeout: float
    ) -> Iterator[ChatEvent]:
        answer = _Answer()
        cause: BaseException | None = None
        try:
            response = self._get_client().chat.completions.create(
                model=model, timeout=timeout, **request
            )
            with response:
                for chunk in response:
                    for text in answer.feed(chunk):
                        yield TextDelta(text)
        except openai.OpenAIError as exc:
            failure, cause = translate_error(exc, model, CHAT_WORDING), exc
        except (json.JSONDecodeError, _MalformedChunkError) as exc:
            failure = Failure(
                ProviderUnavailableError(CHAT_WORDING.unreadable), retryable=True
            )
            cause = exc
        else:
            failure = Failure(
                ProviderUnavailableError(
                    _("The model server ended its answer without finishing it.")
                ),
                retryable=True,
            )
        if answer.finish_reason is not None:
            if cause is not None:
                # The answer itself is complete; only the usage report is lost.
                logger.warning("Chat stream from %s failed after its end", model)
            yield answer.finished(model)
            return
        if answer.started:
            logger.warning(
                "Chat stream from %s broke off part-way (%s)",
                model,
                failure.error.code,
            )
            raise ProviderStreamInterruptedError() from cause
        raise _NotStartedError(failure) from cause

    def _timeout(self, spent: float) -> float:
        """Return the timeout of the next call: the setting, within the budget."""
        timeout = settings.MODEL_TIMEOUT_SECONDS
        if self.retry.max_elapsed is not None:
            left = max(self.retry.max_elapsed - spent, MIN_ATTEMPT_SECONDS)
            timeout = min(timeout, left)
        return timeout

    def _next_try(
        self,
        failure: Failure,
        models: tuple[str, ...],
        model: str,
        calls: int,
        spent: float,
    ) -> tuple[str, float] | None:
        """Return the model to call next and the wait before, or None to give up."""
        fallback = models[-1] if model != models[-1] else None
        if failure.model_missing:
            if fallback is None or calls > self.retry.max_retries:
                return None
            return fallback, 0.0
        # Count a minimal attempt as spent already: a retry needs time to run.
        delay = self.retry.next_delay(
            failure, calls - 1, spent + MIN_ATTEMPT_SECONDS, self._rng
        )
        if delay is None:
            return None
        if fallback is not None and calls >= PRIMARY_ATTEMPTS:
            return fallback, delay
        return model, delay


# --- helpers -------------------------------------------------------------------


def _request(
    messages: Sequence[Mapping[str, Any]],
    options: ChatOptions,
    tools: Sequence[Mapping[str, Any]] | None,
    response_format: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    # OpenAI's newer models refuse max_tokens; servers on the LAN know only it.
    limit = "max_tokens" if settings.OPENAI_BASE_URL else "max_completion_tokens"
    sampling = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "seed": options.seed,
        limit: options.max_tokens,
    }
    request: dict[str, Any] = {
        "messages": [dict(message) for message in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        **{name: value for name, value in sampling.items() if value is not None},
    }
    if tools:
        request["tools"] = [dict(tool) for tool in tools]
    if response_format:
        request["response_format"] = dict(response_format)
    return request


def _models(primary: str) -> tuple[str, ...]:
    fallback = settings.FALLBACK_CHAT_MODEL
    return (primary, fallback) if fallback and fallback != primary else (primary,)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _MalformedChunkError(type(value).__name__)
    return value


def _usage(usage: Any) -> Usage | None:
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _final_error(failure: Failure) -> Exception:
    """Return what the caller sees once no more calls will be made."""
    error = failure.error
    if not isinstance(error, ProviderUnavailableError):
        return error  # configuration: the message says what to fix
    message = _("The model service is unavailable right now; try again later.")
    if isinstance(error, ProviderRateLimitedError):
        return ProviderRateLimitedError(message, retry_after=error.retry_after)
    return ProviderUnavailableError(message)


def complete(
    provider: ChatProvider,
    messages: list[dict],
    *,
    options: ChatOptions,
    on_finished: UsageSink | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> tuple[str, ChatFinished | None]:
    """Return a whole answer's text and its end, for callers that parse it.

    Raises the provider's errors; `on_finished` hears of the call's usage.
    """
    text = ""
    end: ChatFinished | None = None
    for event in provider.stream(
        messages, options=options, response_format=response_format
    ):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            end = event
            if on_finished is not None:
                on_finished(event, messages, text)
    return text, end


def default_chat_options(**overrides: Any) -> ChatOptions:
    """Return the options of an answer: RAGAPP_CHAT_MODEL unless overridden."""
    return ChatOptions(**{"model": settings.CHAT_MODEL, **overrides})


def get_chat_provider(retry: RetryPolicy = CHAT_RETRY) -> OpenAIChatProvider | None:
    """Return the shared chat provider, or None when no model API is configured.

    None (neither OPENAI_API_KEY nor OPENAI_BASE_URL) means the offline
    extractive answerer is used. `retry` is the caller's patience: a search
    that can do without the model (the rerank) gives up sooner than an answer.
    """
    if not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        return None
    return _shared_provider(
        settings.OPENAI_API_KEY,
        settings.OPENAI_BASE_URL,
        settings.MODEL_TIMEOUT_SECONDS,
        retry,
    )


@functools.lru_cache(maxsize=8)
def _shared_provider(
    api_key: str, base_url: str, timeout: float, retry: RetryPolicy
) -> OpenAIChatProvider:
    """Build one provider, and so one connection pool, per configuration.

    The first three arguments only key the cache: the client reads the same
    settings.
    """
    del api_key, base_url, timeout
    return OpenAIChatProvider(retry=retry)
