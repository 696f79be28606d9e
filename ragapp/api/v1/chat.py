"""POST /v1/chat/completions: grounded answers for collections, and the chat model.

What `model` names decides the path (ragapp.api.v1.catalog):

- a collection, or `ragapp-extractive`: the grounded loop the web page uses,
  written by the background runner and followed here. The last message is
  the question and the earlier user/assistant pairs its conversation; the
  answer's citations come as `url_citation` annotations (the only citation
  type the chat schema has), pointing at the citation page in ragapp, and in
  full (document, pages, quote) in the extension field `ragapp_citations`.
  With `response_format: {"type": "json_object"}` the content is instead
  one JSON object, `{"answer", "citations"}` (streamed as one delta, since
  the object is whole only when the answer is); `tools` and `json_schema`
  are for the chat model, which can follow them, and are a 400 here.
- the configured chat model: passed through with tools and response_format.
  Its input and output are screened like any answer, and no text is sent
  before the moderation window holding it has passed.

A flagged question or answer ends with `finish_reason: "content_filter"`,
its text withheld and the reason in `refusal`. Streams follow OpenAI's wire
rules (WIRE.md §2): one id, `role` first, `finish_reason` on the closing
chunk, a usage chunk with `choices: []` only when asked for, `data: [DONE]`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from ragapp.answers import runner
from ragapp.answers.events import CitationAdded, Delta, Finished
from ragapp.answers.gate import AnswerWithheldError, ModerationGate
from ragapp.answers.models import Message
from ragapp.answers.prompts import Turn
from ragapp.answers.services import QuestionError
from ragapp.api.callers import Caller
from ragapp.api.exceptions import ApiError, RateLimitedError, UnavailableError
from ragapp.api.follow import KeyGoneError, follow, in_thread, now_unix
from ragapp.api.limits import StreamSlot
from ragapp.api.usage import AnswerCharge, tokens_spent
from ragapp.api.v1 import stores_service as stores
from ragapp.api.v1.catalog import ModelEntry, model_resolve
from ragapp.documents.tokens import count_tokens
from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.services import screen
from ragapp.providers.base import ChatFinished, ChatOptions, TextDelta
from ragapp.providers.chat import get_chat_provider
from ragapp.providers.exceptions import ProviderError

router = Router(tags=["chat"])

ROLES = ("developer", "system", "user", "assistant", "tool", "function")
_MARKER = re.compile(r"\[(\d{1,3})\]")


class StreamOptions(Schema):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(Schema):
    """OpenAI's CreateChatCompletionRequest; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, int] | None = None
    user: str | None = None


# --- validation ---------------------------------------------------------------


def content_text(content: Any, *, param: str) -> str:
    """The text of a message's content: a string, or its text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or "type" not in part:
                raise ApiError(
                    _("Each content part must be an object with a 'type'."),
                    param=f"{param}[{index}]",
                )
            if part["type"] in ("text", "input_text", "output_text"):
                if not isinstance(part.get("text"), str):
                    raise ApiError(
                        _("A text part needs a string 'text'."),
                        param=f"{param}[{index}].text",
                    )
                texts.append(part["text"])
            elif part["type"] == "refusal":
                texts.append(str(part.get("refusal", "")))
            else:
                raise ApiError(
                    _(
                        "Content parts of type '%(type)s' are not supported here; send text."
                    )
                    % {"type": part["type"]},
                    param=f"{param}[{index}].type",
                )
        return "\n".join(texts)
    raise ApiError(_("'content' must be a string or an array of parts."), param=param)


def validate_messages(messages: list[dict[str, Any]]) -> int:
    """Check roles and contents; return the prompt's size in characters."""
    size = 0
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(
                _("'%(role)s' is not one of %(roles)s.")
                % {"role": role, "roles": ", ".join(repr(r) for r in ROLES)},
                param=f"messages[{index}].role",
            )
        if role in ("user", "system", "developer") and "content" not in message:
            raise ApiError(
                _("Missing required parameter: 'messages[%(i)d].content'.")
                % {"i": index},
                param=f"messages[{index}].content",
            )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ApiError(
                _("A tool message needs its 'tool_call_id'."),
                param=f"messages[{index}].tool_call_id",
            )
        size += len(
            content_text(message.get("content"), param=f"messages[{index}].content")
        )
        for call in message.get("tool_calls") or []:
            size += len(json.dumps(call))
    return size


