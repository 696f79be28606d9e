"""POST /v1/responses with the `file_search` tool: ragapp's grounded answer, OpenAI's shape.

An app written for OpenAI's hosted file search sends `tools=[{"type":
"file_search", "vector_store_ids": [...]}]`; the question is answered by
the same grounded loop as the web page, over the collections behind those
stores, narrowed by the key. The output is what OpenAI sends (WIRE.md §6):
a `file_search_call` item (its `results` only with
`include=["file_search_call.results"]`), then the message, whose
`output_text` carries a `file_citation` annotation `{file_id, filename,
index}` at each citation marker (`index` is the marker's character offset
in the text). Page ranges, which the standard annotation cannot hold, are
in each result's attributes (`page_start`/`page_end`) and, with the quote,
in the documented extension field `ragapp_citations` of the response.

A response is a message of a thread: its id (`resp_…`) is derived from the
message's row and signed with the server's secret, so no table is needed
and an id cannot be guessed. `previous_response_id` continues that thread,
whose answered turns become the conversation. Without `file_search`, a
model naming a collection (or `ragapp-extractive`, over every collection the
key may read) is answered the same way, with no `file_search_call` item.

`instructions` are echoed, not obeyed: the grounded answerer keeps its own
system prompt, which is what makes its answers cite. A flagged question or
answer ends `incomplete` with `incomplete_details.reason = "content_filter"`
and the reason as a `refusal` part.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import ConfigDict, Field

from ragapp.answers import runner
from ragapp.answers.events import CitationAdded, Delta, Finished
from ragapp.answers.models import Citation, Message, Thread
from ragapp.answers.prompts import Turn
from ragapp.answers.services import QuestionError
from ragapp.api.callers import Caller
from ragapp.api.exceptions import (
    ApiError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from ragapp.api.follow import KeyGoneError, follow, now_unix
from ragapp.api.limits import StreamSlot
from ragapp.api.usage import AnswerCharge
from ragapp.api.v1 import stores_service as stores
from ragapp.api.v1.catalog import model_resolve
from ragapp.api.v1.chat import content_text, conversation, sse, stream_response
from ragapp.documents.models import Chunk
from ragapp.retrieval.filters import FilterError, document_filter_q

router = Router(tags=["responses"])

RESULTS_INCLUDE = "file_search_call.results"
DEFAULT_MAX_RESULTS = 10
_SIGNATURE = 20
_MARKER = re.compile(r"\[(\d{1,3})\]")
_ID = re.compile(rf"^resp_([0-9a-f]{{1,16}})([0-9a-f]{{{_SIGNATURE}}})$")


class ResponseRequest(Schema):
    """OpenAI's CreateResponse; unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    include: list[str] | None = None
    stream: bool | None = False
    store: bool | None = True
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=16)
    metadata: dict[str, str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    user: str | None = None
    background: bool | None = False


# --- ids -----------------------------------------------------------------------


def _signature(pk: int) -> str:
    return salted_hmac("ragapp.api.responses", str(pk)).hexdigest()[:_SIGNATURE]


def response_id(message: Message) -> str:
    return f"resp_{message.pk:x}{_signature(message.pk)}"


def item_id(prefix: str, message: Message) -> str:
    return f"{prefix}_{message.pk:x}{_signature(message.pk)}"


def message_of(caller: Caller, value: str, *, param: str) -> Message:
    """The caller's own message behind a response id, or a 404 naming `param`."""
    match = _ID.match(value or "")
    message = None
    if match and constant_time_compare(
        match.group(2), _signature(int(match.group(1), 16))
    ):
        message = (
            Message.objects.select_related("thread")
            .filter(pk=int(match.group(1), 16), thread__user=caller.user)
            .first()
        )
    if message is None:
        raise NotFoundError(
            _("Response with id '%(id)s' not found.") % {"id": value}, param=param
        )
    return message


# --- the request -----------------------------------------------------------------


@dataclass
class FileSearch:
    """The request's file_search tools, checked and merged."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    collection_ids: list[int] = field(default_factory=list)
    filters: dict[str, Any] | None = None
    max_num_results: int = DEFAULT_MAX_RESULTS


def file_search_parse(caller: Caller, tools: list[dict[str, Any]] | None) -> FileSearch:
    search = FileSearch()
    for index, tool in enumerate(tools or []):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "file_search":
            raise ApiError(
                _(
                    "Tools of type '%(type)s' are not supported here; this server "
                    "answers from documents with 'file_search'."
                )
                % {"type": kind},
                param=f"{where}.type",
            )
        ids = tool.get("vector_store_ids")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) for i in ids)
        ):
            raise ApiError(
                _("file_search needs 'vector_store_ids', a list of vector store ids."),
                param=f"{where}.vector_store_ids",
            )
        for vector_store_id in ids:
            try:
                store = stores.access_vector_store(
                    caller=caller, vector_store_id=vector_store_id
                )
            except NotFoundError as exc:
                exc.param = f"{where}.vector_store_ids"
                raise
            if store.collection_id not in search.collection_ids:
                search.collection_ids.append(store.collection_id)
        limit = tool.get("max_num_results", DEFAULT_MAX_RESULTS)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= 50
        ):
            raise ApiError(
                _("max_num_results is a whole number from 1 to 50."),
                param=f"{where}.max_num_results",
            )
        search.max_num_results = limit
        filters = tool.get("filters")
        if filters is not None:
            try:
                document_filter_q(filters)
            except FilterError as exc:
                path = str(exc).split(":", 1)[0]
                raise ApiError(str(exc), param=f"{where}.{path}") from None
            search.filters = filters
        echoed = {
            "type": "file_search",
            "vector_store_ids": ids,
            "max_num_results": limit,
            "ranking_options": tool.get("ranking_options")
            or {"ranker": "auto", "score_threshold": 0.0},
            "filters": filters,
        }
        search.tools.append(echoed)
    return search


def input_conversation(value: str | list[dict[str, Any]]) -> tuple[str, list[Turn]]:
    """The question (the last user input) and the turns sent before it."""
    if isinstance(value, str):
        if not value.strip():
            raise ApiError(_("'input' is empty."), param="input")
        return value, []
    messages = []
    for index, item in enumerate(value):
        kind = item.get("type", "message")
        if kind != "message" or item.get("role") not in (
            "user",
            "assistant",
            "system",
            "developer",
        ):
            raise ApiError(
                _("Only message items (user, assistant) are supported in 'input'."),
                param=f"input[{index}]",
            )
        content_text(item.get("content"), param=f"input[{index}].content")
        messages.append(item)
    if not messages:
        raise ApiError(_("'input' is empty."), param="input")
    messages = [m for m in messages if m["role"] in ("user", "assistant")]
    if not messages or messages[-1]["role"] != "user":
        raise ApiError(
            _("The last input item must be the user's question."), param="input"
        )
    try:
        return conversation(messages)
    except ApiError as exc:
        exc.param = "input"
        raise


# --- the response being built -------------------------------------------------------


@dataclass
class Built:
    """A response as it stands: what the stream has said, and the final object."""

    request: HttpRequest
    body: ResponseRequest
    message: Message
    search: FileSearch
    created_at: int
    include_results: bool
    text: str = ""
    refusal: str | None = None
    status: str = "in_progress"
    incomplete_reason: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] | None = None
    queries: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    # document id -> (vector-store file id, file name)
    files: dict[int, tuple[str, str]] = field(default_factory=dict)
    # Set on a response being made; one retrieved later has nothing to charge.
    charge: AnswerCharge | None = None

    @property
    def grounded_by_tool(self) -> bool:
        return bool(self.search.tools)

    def file_search_item(self, status: str) -> dict[str, Any]:
        return {
            "id": item_id("fs", self.message),
            "type": "file_search_call",
            "status": status,
            "queries": self.queries,
            "results": self.results if self.include_results else None,
        }

    def text_part(self, *, final: bool) -> dict[str, Any]:
        return {
            "type": "output_text",
            "text": self.text,
            "annotations": self.annotations() if final else [],
            "logprobs": [],
        }

    def content(self) -> list[dict[str, Any]]:
        if self.refusal is not None:
            return [{"type": "refusal", "refusal": self.refusal}]
        return [self.text_part(final=True)]

    def message_item(self, status: str, content: list[dict[str, Any]]) -> dict:
        return {
            "id": item_id("msg", self.message),
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }

    def annotations(self) -> list[dict[str, Any]]:
        by_marker = {c["marker"]: c for c in self.citations}
        found = []
        for match in _MARKER.finditer(self.text):
            citation = by_marker.get(int(match.group(1)))
            if citation is not None and citation["file_id"]:
                found.append(
                    {
                        "type": "file_citation",
                        "file_id": citation["file_id"],
                        "filename": citation["filename"],
                        "index": match.start(),
                    }
                )
        return found

    def output(self) -> list[dict[str, Any]]:
        items = []
        if self.grounded_by_tool:
            items.append(self.file_search_item("completed"))
        message_status = "completed" if self.status == "completed" else "incomplete"
        items.append(self.message_item(message_status, self.content()))
        return items

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def whole(self, *, done: bool = True) -> dict[str, Any]:
        body = self.body
        response: dict[str, Any] = {
            "id": response_id(self.message),
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "completed_at": now_unix() if done and self.status == "completed" else None,
            "error": None,
            "incomplete_details": {"reason": self.incomplete_reason}
            if self.incomplete_reason
            else None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": self.output() if done else [],
            "parallel_tool_calls": True
            if body.parallel_tool_calls is None
            else body.parallel_tool_calls,
            "previous_response_id": body.previous_response_id,
            "store": True,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.tool_choice or "auto",
            "tools": self.search.tools,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "truncation": "disabled",
            "metadata": body.metadata or {},
            "background": bool(body.background),
        }
        if done:
            # Left out, not null, until known: the schema's usage is no nullable.
            response["usage"] = self.usage()
        if done and self.citations:
            response["ragapp_citations"] = self.citations
        return response

    # --- applying the answer's events ---

    def cite(self, payload: dict[str, Any]) -> None:
        pages = _pages(payload.get("page_start"), payload.get("page_end"))
        file_id, filename = self.files.get(
            payload["document_id"], ("", payload["document_title"])
        )
        self.citations.append(
            {
                "marker": payload["marker"],
                "file_id": file_id,
                "document_id": payload["document_id"],
                "filename": filename,
                "title": payload["document_title"],
                "label": f"{payload['document_title']}{pages}",
                "page_start": payload.get("page_start"),
                "page_end": payload.get("page_end"),
                "quote": payload.get("quote", ""),
            }
        )

    def finish(self, payload: dict[str, Any]) -> None:
        status = payload.get("status")
        self.input_tokens = payload.get("prompt_tokens", 0)
        self.output_tokens = payload.get("completion_tokens", 0)
        if payload.get("retract") or status in (
            Message.Status.REFUSED,
            Message.Status.STOPPED,
        ):
            self.status = "incomplete"
            self.incomplete_reason = "content_filter"
            self.refusal = payload.get("reason") or _(
                "The content check stopped this answer."
            )
            self.text = ""
            self.citations = []
        elif status == Message.Status.INTERRUPTED and (
            payload.get("reason") == cancel_reason()
        ):
            self.status = "cancelled"  # what was written before it stands
        elif status == Message.Status.INTERRUPTED:
            self.status = "incomplete"
            self.incomplete_reason = "max_output_tokens"
        else:
            self.status = "completed"


def cancel_reason() -> str:
    """Why a cancelled answer ended; the mark that tells it from a cut-off one."""
    return _("Cancelled through the API.")


def _pages(start: int | None, end: int | None) -> str:
    if not start:
        return ""
    end = end or start
    return f", p. {start}" if start == end else f", pp. {start}-{end}"


def search_results(message: Message, limit: int) -> tuple[list[str], list[dict]]:
    """The queries and passages the answer's search found, from its trace."""
    trace = message.retrieval_trace or {}
    queries = [trace.get("query") or message.search_query or message.question]
    found = trace.get("passages") or []
    chunks = {
        chunk.pk: chunk
        for chunk in Chunk.objects.filter(
            pk__in=[p["chunk_id"] for p in found]
        ).select_related("document")
    }
    file_ids = stores.document_file_ids(c.document_id for c in chunks.values())
    results = []
    for passage in found[:limit]:
        chunk = chunks.get(passage["chunk_id"])
        if chunk is None or chunk.document_id not in file_ids:
            continue  # deleted since the answer was written
        document = chunk.document
        pages = {
            name: value
            for name, value in (
                ("page_start", chunk.page_start),
                ("page_end", chunk.page_end),
            )
            if value is not None
        }
        results.append(
            {
                "file_id": file_ids[chunk.document_id],
                "filename": document.original_filename or document.title,
                "score": stores.relevance(passage.get("score", 0.0)),
                "text": chunk.text,
                "attributes": stores.output_attributes(document.attributes, pages),
            }
        )
    return queries, results


# --- starting the answer ------------------------------------------------------------


@dataclass
class Started:
    message: Message
    search: FileSearch


def _start(caller: Caller, body: ResponseRequest, charge: AnswerCharge) -> Started:
    entry = model_resolve(
        caller, body.model, kinds=("collection", "extractive", "chat")
    )
    search = file_search_parse(caller, body.tools)
    question, turns = input_conversation(body.input)
    thread: Thread | None = None
    if body.previous_response_id:
        thread = message_of(
            caller, body.previous_response_id, param="previous_response_id"
        ).thread
    if search.tools:
        collection_ids: list[int] | None = caller.scope(search.collection_ids)
    elif entry.kind == "collection":
        collection_ids = caller.scope([entry.collection_id])
    elif entry.kind == "extractive":
        collection_ids = caller.scope(None)
    else:
        raise ApiError(
            _(
                "With the chat model, give a 'file_search' tool naming the vector "
                "stores to answer from, or name a collection as the model."
            ),
            param="tools",
        )
    try:
        message = runner.answer_start(
            user=caller.user,
            question=question,
            thread=thread,
            collection_ids=collection_ids,
            filters=search.filters,
            turns=turns or None,
            use_model=entry.kind != "extractive",
            on_end=charge.at_end,
        )
    except runner.AnswerBusyError as exc:
        raise RateLimitedError(exc.message, headers={"Retry-After": "5"}) from exc
    except QuestionError as exc:
        raise ApiError(str(exc), param="input") from exc
    return Started(message=message, search=search)


def _finish_search(built: Built) -> None:
    """Fill the queries and results from the finished answer's trace."""
    message = Message.objects.get(pk=built.message.pk)
    built.message = message
    built.queries, built.results = search_results(message, built.search.max_num_results)


# --- whole ---------------------------------------------------------------------------


async def _whole(request: HttpRequest, caller: Caller, built: Built) -> dict[str, Any]:
    async for payload in follow(built.message, key_id=caller.key.pk):
        kind = payload.get("type")
        if kind == Delta.kind:
            built.text += payload["text"]
        elif kind == CitationAdded.kind:
            built.files.update(
                await sync_to_async(stores.document_files)([payload["document_id"]])
            )
            built.cite(payload)
        elif kind == Finished.kind:
            if payload.get("status") == Message.Status.FAILED:
                raise UnavailableError(
                    payload.get("reason") or _("The answer failed."),
                    code="moderation_unavailable" if payload.get("retract") else None,
                )
            built.finish(payload)
    await sync_to_async(_finish_search)(built)
    await sync_to_async(built.charge.by_request)(
        built.input_tokens + built.output_tokens
    )
    return built.whole()


# --- streamed --------------------------------------------------------------------------


class _Events:
    """Numbers the stream's events (`sequence_number`) and encodes them."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\n".encode() + sse(payload)


async def _streamed(
    request: HttpRequest, caller: Caller, built: Built, slot: StreamSlot
) -> AsyncIterator[bytes]:
    event = _Events()
    fs_index, msg_index = (0, 1) if built.grounded_by_tool else (None, 0)
    msg_id = item_id("msg", built.message)
    message_open = False
    searched = False
    try:
        yield event("response.created", response=built.whole(done=False))
        yield event("response.in_progress", response=built.whole(done=False))
        if fs_index is not None:
            built.queries = [built.message.question]
            fs_id = item_id("fs", built.message)
            opened = built.file_search_item("in_progress")
            opened["results"] = None
            yield event(
                "response.output_item.added", output_index=fs_index, item=opened
            )
            for step in ("in_progress", "searching"):
                yield event(
                    f"response.file_search_call.{step}",
                    output_index=fs_index,
                    item_id=fs_id,
                )

        async def search_done() -> AsyncIterator[bytes]:
            if fs_index is None:
                return
            yield event(
                "response.file_search_call.completed",
                output_index=fs_index,
                item_id=item_id("fs", built.message),
            )
            item = built.file_search_item("completed")
            item["results"] = None  # known when the answer is written
            yield event("response.output_item.done", output_index=fs_index, item=item)

        async def open_message(part: dict[str, Any]) -> AsyncIterator[bytes]:
            yield event(
                "response.output_item.added",
                output_index=msg_index,
                item=built.message_item("in_progress", []),
            )
            yield event(
                "response.content_part.added",
                item_id=msg_id,
                output_index=msg_index,
                content_index=0,
                part=part,
            )

        async for payload in follow(built.message, key_id=caller.key.pk):
            kind = payload.get("type")
            if kind in (Delta.kind, CitationAdded.kind, Finished.kind) and not searched:
                searched = True
                async for chunk in search_done():
                    yield chunk
            if kind == Delta.kind:
                if not message_open:
                    message_open = True
                    async for chunk in open_message(
                        {
                            "type": "output_text",
                            "text": "",
                            "annotations": [],
                            "logprobs": [],
                        }
                    ):
                        yield chunk
                built.text += payload["text"]
                yield event(
                    "response.output_text.delta",
                    item_id=msg_id,
                    output_index=msg_index,
                    content_index=0,
                    delta=payload["text"],
                    logprobs=[],
                )
            elif kind == CitationAdded.kind:
                built.files.update(
                    await sync_to_async(stores.document_files)([payload["document_id"]])
                )
                built.cite(payload)
            elif kind == Finished.kind:
                if payload.get("status") == Message.Status.FAILED:
                    yield event(
                        "error",
                        code="server_error",
                        message=payload.get("reason") or _("The answer failed."),
                        param=None,
                    )
                    return
                built.finish(payload)
                await sync_to_async(_finish_search)(built)
                async for chunk in _close_message(
                    event, built, msg_index, msg_id, message_open
                ):
                    yield chunk
                await sync_to_async(built.charge.by_request)(
                    built.input_tokens + built.output_tokens
                )
                final = built.whole()
                closing = (
                    "response.completed"
                    if built.status == "completed"
                    else "response.incomplete"
                )
                yield event(closing, response=final)
    except KeyGoneError:
        yield event(
            "error",
            code="invalid_api_key",
            message=_("The API key stopped working while the answer streamed."),
            param=None,
        )
    finally:
        slot.release()


async def _close_message(
    event: _Events,
    built: Built,
    msg_index: int,
    msg_id: str,
    message_open: bool,
) -> AsyncIterator[bytes]:
    where = {"item_id": msg_id, "output_index": msg_index}
    if built.refusal is None:
        if not message_open:
            yield event(
                "response.output_item.added",
                output_index=msg_index,
                item=built.message_item("in_progress", []),
            )
            yield event(
                "response.content_part.added",
                content_index=0,
                part={
                    "type": "output_text",
                    "text": "",
                    "annotations": [],
                    "logprobs": [],
                },
                **where,
            )
        for index, annotation in enumerate(built.annotations()):
            yield event(
                "response.output_text.annotation.added",
                content_index=0,
                annotation_index=index,
                annotation=annotation,
                **where,
            )
        yield event(
            "response.output_text.done",
            content_index=0,
            text=built.text,
            logprobs=[],
            **where,
        )
        yield event(
            "response.content_part.done",
            content_index=0,
            part=built.text_part(final=True),
            **where,
        )
    else:
        refusal_index = 0
        if message_open:
            # Text already sent is withdrawn: its part ends empty.
            yield event(
                "response.output_text.done",
                content_index=0,
                text="",
                logprobs=[],
                **where,
            )
            yield event(
                "response.content_part.done",
                content_index=0,
                part={
                    "type": "output_text",
                    "text": "",
                    "annotations": [],
                    "logprobs": [],
                },
                **where,
            )
            refusal_index = 1
        else:
            yield event(
                "response.output_item.added",
                output_index=msg_index,
                item=built.message_item("in_progress", []),
            )
        yield event(
            "response.content_part.added",
            content_index=refusal_index,
            part={"type": "refusal", "refusal": ""},
            **where,
        )
        yield event(
            "response.refusal.delta",
            content_index=refusal_index,
            delta=built.refusal,
            **where,
        )
        yield event(
            "response.refusal.done",
            content_index=refusal_index,
            refusal=built.refusal,
            **where,
        )
        yield event(
            "response.content_part.done",
            content_index=refusal_index,
            part={"type": "refusal", "refusal": built.refusal},
            **where,
        )
    item = built.output()[msg_index]
    yield event("response.output_item.done", output_index=msg_index, item=item)


# --- routes -----------------------------------------------------------------------------


@router.post("/responses", summary="Create a response")
async def responses_create(
    request: HttpRequest, body: ResponseRequest
) -> dict[str, Any] | StreamingHttpResponse:
    caller: Caller = request.auth
    include = body.include or []
    unknown = [name for name in include if name != RESULTS_INCLUDE]
    if unknown:
        raise ApiError(
            _("'%(name)s' cannot be included here; only %(ok)s.")
            % {"name": unknown[0], "ok": RESULTS_INCLUDE},
            param="include",
        )
    slot = await sync_to_async(StreamSlot)(caller.key) if body.stream else None
    charge = AnswerCharge(request)
    try:
        started = await sync_to_async(_start)(caller, body, charge)
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    built = Built(
        request=request,
        body=body,
        message=started.message,
        search=started.search,
        created_at=now_unix(),
        include_results=RESULTS_INCLUDE in include,
        charge=charge,
    )
    if body.background and not body.stream:
        # Written on without us; retrieve polls it, cancel stops it, and the
        # writer's end hook charges its tokens.
        return built.whole(done=False)
    if not body.stream:
        return await _whole(request, caller, built)
    return stream_response(_streamed(request, caller, built, slot))


class RetrieveQuery(Schema):
    include: list[str] = Field(default_factory=list)


def _rebuilt(caller: Caller, response_id_: str, include: list[str]) -> Built:
    """A stored answer as a Response object, for GET."""
    message = message_of(caller, response_id_, param="response_id")
    collections = (message.retrieval_trace or {}).get("collections") or []
    search = FileSearch(
        tools=[
            {
                "type": "file_search",
                "vector_store_ids": stores.vector_store_ids(collections),
                "max_num_results": DEFAULT_MAX_RESULTS,
                "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                "filters": (message.retrieval_trace or {}).get("filters"),
            }
        ]
        if collections
        else [],
        collection_ids=collections,
    )
    body = ResponseRequest(
        model=message.model or "ragapp-extractive", input=message.question
    )
    built = Built(
        request=None,  # type: ignore[arg-type]
        body=body,
        message=message,
        search=search,
        created_at=int(message.created_at.timestamp()),
        include_results=RESULTS_INCLUDE in include,
        text=message.answer,
        input_tokens=message.prompt_tokens,
        output_tokens=message.completion_tokens,
    )
    citations = list(Citation.objects.filter(message=message).order_by("marker"))
    built.files = stores.document_files(
        c.document_id for c in citations if c.document_id
    )
    for citation in citations:
        built.cite(
            {
                "marker": citation.marker,
                "document_id": citation.document_id,
                "document_title": citation.document_title,
                "page_start": citation.page_start,
                "page_end": citation.page_end,
                "quote": citation.quote,
            }
        )
    status = message.status
    if status == Message.Status.ANSWERING:
        built.status = "in_progress"
    elif status == Message.Status.FAILED:
        built.status = "failed"
    else:
        built.finish(
            {
                "status": status,
                "reason": message.status_reason,
                "retract": message.withheld,
                "prompt_tokens": message.prompt_tokens,
                "completion_tokens": message.completion_tokens,
            }
        )
    built.queries, built.results = search_results(message, DEFAULT_MAX_RESULTS)
    return built


@router.get("/responses/{response_id}", summary="Retrieve a response")
def responses_retrieve(
    request: HttpRequest, response_id: str, query: Query[RetrieveQuery]
) -> dict[str, Any]:
    built = _rebuilt(request.auth, response_id, query.include)
    whole = built.whole(done=built.status != "in_progress")
    if built.status == "failed":
        whole["error"] = {
            "code": "server_error",
            "message": built.message.status_reason or _("The answer failed."),
        }
    return whole


@router.delete("/responses/{response_id}", summary="Delete a response")
def responses_delete(request: HttpRequest, response_id: str) -> dict[str, Any]:
    caller: Caller = request.auth
    message = message_of(caller, response_id, param="response_id")
    stores.require_writable_key(caller)
    if message.status == Message.Status.ANSWERING:
        runner.answer_stop(message=message, reason=_("Deleted through the API."))
    message.delete()
    return {"id": response_id, "object": "response", "deleted": True}


CANCEL_WAIT_SECONDS = 5.0


@router.post("/responses/{response_id}/cancel", summary="Cancel a response")
def responses_cancel(request: HttpRequest, response_id: str) -> dict[str, Any]:
    """Stop a response still being written; it ends `cancelled`, keeping its text.

    OpenAI cancels only background responses; here any answer still being
    written can be stopped (it is written in the background either way). A
    finished one is returned as it is, so a cancel that lost the race to the
    end is not an error.
    """
    caller: Caller = request.auth
    message = message_of(caller, response_id, param="response_id")
    stores.require_writable_key(caller)
    if message.status == Message.Status.ANSWERING:
        runner.answer_stop(message=message, reason=cancel_reason())
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            message.refresh_from_db(fields=["status"])
            if message.status != Message.Status.ANSWERING:
                break
            time.sleep(0.05)
    built = _rebuilt(caller, response_id, [])
    return built.whole(done=built.status != "in_progress")


@router.get("/responses/{response_id}/input_items", summary="List a response's input")
def responses_input_items(request: HttpRequest, response_id: str) -> dict[str, Any]:
    message = message_of(request.auth, response_id, param="response_id")
    item = {
        "id": item_id("msg_in", message),
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": message.question}],
    }
    return {
        "object": "list",
        "data": [item],
        "first_id": item["id"],
        "last_id": item["id"],
        "has_more": False,
    }
