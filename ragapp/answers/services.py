"""The answer loop: moderate, retrieve, prompt, stream, cite, moderate, record.

`ask()` checks its input and records the message at once, then returns a
generator of events (ragapp.answers.events) that the web page and the APIs
relay as they come. Whatever ends the stream (an answer, a refusal, a model
outage, moderation, the reader closing the connection) the message row is
completed with why, what it cost and how long it took.

Two answerers share everything but the writing: a chat model through the
OpenAI format when one is configured (ragapp.providers.chat), and the offline
extractive answerer otherwise. Both pass through the same citation filter and
the same streamed moderation, so neither can cite what it was not given or
finish an answer moderation stopped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.answers import prompts
from ragapp.answers.citations import CitationFilter
from ragapp.answers.events import (
    AnswerEvent,
    CitationAdded,
    Delta,
    Finished,
    Started,
)
from ragapp.answers.extractive import extract_answer
from ragapp.answers.models import Citation, Message, Thread
from ragapp.answers.threads import standalone_query, thread_turns
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_ids_readable
from ragapp.documents.tokens import count_tokens
from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.models import ModerationCheck
from ragapp.moderation.services import screen
from ragapp.providers.base import ChatProvider, ToolCall
from ragapp.providers.catalog import chat_cost_usd
from ragapp.providers.chat import (
    ChatFinished,
    ChatOptions,
    TextDelta,
    default_chat_options,
    get_chat_provider,
)
from ragapp.providers.exceptions import (
    ProviderError,
    ProviderStreamInterruptedError,
)
from ragapp.retrieval.lexical import clean_query
from ragapp.retrieval.search import Passage, chunk_search

logger = logging.getLogger(__name__)

SEARCH_TOOL_NAME = "search_documents"
# The only tool a model is ever offered (T14 pins this list).
ALLOWED_TOOLS = (SEARCH_TOOL_NAME,)
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL_NAME,
        "description": (
            "Search the organisation's documents the user may read. Returns "
            "numbered passages to cite."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to search for, in a few words.",
                }
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}
MAX_TOOL_QUERY_CHARS = 500
MAX_TOOL_CALLS_PER_STEP = 4


class QuestionError(ValueError):
    """The question cannot be asked as it is (empty, too long, wrong thread)."""


def not_found_text() -> str:
    return _(
        "Your documents do not seem to answer this: no passage matched the "
        "question closely enough, so I won't answer from general knowledge."
    )


def ask(
    *,
    user: AbstractBaseUser,
    question: str,
    thread: Thread | None = None,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
) -> Iterator[AnswerEvent]:
    """Record the question and return the stream of its answer.

    `collection_ids` narrows the search (default: the thread's collections,
    else every collection the user may read); access is checked inside every
    search, so naming a collection the user may not read finds nothing.
    Raises QuestionError before anything is recorded when the question or
    thread is unusable.
    """
    question = clean_query(question).strip()
    if not question:
        raise QuestionError(_("Ask a question first."))
    if len(question) > settings.ANSWER_MAX_QUESTION_CHARS:
        raise QuestionError(
            _("The question is too long (at most %(limit)d characters).")
            % {"limit": settings.ANSWER_MAX_QUESTION_CHARS}
        )
    if thread is not None and thread.user_id != user.pk:
        raise QuestionError(_("That conversation does not exist."))
    with transaction.atomic():
        if thread is None:
            thread = Thread.objects.create(user=user, title=question[:200])
            if collection_ids is not None:
                thread.collections.set(
                    Collection.objects.filter(pk__in=list(collection_ids))
                )
        elif collection_ids is None:
            # The thread's collections, or (none set) every readable one.
            collection_ids = (
                list(thread.collections.values_list("pk", flat=True)) or None
            )
        turns = thread_turns(thread)
        message = Message.objects.create(thread=thread, question=question)
        Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    run = _Run(
        user=user,
        message=message,
        turns=turns,
        collection_ids=None if collection_ids is None else list(collection_ids),
        filters=filters,
    )
    return run.events()


@dataclass
class _Run:
    """The state of one answer while it streams."""

    user: AbstractBaseUser
    message: Message
    turns: list[prompts.Turn]
    collection_ids: list[int] | None
    filters: dict | None
    started: float = field(default_factory=time.monotonic)
    passages: list[prompts.NumberedPassage] = field(default_factory=list)
    answer: str = ""
    checked_upto: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = False
    trace: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    not_found: bool = False
    finish_reason: str = ""

    # --- the loop ----------------------------------------------------------

    def events(self) -> Iterator[AnswerEvent]:
        message = self.message
        try:
            provider = get_chat_provider()
            message.answerer = (
                Message.Answerer.MODEL if provider else Message.Answerer.EXTRACTIVE
            )
            yield Started(
                message_id=message.pk,
                thread_id=message.thread_id,
                answerer=message.answerer,
            )
            yield from self._answer(provider)
        except GeneratorExit:
            # The reader left: keep what was written, say it is incomplete
            # (unless the answer had already been recorded as finished).
            if message.finished_at is None:
                self._finish(
                    Message.Status.INTERRUPTED,
                    _("The connection closed before the answer was complete."),
                )
            raise
        except Exception:
            logger.exception("Answer %s failed", message.pk)
            if message.finished_at is None:
                yield self._finish(
                    Message.Status.FAILED,
                    _("Something went wrong while answering; the error was logged."),
                )

    def _answer(self, provider: ChatProvider | None) -> Iterator[AnswerEvent]:
        message = self.message
        # 1. The question is screened before anything else sees it.
        try:
            check = screen(message.question, user=self.user, source="question")
        except ModerationUnavailableError as exc:
            message.question_check = exc.check
            yield self._finish(Message.Status.FAILED, str(exc))
            return
        message.question_check = check
        if check.flagged:
            yield self._finish(
                Message.Status.REFUSED,
                _(
                    "This question was not answered: the content check flagged it "
                    "(%(categories)s)."
                )
                % {"categories": _flagged_categories(check)},
            )
            return
        # 2. Retrieval, with follow-ups rewritten to stand alone.
        message.search_query = standalone_query(
            message.question,
            self.turns,
            provider=provider,
            on_finished=self._count_usage,
        )
        found = self._search(message.search_query)
        self.passages = prompts.fit_passages(
            found, budget_tokens=settings.ANSWER_CONTEXT_TOKENS
        )
        self.trace = {
            "query": message.search_query,
            "collections": self.collection_ids,
            "filters": self.filters,
            "passages": [_trace(p) for p in self.passages],
            "tool_calls": [],
        }
        if not self._relevant():
            yield from self._say(not_found_text())
            yield self._finish(Message.Status.NOT_FOUND)
            return
        # 3-5. Write the answer through the citation filter and moderation.
        pieces = self._extractive() if provider is None else self._generate(provider)
        stopped = yield from self._stream(pieces)
        if stopped is not None:
            yield stopped
            return
        # The whole answer is screened once more at the end.
        stopped = self._moderate_answer(final=True)
        if stopped is not None:
            yield stopped
            return
        if self.finish_reason == "length":
            yield self._finish(
                Message.Status.INTERRUPTED,
                _("The answer reached the length limit and is cut off there."),
            )
        elif self.finish_reason == "content_filter":
            yield self._finish(
                Message.Status.STOPPED,
                _("The model's own content filter stopped the answer."),
                retract=True,
            )
        else:
            yield self._finish(
                Message.Status.NOT_FOUND if self.not_found else Message.Status.ANSWERED
            )

    # --- retrieval -----------------------------------------------------------

    def _search(self, query: str) -> list[Passage]:
        return chunk_search(
            user=self.user,
            query=query,
            collection_ids=self.collection_ids,
            filters=self.filters,
            limit=settings.ANSWER_PASSAGES,
            on_model_call=self._count_usage,
        )

    def _relevant(self) -> bool:
        """Whether any passage is close enough to the question to answer from.

        Cosine similarity of the passage to the query, from the vector
        ranking; a passage found only by words counts when nothing was
        measured by vectors at all (a search by words alone).
        """
        scores = [item.passage.vector_score for item in self.passages]
        measured = [score for score in scores if score is not None]
        if self.passages and not measured:
            return True  # searched by words alone: nothing to measure by
        return any(score >= settings.ANSWER_MIN_RELEVANCE for score in measured)

    # --- answerers -------------------------------------------------------------

    def _extractive(self) -> Iterator[str]:
        models = dict(
            Collection.objects.filter(
                pk__in={item.passage.collection_id for item in self.passages}
            ).values_list("pk", "embedding_model")
        )
        # The standalone query: a follow-up alone ("and page 3?") matches nothing.
        extracted = extract_answer(
            self.message.search_query or self.message.question,
            self.passages,
            models=models,
            threshold=settings.EXTRACTIVE_MIN_SCORE,
            max_scored=settings.EXTRACTIVE_MAX_SENTENCES,
        )
        self.trace["extractive_best_score"] = round(extracted.best_score, 4)
        self.message.model = "extractive/" + ",".join(sorted(set(models.values())))
        self.not_found = not extracted.sentences
        text = not_found_text() if self.not_found else extracted.text()
        self.prompt_tokens = 0
        self.completion_tokens = count_tokens(text)
        yield from _words(text)

    def _generate(self, provider: ChatProvider) -> Iterator[str]:
        """Stream the model's answer, running its search_documents calls."""
        delimiter = prompts.new_delimiter()
        tools = settings.ANSWER_TOOL_STEPS > 0
        messages = [
            prompts.system_message(delimiter=delimiter, tools=tools),
            *prompts.history_messages(
                self.turns, budget_tokens=settings.ANSWER_HISTORY_TOKENS
            ),
            prompts.question_message(
                self.message.question, self.passages, delimiter=delimiter
            ),
        ]
        options = self._options()
        for step in range(settings.ANSWER_TOOL_STEPS + 1):
            offer = (
                [SEARCH_TOOL] if tools and step < settings.ANSWER_TOOL_STEPS else None
            )
            finished: ChatFinished | None = None
            written = ""
            for event in provider.stream(messages, options=options, tools=offer):
                if isinstance(event, TextDelta):
                    written += event.text
                    yield event.text
                else:
                    finished = event
            if finished is None:  # the provider guarantees one; be safe
                raise ProviderStreamInterruptedError()
            self.message.model = finished.model
            self.finish_reason = finished.finish_reason
            self._count_usage(finished, messages, written)
            if not (finished.tool_calls and offer):
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": written or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.name,
                                "arguments": call.arguments,
                            },
                        }
                        for call in finished.tool_calls
                    ],
                }
            )
            for index, call in enumerate(finished.tool_calls):
                content = self._run_tool(
                    call, delimiter, allowed=index < MAX_TOOL_CALLS_PER_STEP
                )
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": content}
                )

    def _options(self) -> ChatOptions:
        """Sampling settings: the collection's own when one collection is asked."""
        overrides: dict = {}
        if self.collection_ids and len(self.collection_ids) == 1:
            # Only a collection the user may read lends its settings.
            collection = Collection.objects.filter(
                pk=self.collection_ids[0],
                pk__in=collection_ids_readable(user=self.user),
            ).first()
            if collection is not None:
                overrides = collection.chat_options()
        return default_chat_options(**overrides)

    def _run_tool(self, call: ToolCall, delimiter: str, *, allowed: bool) -> str:
        """Run one tool call as the asking user, or refuse it and log why."""
        record = {"name": call.name[:100], "arguments": call.arguments[:300]}
        self.trace["tool_calls"].append(record)
        refusal = None
        query = ""
        if call.name not in ALLOWED_TOOLS:
            refusal = "unknown tool"
        elif not allowed:
            refusal = "too many tool calls in one step"
        else:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = None
            query = arguments.get("query") if isinstance(arguments, dict) else None
            if not isinstance(query, str) or not query.strip():
                refusal = "arguments must be a JSON object with a query string"
            elif len(query) > MAX_TOOL_QUERY_CHARS:
                refusal = f"query longer than {MAX_TOOL_QUERY_CHARS} characters"
        if refusal:
            record["status"] = "refused: " + refusal
            logger.warning(
                "Refused tool call %r in message %s: %s",
                call.name[:100],
                self.message.pk,
                refusal,
            )
            return f"Error: {refusal}. The only tool is {SEARCH_TOOL_NAME}(query)."
        # Same user, same scope and filters as the question: a model cannot
        # widen what is searched, whatever its arguments say.
        known = {item.passage.chunk_id for item in self.passages}
        fresh = [p for p in self._search(clean_query(query)) if p.chunk_id not in known]
        added = prompts.fit_passages(
            fresh,
            budget_tokens=settings.ANSWER_CONTEXT_TOKENS // 2,
            first_number=len(self.passages) + 1,
        )
        self.passages.extend(added)
        self.trace["passages"].extend(_trace(p) for p in added)
        record["status"] = f"ran: {len(added)} passages"
        if not added:
            return "No further passages were found."
        return prompts.format_passages(added, delimiter=delimiter)

    def _count_usage(
        self, finished: ChatFinished, messages: list[dict], written: str
    ) -> None:
        if finished.usage is not None:
            self.prompt_tokens += finished.usage.prompt_tokens
            self.completion_tokens += finished.usage.completion_tokens
            return
        self.tokens_estimated = True
        self.prompt_tokens += sum(
            count_tokens(m.get("content") or "") + 4 for m in messages
        )
        self.completion_tokens += count_tokens(written)

    # --- streaming -------------------------------------------------------------

    def _stream(self, pieces: Iterator[str]) -> Iterator[AnswerEvent]:
        """Relay pieces as deltas and citations; return a Finished if stopped."""
        # Passages added by tool calls join `self.passages` while streaming.
        citations = CitationFilter(_LiveNumbers(self.passages))
        try:
            for piece in pieces:
                text, new = citations.feed(piece)
                yield from self._emit(text, new)
                stopped = self._moderate_answer(final=False)
                if stopped is not None:
                    return stopped
        except ProviderStreamInterruptedError:
            text, new = citations.finish()
            yield from self._emit(text, new)
            return self._finish(Message.Status.INTERRUPTED, _interrupted_text())
        except ProviderError as exc:
            return self._finish(Message.Status.FAILED, str(exc))
        text, new = citations.finish()
        yield from self._emit(text, new)
        return None

    def _emit(self, text: str, new: list[int]) -> Iterator[AnswerEvent]:
        if text:
            if self.message.first_token_ms is None:
                self.message.first_token_ms = _ms_since(self.started)
            self.answer += text
            yield Delta(text=text)
        for number in new:
            # Passages are numbered 1, 2, … in order (see _LiveNumbers).
            yield _citation_event(self.passages[number - 1])

    def _say(self, text: str) -> Iterator[AnswerEvent]:
        self.message.first_token_ms = _ms_since(self.started)
        self.answer += text
        yield Delta(text=text)

    def _moderate_answer(self, *, final: bool) -> Finished | None:
        """Screen the answer every few hundred characters, and whole at the end.

        Each piece is screened with the tail of the one before, so a phrase
        cut at the boundary is still seen whole.
        """
        step = settings.MODERATION_STREAM_CHARS
        if final:
            window = self.answer
        elif len(self.answer) - self.checked_upto >= step:
            window = self.answer[max(0, self.checked_upto - step // 4) :]
        else:
            return None
        self.checked_upto = len(self.answer)
        if not window.strip():
            return None
        try:
            check = screen(window, user=self.user, source="answer")
        except ModerationUnavailableError as exc:
            if exc.check is not None:
                self.checks.append(exc.check)
            return self._finish(Message.Status.FAILED, str(exc), retract=True)
        self.checks.append(check)
        if not check.flagged:
            return None
        return self._finish(
            Message.Status.STOPPED,
            _("The answer was stopped: the content check flagged it (%(categories)s).")
            % {"categories": _flagged_categories(check)},
            retract=True,
        )

    # --- recording -------------------------------------------------------------

    def _finish(
        self, status: str, reason: str = "", *, retract: bool = False
    ) -> Finished:
        message = self.message
        message.status = status
        message.status_reason = reason
        message.answer = self.answer
        message.prompt_tokens = self.prompt_tokens
        message.completion_tokens = self.completion_tokens
        message.tokens_estimated = self.tokens_estimated
        message.cost_usd = (
            chat_cost_usd(message.model, self.prompt_tokens, self.completion_tokens)
            if message.answerer == Message.Answerer.MODEL
            else Decimal(0)
        )
        message.retrieval_trace = self.trace
        message.latency_ms = _ms_since(self.started)
        message.finished_at = timezone.now()
        cited = (
            set(_markers_in(self.answer)) if status != Message.Status.STOPPED else set()
        )
        with transaction.atomic():
            message.save()
            if self.checks:
                message.answer_checks.add(*self.checks)
            Citation.objects.bulk_create(
                _citation_row(message, item)
                for item in self.passages
                if item.number in cited
            )
        return Finished(
            message_id=message.pk,
            status=status,
            reason=reason,
            retract=retract,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )


class _LiveNumbers:
    """The passage numbers valid right now (tool calls add some mid-answer)."""

    def __init__(self, passages: list[prompts.NumberedPassage]) -> None:
        self._passages = passages

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and 1 <= number <= len(self._passages)


def _markers_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d{1,3})\]", text)]