def check_limits(body: ChatRequest, prompt_chars: int) -> int:
    """Refuse what this server does not do or allow; return the clamped max_tokens."""
    if prompt_chars > settings.API_MAX_PROMPT_CHARS:
        raise ApiError(
            _(
                "The messages hold %(n)d characters; this server takes at most "
                "%(max)d. Shorten the conversation."
            )
            % {"n": prompt_chars, "max": settings.API_MAX_PROMPT_CHARS},
            param="messages",
            code="context_length_exceeded",
        )
    if body.n not in (None, 1):
        raise ApiError(
            _("This server makes one choice per request; set n to 1."), param="n"
        )
    if body.logprobs or body.top_logprobs:
        raise ApiError(
            _("Log probabilities are not available on this server."), param="logprobs"
        )
    if body.logit_bias:
        raise ApiError(
            _("logit_bias is not available on this server."), param="logit_bias"
        )
    requested = body.max_completion_tokens or body.max_tokens
    cap = settings.API_MAX_TOKENS
    return min(requested, cap) if requested else cap


# --- the completion being built -------------------------------------------------


_JSON_CITATION_FIELDS = (
    "marker",
    "file_id",
    "filename",
    "title",
    "page_start",
    "page_end",
    "quote",
    "url",
)


@dataclass
class Completion:
    """What a chat completion says so far, for the whole reply or its chunks."""

    id: str
    model: str
    created: int
    text: str = ""
    refusal: str | None = None
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # response_format json_object on a grounded answer: the content is one
    # JSON object holding the answer and its citations.
    as_json: bool = False

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def annotations(self) -> list[dict[str, Any]]:
        """A url_citation for each marker in the text that names a citation."""
        by_marker = {c["marker"]: c for c in self.citations}
        found = []
        for match in _MARKER.finditer(self.text):
            citation = by_marker.get(int(match.group(1)))
            if citation is not None:
                found.append(
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "start_index": match.start(),
                            "end_index": match.end(),
                            "url": citation["url"],
                            "title": citation["label"],
                        },
                    }
                )
        return found

    def content(self) -> str | None:
        if self.refusal is not None:
            return None
        if not self.as_json:
            return self.text
        return json.dumps(
            {
                "answer": self.text,
                "citations": [
                    {key: c[key] for key in _JSON_CITATION_FIELDS}
                    for c in self.citations
                ],
            },
            ensure_ascii=False,
        )

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.content(),
            "refusal": self.refusal,
            # Offsets into a JSON string would point inside its escapes: the
            # citations are in the object instead.
            "annotations": [] if self.as_json else self.annotations(),
        }
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.citations:
            message["ragapp_citations"] = self.citations
        return message

    def whole(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": self.message(),
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage(),
            "system_fingerprint": None,
        }

    def chunk(
        self,
        delta: dict[str, Any] | None,
        *,
        finish_reason: str | None = None,
        with_usage: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": []
            if delta is None
            else [
                {
                    "index": 0,
                    "delta": delta,
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if with_usage:
            chunk["usage"] = self.usage() if delta is None else None
        chunk.update(extra)
        return chunk


def sse(payload: dict[str, Any] | str) -> bytes:
    data = (
        payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=True)
    )
    return f"data: {data}\n\n".encode("ascii")


def sse_error(message: str, *, code: str, kind: str = "server_error") -> bytes:
    return sse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


def stream_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        body, content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


# --- the grounded loop ----------------------------------------------------------


def conversation(messages: list[dict[str, Any]]) -> tuple[str, list[Turn]]:
    """The question (the last message, from the user) and the turns before it."""
    last = messages[-1]
    if last.get("role") != "user":
        raise ApiError(
            _("The last message must be the user's question."),
            param=f"messages[{len(messages) - 1}].role",
        )
    question = content_text(
        last.get("content"), param=f"messages[{len(messages) - 1}].content"
    )
    turns: list[Turn] = []
    asked: str | None = None
    for index, message in enumerate(messages[:-1]):
        text = content_text(message.get("content"), param=f"messages[{index}].content")
        if message.get("role") == "user":
            asked = text
        elif message.get("role") == "assistant" and asked is not None and text:
            turns.append(Turn(question=asked, answer=text))
            asked = None
    return question, turns


def _citation(
    request: HttpRequest, message_id: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """A citation in full, its document named by its vector-store file id."""
    file_id, filename = stores.document_files([payload["document_id"]]).get(
        payload["document_id"], ("", payload["document_title"])
    )
    pages = ""
    if payload.get("page_start"):
        start, end = (
            payload["page_start"],
            payload.get("page_end") or payload["page_start"],
        )
        pages = f", p. {start}" if start == end else f", pp. {start}-{end}"
    url = request.build_absolute_uri(
        reverse("web:citation", args=[message_id, payload["marker"]])
    )
    return {
        "marker": payload["marker"],
        "file_id": file_id,
        "filename": filename,
        "document_id": payload["document_id"],
        "title": payload["document_title"],
        "label": f"{payload['document_title']}{pages}",
        "page_start": payload.get("page_start"),
        "page_end": payload.get("page_end"),
        "quote": payload.get("quote", ""),
        "url": url,
    }


def _grounded_start(
    caller: Caller,
    entry: ModelEntry,
    messages: list[dict[str, Any]],
    charge: AnswerCharge,
) -> Message:
    question, turns = conversation(messages)
    wanted = [entry.collection_id] if entry.collection_id is not None else None
    try:
        return runner.answer_start(
            user=caller.user,
            question=question,
            collection_ids=caller.scope(wanted),
            turns=turns,
            use_model=entry.kind == "collection",
            on_end=charge.at_end,
        )
    except runner.AnswerBusyError as exc:
        raise RateLimitedError(exc.message, headers={"Retry-After": "5"}) from exc
    except QuestionError as exc:
        raise ApiError(str(exc), param="messages") from exc


def _apply_finish(completion: Completion, payload: dict[str, Any]) -> None:
    status = payload.get("status")
    completion.prompt_tokens = payload.get("prompt_tokens", 0)
    completion.completion_tokens = payload.get("completion_tokens", 0)
    if payload.get("retract") or status in (
        Message.Status.REFUSED,
        Message.Status.STOPPED,
    ):
        completion.finish_reason = "content_filter"
        completion.refusal = payload.get("reason") or _(
            "The content check stopped this answer."
        )
        completion.text = ""
        completion.citations = []
    elif status == Message.Status.INTERRUPTED:
        completion.finish_reason = "length"


async def _grounded_whole(
    request: HttpRequest,
    caller: Caller,
    completion: Completion,
    message: Message,
    charge: AnswerCharge,
) -> dict[str, Any]:
    async for payload in follow(message, key_id=caller.key.pk):
        kind = payload.get("type")
        if kind == Delta.kind:
            completion.text += payload["text"]
        elif kind == CitationAdded.kind:
            completion.citations.append(
                await sync_to_async(_citation)(request, message.pk, payload)
            )
        elif kind == Finished.kind:
            if payload.get("status") == Message.Status.FAILED and not payload.get(
                "retract"
            ):
                raise UnavailableError(payload.get("reason") or _("The answer failed."))
            if payload.get("status") == Message.Status.FAILED:
                # Withheld because the content check was unavailable.
                raise UnavailableError(
                    payload.get("reason") or _("The content check is unavailable."),
                    code="moderation_unavailable",
                )
            _apply_finish(completion, payload)
    await sync_to_async(charge.by_request)(
        completion.prompt_tokens + completion.completion_tokens
    )
    return completion.whole()


async def _grounded_stream(
    request: HttpRequest,
    caller: Caller,
    completion: Completion,
    message: Message,
    charge: AnswerCharge,
    include_usage: bool,
    slot: StreamSlot,
) -> AsyncIterator[bytes]:
    try:
        yield sse(
            completion.chunk(
                {"role": "assistant", "content": ""}, with_usage=include_usage
            )
        )
        async for payload in follow(message, key_id=caller.key.pk):
            kind = payload.get("type")
            if kind == Delta.kind:
                completion.text += payload["text"]
                if not completion.as_json:
                    yield sse(
                        completion.chunk(
                            {"content": payload["text"]}, with_usage=include_usage
                        )
                    )
            elif kind == CitationAdded.kind:
                completion.citations.append(
                    await sync_to_async(_citation)(request, message.pk, payload)
                )
            elif kind == Finished.kind:
                if payload.get("status") == Message.Status.FAILED:
                    yield sse_error(
                        payload.get("reason") or _("The answer failed."),
                        code="answer_failed",
                    )
                    return
                _apply_finish(completion, payload)
                delta: dict[str, Any] = {}
                if completion.refusal is not None:
                    delta["refusal"] = completion.refusal
                elif completion.as_json:
                    # The object is whole only once the answer is: one delta.
                    delta["content"] = completion.content()
                extra = (
                    {"ragapp_citations": completion.citations}
                    if completion.citations
                    else {}
                )
                yield sse(
                    completion.chunk(
                        delta,
                        finish_reason=completion.finish_reason,
                        with_usage=include_usage,
                        **extra,
                    )
                )
                # Counted before the last bytes, so a client that has read
                # [DONE] finds the spend recorded.
                await sync_to_async(charge.by_request)(
                    completion.prompt_tokens + completion.completion_tokens
                )
                if include_usage:
                    yield sse(completion.chunk(None, with_usage=True))
                yield sse("[DONE]")
    except KeyGoneError:
        yield sse_error(
            _("The API key stopped working while the answer streamed."),
            code="invalid_api_key",
            kind="invalid_request_error",
        )
    finally:
        slot.release()


# --- the chat model, passed through ----------------------------------------------


@dataclass
class _Passthrough:
    """One passthrough call: its events, screened by the moderation gate."""

    caller: Caller
    body: ChatRequest
    max_tokens: int
    completion: Completion
    flagged_question: str | None = None

    def events(self) -> Iterator[tuple[str, Any]]:
        """("text", str), ("tool_calls", list), ("finish", ChatFinished) or ("refused", why)."""
        provider = get_chat_provider()
        if provider is None:
            raise UnavailableError(_("No chat model is configured on this server."))
        asked = "\n".join(
            content_text(m.get("content"), param="messages")
            for m in self.body.messages
            if m.get("role") == "user"
        )
        try:
            check = screen(asked[-20_000:], user=self.caller.user, source="question")
        except ModerationUnavailableError:
            yield (
                "unavailable",
                _("The content check is unavailable; try again in a minute."),
            )
            return
        if check.flagged:
            yield ("refused", _("The question was refused by the content check."))
            return
        gate = ModerationGate(
            screen=lambda text: screen(text, user=self.caller.user, source="answer"),
            first_window=settings.MODERATION_FIRST_WINDOW_CHARS,
            window=settings.MODERATION_STREAM_CHARS,
            max_wait_seconds=settings.MODERATION_MAX_WAIT_SECONDS,
        )
        options = ChatOptions(
            model=settings.CHAT_MODEL,
            temperature=self.body.temperature,
            top_p=self.body.top_p,
            max_tokens=self.max_tokens,
            seed=self.body.seed,
        )
        tools = self.body.tools
        try:
            for event in provider.stream(
                self.body.messages,
                options=options,
                tools=tools,
                response_format=self.body.response_format,
                **_extra_arguments(self.body),
            ):
                if isinstance(event, TextDelta):
                    for released in gate.hold([Delta(text=event.text)]):
                        yield ("text", released.text)
                elif isinstance(event, ChatFinished):
                    for released in gate.finish():
                        if isinstance(released, Delta):
                            yield ("text", released.text)
                    yield ("finish", event)
        except AnswerWithheldError as exc:
            yield (
                "refused"
                if exc.check is not None and exc.check.flagged
                else "unavailable",
                exc.message,
            )


def _extra_arguments(body: ChatRequest) -> dict[str, Any]:
    """tool_choice, stop and parallel_tool_calls, when the provider takes them."""
    extra: dict[str, Any] = {}
    if body.tool_choice is not None:
        extra["tool_choice"] = body.tool_choice
    if body.stop is not None:
        extra["stop"] = body.stop
    if body.parallel_tool_calls is not None:
        extra["parallel_tool_calls"] = body.parallel_tool_calls
    return {"extra": extra} if extra else {}


def _tool_calls(finished: ChatFinished) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in finished.tool_calls
    ]


def _finish_usage(
    completion: Completion, finished: ChatFinished, body: ChatRequest
) -> None:
    completion.model = finished.model or completion.model
    completion.finish_reason = finished.finish_reason or "stop"
    if finished.usage is not None:
        completion.prompt_tokens = finished.usage.prompt_tokens
        completion.completion_tokens = finished.usage.completion_tokens
    else:
        completion.prompt_tokens = sum(
            count_tokens(content_text(m.get("content"), param="messages"))
            for m in body.messages
        )
        completion.completion_tokens = count_tokens(completion.text)


async def _passthrough_whole(request: HttpRequest, run: _Passthrough) -> dict[str, Any]:
    completion = run.completion
    try:
        async for kind, value in in_thread(run.events, name="chat-passthrough"):
            if kind == "text":
                completion.text += value
            elif kind == "finish":
                _finish_usage(completion, value, run.body)
                completion.tool_calls = _tool_calls(value)
            elif kind == "refused":
                completion.finish_reason = "content_filter"
                completion.refusal = value
                completion.text = ""
            elif kind == "unavailable":
                raise UnavailableError(value, code="moderation_unavailable")
    except ProviderError as exc:
        raise UnavailableError(exc.message) from exc
    await sync_to_async(tokens_spent)(
        request, completion.prompt_tokens + completion.completion_tokens
    )
    return completion.whole()


async def _passthrough_stream(
    request: HttpRequest, run: _Passthrough, include_usage: bool, slot: StreamSlot
) -> AsyncIterator[bytes]:
    completion = run.completion
    try:
        yield sse(
            completion.chunk(
                {"role": "assistant", "content": ""}, with_usage=include_usage
            )
        )
        async for kind, value in in_thread(run.events, name="chat-passthrough"):
            if kind == "text":
                completion.text += value
                yield sse(
                    completion.chunk({"content": value}, with_usage=include_usage)
                )
            elif kind == "finish":
                _finish_usage(completion, value, run.body)
                for index, call in enumerate(_tool_calls(value)):
                    opening = {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                    yield sse(
                        completion.chunk(
                            {"tool_calls": [opening]}, with_usage=include_usage
                        )
                    )
                    rest = {
                        "index": index,
                        "function": {"arguments": call["function"]["arguments"]},
                    }
                    yield sse(
                        completion.chunk(
                            {"tool_calls": [rest]}, with_usage=include_usage
                        )
                    )
                yield sse(
                    completion.chunk(
                        {},
                        finish_reason=completion.finish_reason,
                        with_usage=include_usage,
                    )
                )
            elif kind == "refused":
                completion.finish_reason = "content_filter"
                yield sse(
                    completion.chunk(
                        {"refusal": value},
                        finish_reason="content_filter",
                        with_usage=include_usage,
                    )
                )
            elif kind == "unavailable":
                yield sse_error(value, code="moderation_unavailable")
                return
        await sync_to_async(tokens_spent)(
            request, completion.prompt_tokens + completion.completion_tokens
        )
        if include_usage:
            yield sse(completion.chunk(None, with_usage=True))
        yield sse("[DONE]")
    except ProviderError as exc:
        yield sse_error(exc.message, code=exc.code)
    finally:
        slot.release()


# --- the route --------------------------------------------------------------------


@router.post("/chat/completions", summary="Create a chat completion")
async def chat_completions(
    request: HttpRequest, body: ChatRequest
) -> dict[str, Any] | StreamingHttpResponse:
    caller: Caller = request.auth
    prompt_chars = validate_messages(body.messages)
    max_tokens = check_limits(body, prompt_chars)
    entry = await sync_to_async(model_resolve)(
        caller, body.model, kinds=("collection", "extractive", "chat")
    )
    completion = Completion(
        id=f"chatcmpl-{uuid.uuid4().hex}", model=body.model, created=now_unix()
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    if body.stream_options is not None and not body.stream:
        raise ApiError(
            _("stream_options may only be set when stream is true."),
            param="stream_options",
        )
    if entry.kind == "chat":
        run = _Passthrough(
            caller=caller, body=body, max_tokens=max_tokens, completion=completion
        )
        if not body.stream:
            return await _passthrough_whole(request, run)
        slot = await sync_to_async(StreamSlot)(caller.key)
        return stream_response(_passthrough_stream(request, run, include_usage, slot))
    if body.tools:
        raise ApiError(
            _(
                "'tools' is for the chat model; a collection is answered by "
                "ragapp's grounded loop, which has its own tools."
            ),
            param="tools",
        )
    answer_format = (body.response_format or {}).get("type", "text")
    if answer_format not in ("text", "json_object"):
        raise ApiError(
            _(
                "A collection's answer comes as text or, with response_format "
                'json_object, as {"answer", "citations"}; \'%(format)s\' is for '
                "the chat model."
            )
            % {"format": answer_format},
            param="response_format",
        )
    completion.as_json = answer_format == "json_object"
    slot = await sync_to_async(StreamSlot)(caller.key) if body.stream else None
    try:
        charge = AnswerCharge(request)
        message = await sync_to_async(_grounded_start)(
            caller, entry, body.messages, charge
        )
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    if not body.stream:
        return await _grounded_whole(request, caller, completion, message, charge)
    return stream_response(
        _grounded_stream(
            request, caller, completion, message, charge, include_usage, slot
        )
    )
