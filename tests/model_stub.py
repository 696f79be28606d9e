"""The hostile model stub (HS in the reliability plan): a scripted OpenAI server.

A real aiohttp server on 127.0.0.1 (a free port), in a thread of its own, that
speaks the wire format of `/v1/chat/completions` (SSE `chat.completion.chunk`
events, the usage chunk, `data: [DONE]`, tool-call deltas) and
`/v1/moderations`. What it answers is scripted per test: each route keeps a
queue of behaviours, one consumed per request, and a default once the queue is
empty. The behaviours are the ways a model or its server turns on ragapp: it
obeys injected instructions, echoes its whole context, forges tool calls,
answers 429/5xx, stalls before or during the answer, cuts the stream off, or
sends chunks that do not parse.

    stub.chat.push(Status(429, retry_after="1"), Reply("Hello", chunk_size=2))
    stub.moderations.push(Moderation(flagged=True, categories=["violence"]))
    ...
    assert stub.chat.requests[0].body["stream"] is True

`stub.requests` logs every request (path, headers, JSON body), in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ragapp.providers.base import MODERATION_CATEGORIES

STUB_MODEL = "stub-model"
# The key the `model_stub` fixture configures; tests check it never leaks.
STUB_API_KEY = "sk-stub-secret"
DEFAULT_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class StubRequest:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the text when it is not JSON


# --- behaviours -------------------------------------------------------------------


class Behaviour:
    """How the stub answers one request."""

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        raise NotImplementedError


@dataclass(frozen=True)
class StubToolCall:
    """A tool call the stub emits: any name, any arguments (valid JSON or not)."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True)