def _words(text: str, size: int = 3) -> Iterator[str]:
    """Stream composed text a few words at a time, like a model would."""
    words = text.split(" ")
    for start in range(0, len(words), size):
        chunk = " ".join(words[start : start + size])
        yield chunk if start + size >= len(words) else chunk + " "


def _citation_fields(item: prompts.NumberedPassage) -> dict:
    """What a citation shows, for the event and the stored row alike."""
    p = item.passage
    return {
        "marker": item.number,
        "chunk_id": p.chunk_id,
        "document_id": p.document_id,
        "document_title": p.document_title,
        "page_start": p.page_start,
        "page_end": p.page_end,
        "quote": p.text,
    }


def _citation_event(item: prompts.NumberedPassage) -> CitationAdded:
    return CitationAdded(**_citation_fields(item))


def _citation_row(message: Message, item: prompts.NumberedPassage) -> Citation:
    return Citation(message=message, **_citation_fields(item))


def _trace(item: prompts.NumberedPassage) -> dict:
    p = item.passage
    return {
        "number": item.number,
        "chunk_id": p.chunk_id,
        "document_id": p.document_id,
        "score": round(p.score, 4),
        "vector_rank": p.vector_rank,
        "lexical_rank": p.lexical_rank,
        "vector_score": _rounded(p.vector_score),
        "sentence_score": _rounded(p.sentence_score),
        "rerank_score": _rounded(p.rerank_score),
    }


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


def _flagged_categories(check: ModerationCheck) -> str:
    names = [name for name, hit in (check.categories or {}).items() if hit]
    return ", ".join(names) or _("unspecified")


def _interrupted_text() -> str:
    return _(
        "The model service failed part-way, so this answer is incomplete. "
        "Ask again to get a full answer."
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def warm_up() -> None:
    """Load the local models the first question needs (embedder, offline screen).

    Called at web start in the background, so the first person to ask does
    not wait seconds for models to load.
    """
    from ragapp.providers.embeddings import get_embedding_provider
    from ragapp.providers.moderation import get_moderation_provider

    try:
        get_embedding_provider(settings.EMBEDDING_MODEL).embed_query("warm up")
        provider = get_moderation_provider()
        if hasattr(provider, "warm_up"):
            provider.warm_up()
    except Exception:  # a model that cannot load says so on first use
        logger.warning("Warm-up of the local models failed", exc_info=True)