class Reply(Behaviour):
    """Stream `text` in pieces of `chunk_size` characters, `delay` seconds apart.

    `tool_calls` follow the text, their arguments split the same way (with
    `interleave`, the calls' pieces alternate, as parallel calls may). `end`
    says how the stream ends:

    - "done": the finish chunk, the usage chunk if asked for, `data: [DONE]`;
    - "no_finish": `data: [DONE]` without any finish_reason;
    - "eof": the body simply ends (no finish_reason, no [DONE]);
    - "cut": the connection closes part-way through the chunked body;
    - "reset": the connection is reset (TCP RST);
    - "stall": nothing more is sent until the client gives up;
    - "malformed": `malformed` is sent as the next event, then the body ends.
    """

    text: str = "The stub's answer."
    chunk_size: int = 8
    delay: float = 0.0
    first_delay: float = 0.0
    tool_calls: Sequence[StubToolCall] = ()
    interleave: bool = False
    finish_reason: str | None = None  # default: "tool_calls" with tool calls
    send_usage: bool = True  # False: a server that never reports usage
    end: str = "done"
    malformed: bytes = b'data: {"id": "chatcmpl-x", "choices": [{"delta":\n\n'

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        body = body if isinstance(body, dict) else {}
        model = str(body.get("model") or STUB_MODEL)
        if not body.get("stream"):
            return web.json_response(self._completion(model, body))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        events = self._events(model, body)
        for number, event in enumerate(events):
            if number and self.delay:
                await asyncio.sleep(self.delay)
            await response.write(event)
        return await self._end(stub, request, response)

    def _events(self, model: str, body: dict) -> list[bytes]:
        stream_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))

        def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
            data = {
                "id": stream_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                data["usage"] = None
            return sse(data)

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in split(self.text, self.size)]
        events += [chunk({"tool_calls": [delta]}) for delta in self._tool_deltas()]
        if self.end != "done":
            return events
        events.append(chunk({}, self._finish_reason()))
        if include_usage and self.send_usage:
            usage = self._usage(body)
            events.append(
                sse(
                    {
                        "id": stream_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        events.append(b"data: [DONE]\n\n")
        return events

    @property
    def size(self) -> int:
        return max(1, self.chunk_size)

    def _tool_deltas(self) -> list[dict]:
        per_call: list[list[dict]] = []
        for index, call in enumerate(self.tool_calls):
            # The first delta names the call; arguments follow in later ones
            # (never with the name: llama.cpp#22722).
            deltas = [
                {
                    "index": index,
                    "id": call.id or f"call_{uuid.uuid4().hex[:8]}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
            deltas += [
                {"index": index, "function": {"arguments": piece}}
                for piece in split(call.arguments, self.size)
            ]
            per_call.append(deltas)
        if not self.interleave:
            return [delta for deltas in per_call for delta in deltas]
        mixed: list[dict] = []
        for row in range(max((len(deltas) for deltas in per_call), default=0)):
            mixed += [deltas[row] for deltas in per_call if row < len(deltas)]
        return mixed

    def _finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def _usage(self, body: dict) -> dict:
        prompt = len(json.dumps(body.get("messages", []))) // 4
        completion = len(self.text) // 4 + sum(
            len(call.arguments) // 4 for call in self.tool_calls
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, model: str, body: dict) -> dict:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.text,
            "refusal": None,
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for index, call in enumerate(self.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(),
                }
            ],
            "usage": self._usage(body),
        }

    async def _end(
        self, stub: ModelStub, request: web.Request, response: web.StreamResponse
    ) -> web.StreamResponse:
        if self.end == "no_finish":
            await response.write(b"data: [DONE]\n\n")
        elif self.end == "malformed":
            await response.write(self.malformed)
        elif self.end == "stall":
            await stub.stall(DEFAULT_STALL_SECONDS)
        elif self.end in ("cut", "reset"):
            await asyncio.sleep(0.01)  # let the sent chunks reach the client
            drop_connection(request, reset=self.end == "reset")
        elif self.end not in ("done", "eof"):
            raise ValueError(f"unknown end {self.end!r}")
        return response


@dataclass(frozen=True)
class Obey(Behaviour):
    """Answer with what `answer(body)` returns: text, or a whole Reply.

    The test's stand-in for a model that follows whatever its context says.
    """

    answer: Callable[[dict], str | Reply]
    chunk_size: int = 8
    delay: float = 0.0

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        reply = self.answer(body if isinstance(body, dict) else {})
        if isinstance(reply, str):
            reply = Reply(reply, chunk_size=self.chunk_size, delay=self.delay)
        return await reply.respond(stub, request, body)


def context_text(body: dict) -> str:
    """Return every message's text (system prompt included), one per paragraph."""
    texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                part.get("text", "") for part in content if isinstance(part, dict)
            )
        texts.append(f"{message.get('role')}: {content or ''}")
    return "\n\n".join(texts)


@dataclass(frozen=True)
class Echo(Obey):
    """Answer with the whole context, system prompt included."""

    answer: Callable[[dict], str | Reply] = context_text


@dataclass(frozen=True)
class Status(Behaviour):
    """Answer `status` with an OpenAI error body (or `body`) and optional headers."""

    status: int
    message: str = "The stub failed on purpose."
    code: str | None = None
    type: str = "server_error"
    retry_after: str | None = None
    retry_after_ms: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = self.retry_after_ms
        payload = self.body
        if payload is None:
            payload = error_body(self.message, code=self.code, kind=self.type)
        return web.json_response(payload, status=self.status, headers=headers)


@dataclass(frozen=True)
class StallHeaders(Behaviour):
    """Send nothing, not even headers, until the client gives up."""

    seconds: float = DEFAULT_STALL_SECONDS

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        await stub.stall(self.seconds)
        drop_connection(request, reset=False)
        return web.Response(status=504)


@dataclass(frozen=True)
class Raw(Behaviour):
    """Answer exactly these bytes: malformed JSON, a wrong content type."""

    body: bytes = b"{not json"
    status: int = 200
    content_type: str = "application/json"

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        return web.Response(
            body=self.body, status=self.status, content_type=self.content_type
        )


@dataclass(frozen=True)
class Moderation(Behaviour):
    """Answer a `/v1/moderations` request: one result per input, all 13 categories.

    `categories` are flagged (score `score`); `flagged` defaults to whether any
    are.
    """

    categories: Sequence[str] = ()
    flagged: bool | None = None
    score: float = 0.97
    model: str = "omni-moderation-latest"

    async def respond(
        self, stub: ModelStub, request: web.Request, body: Any
    ) -> web.StreamResponse:
        unknown = set(self.categories) - set(MODERATION_CATEGORIES)
        if unknown:
            raise ValueError(f"not moderation categories: {sorted(unknown)}")
        inputs = body.get("input", "") if isinstance(body, dict) else ""
        count = len(inputs) if isinstance(inputs, list) else 1
        flagged = bool(self.categories) if self.flagged is None else self.flagged
        result = {
            "flagged": flagged,
            "categories": {
                name: name in self.categories for name in MODERATION_CATEGORIES
            },
            "category_scores": {
                name: self.score if name in self.categories else 0.0001
                for name in MODERATION_CATEGORIES
            },
            "category_applied_input_types": {
                name: ["text"] for name in MODERATION_CATEGORIES
            },
        }
        return web.json_response(
            {
                "id": f"modr-{uuid.uuid4().hex[:12]}",
                "model": self.model,
                "results": [result] * count,
            }
        )


# --- wire helpers -------------------------------------------------------------------


def sse(data: Any) -> bytes:
    """Return one SSE event carrying `data` as JSON, the way OpenAI sends it."""
    try:
        text = json.dumps(data, ensure_ascii=False)
        return f"data: {text}\n\n".encode()
    except UnicodeEncodeError:  # lone surrogates: only JSON escapes can carry them
        return f"data: {json.dumps(data)}\n\n".encode()


def split(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def error_body(message: str, *, code: str | None = None, kind: str = "server_error"):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def drop_connection(request: web.Request, *, reset: bool) -> None:
    """Close the client's connection now, mid-body; with `reset`, by a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if reset and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
    transport.abort()


# --- the server ---------------------------------------------------------------------


class Route:
    """The scripted answers of one path: a queue, then the default."""

    def __init__(self, path: str, default: Behaviour) -> None:
        self.path = path
        self.default = default
        self.requests: list[StubRequest] = []
        self._queue: collections.deque[Behaviour] = collections.deque()

    def push(self, *behaviours: Behaviour) -> Route:
        """Queue behaviours for the next requests to this path, in order."""
        self._queue.extend(behaviours)
        return self

    def next(self) -> Behaviour:
        try:
            return self._queue.popleft()
        except IndexError:
            return self.default

    @property
    def pending(self) -> int:
        return len(self._queue)

    def reset(self, default: Behaviour) -> None:
        self._queue.clear()
        self.requests.clear()
        self.default = default


class ModelStub:
    """The stub server; `start()` it, script its routes, `stop()` it."""

    def __init__(self) -> None:
        self.chat = Route("/v1/chat/completions", Reply())
        self.moderations = Route("/v1/moderations", Moderation())
        self.requests: list[StubRequest] = []
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="model-stub", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None

    @property
    def routes(self) -> dict[str, Route]:
        return {route.path: route for route in (self.chat, self.moderations)}

    def start(self) -> ModelStub:
        self._thread.start()
        port = self._run(self._start())
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        self.release_stalls()
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def reset(self) -> None:
        """Forget queued behaviours and logged requests; end every stall."""
        self.release_stalls()
        self.chat.reset(Reply())
        self.moderations.reset(Moderation())
        self.requests.clear()

    def release_stalls(self) -> None:
        """End every stall now (their connections close)."""
        self._run(self._new_release())

    async def stall(self, seconds: float) -> None:
        """Wait `seconds`, or until the stalls are released."""
        assert self._release is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), seconds)

    # --- inside the server's thread -------------------------------------------

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _start(self) -> int:
        self._release = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up ends its stalled handler.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _new_release(self) -> None:
        if self._release is not None:
            self._release.set()
        self._release = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        logged = StubRequest(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
        )
        self.requests.append(logged)
        route = self.routes.get(request.path)
        if route is None:
            return web.json_response(
                error_body(
                    f"Unknown path {request.path}",
                    code="unknown_url",
                    kind="invalid_request_error",
                ),
                status=404,
            )
        route.requests.append(logged)
        return await route.next().respond(self, request, body)
