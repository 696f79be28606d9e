"""One answer, from screened question to recorded message, as a stream of events.

The steps: screen the question; make a follow-up stand alone and retrieve;
decline when nothing is close enough; write the answer (a chat model through
the OpenAI format, with its search tool, or the offline extractive answerer)
through the citation filter and the moderation gate; record the message.
The events (ragapp.answers.events) are what every consumer relays: the web
page, the native API and the OpenAI-compatible surface.

Whatever ends the stream (an answer, a refusal, an outage, moderation, a
stop) the message row is completed with why, what it cost and how long it
took (ragapp.answers.recording).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
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
from ragapp.answers.gate import AnswerWithheldError, ModerationGate, flagged_categories
from ragapp.answers.models import Message
from ragapp.answers.recording import (
    Usage,
    citation_fields,
    citation_record,
    message_finish,
    passage_trace,
)
from ragapp.answers.threads import standalone_query
from ragapp.answers.tools import (
    MAX_TOOL_CALLS_PER_STEP,
    SEARCH_TOOL,
    assistant_tool_message,
    search_tool_run,
)
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_ids_readable
from ragapp.documents.tokens import count_tokens
from ragapp.moderation.exceptions import ModerationUnavailableError
from ragapp.moderation.services import screen
from ragapp.providers.base import ChatProvider
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
from ragapp.retrieval.search import Passage, chunk_search

logger = logging.getLogger(__name__)


def not_found_text() -> str:
    return _(
        "Your documents do not seem to answer this: no passage matched the "
        "question closely enough, so I won't answer from general knowledge."
    )


class _EndError(Exception):
    """Ends the answer early with a status and a reason for the reader."""

    def __init__(
        self, status: str, reason: str = "", *, withheld: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.withheld = withheld


@dataclass
class AnswerRun:
    """The state of one answer while it is written."""

    user: AbstractBaseUser
    message: Message
    turns: list[prompts.Turn]
    collection_ids: list[int] | None
    filters: dict | None
    # False: the extractive answerer even when a chat model is configured.
    use_model: bool = True
    started: float = field(default_factory=time.monotonic)
    passages: list[prompts.NumberedPassage] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    trace: dict = field(default_factory=dict)
    not_found: bool = False
    finish_reason: str = ""
    # Why the answer was stopped from outside (set before closing the stream).
    stop_reason: str = ""
    gate: ModerationGate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = ModerationGate(
            screen=lambda text: screen(text, user=self.user, source="answer"),
            first_window=settings.MODERATION_FIRST_WINDOW_CHARS,
            window=settings.MODERATION_STREAM_CHARS,
            max_wait_seconds=settings.MODERATION_MAX_WAIT_SECONDS,
        )

    def events(self) -> Iterator[AnswerEvent]:
        message = self.message
        try:
            provider = get_chat_provider() if self.use_model else None
            message.answerer = (
                Message.Answerer.MODEL if provider else Message.Answerer.EXTRACTIVE
            )
            yield Started(
                message_id=message.pk,
                thread_id=message.thread_id,
                answerer=message.answerer,
            )
            yield from self._answer(provider)
            status = Message.Status.ANSWERED
            reason = ""
            if self.not_found:
                status = Message.Status.NOT_FOUND
            elif self.finish_reason == "length":
                status = Message.Status.INTERRUPTED
                reason = _("The answer reached the length limit and is cut off there.")
            yield self._finish(status, reason)
        except _EndError as end:
            yield self._finish(end.status, end.reason, withheld=end.withheld)
        except GeneratorExit:
            # Stopped from outside: keep what was released, say why it ends.
            if message.finished_at is None:
                self._finish(
                    Message.Status.INTERRUPTED,
                    self.stop_reason
                    or _("The answer was stopped before it was complete."),
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
        self._screen_question()
        message = self.message
        message.search_query = standalone_query(
            message.question,
            self.turns,
            provider=provider,
            on_finished=self.usage.count,
        )
        found = self._search(message.search_query)
        self.passages = prompts.fit_passages(
            found, budget_tokens=settings.ANSWER_CONTEXT_TOKENS
        )
        self.trace = {
            "query": message.search_query,
            "collections": self.collection_ids,
            "filters": self.filters,
            "passages": [passage_trace(p) for p in self.passages],
            "tool_calls": [],
        }
        if not self._relevant():
            self.not_found = True
            pieces: Iterator[str] = iter([not_found_text()])
        elif provider is None:
            pieces = self._extractive()
        else:
            pieces = self._generate(provider)
        yield from self._stream(pieces)
        if self.finish_reason == "content_filter":
            raise _EndError(
                Message.Status.STOPPED,
                _("The model's own content filter stopped the answer."),
                withheld=True,
            )

    def _screen_question(self) -> None:
        message = self.message
        try:
            check = screen(message.question, user=self.user, source="question")
        except ModerationUnavailableError as exc:
            message.question_check = exc.check
            raise _EndError(Message.Status.FAILED, str(exc)) from exc
        message.question_check = check
        if check.flagged:
            raise _EndError(
                Message.Status.REFUSED,
                _(
                    "This question was not answered: the content check flagged it "
                    "(%(categories)s)."
                )
                % {"categories": flagged_categories(check)},
            )

    # --- retrieval -----------------------------------------------------------

    def _search(self, query: str) -> list[Passage]:
        return chunk_search(
            user=self.user,
            query=query,
            collection_ids=self.collection_ids,
            filters=self.filters,
            limit=settings.ANSWER_PASSAGES,
            on_model_call=self.usage.count,
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
            asked=self.message.question,
        )
        self.trace["extractive_best_score"] = round(extracted.best_score, 4)
        self.message.model = "extractive/" + ",".join(sorted(set(models.values())))
        self.not_found = not extracted.sentences
        text = not_found_text() if self.not_found else extracted.text()
        self.usage.completion_tokens = count_tokens(text)
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
                    if "model_first_token_ms" not in self.trace:
                        self.trace["model_first_token_ms"] = _ms_since(self.started)
                    written += event.text
                    yield event.text
                else:
                    finished = event
            if finished is None:  # the provider guarantees one; be safe
                raise ProviderStreamInterruptedError()
            self.message.model = finished.model
            self.finish_reason = finished.finish_reason
            self.usage.count(finished, messages, written)
            if not (finished.tool_calls and offer):
                return
            messages.append(assistant_tool_message(written, finished.tool_calls))
            for index, call in enumerate(finished.tool_calls):
                content = search_tool_run(
                    call,
                    search=self._search,
                    passages=self.passages,
                    trace=self.trace,
                    delimiter=delimiter,
                    allowed=index < MAX_TOOL_CALLS_PER_STEP,
                    message_id=self.message.pk,
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

    # --- streaming -------------------------------------------------------------

    def _stream(self, pieces: Iterator[str]) -> Iterator[AnswerEvent]:
        """Relay pieces through the citation filter and the moderation gate."""
        # Passages added by tool calls join `self.passages` while streaming.
        citations = CitationFilter(_LiveNumbers(self.passages))
        try:
            try:
                for piece in pieces:
                    yield from self._release(
                        self.gate.hold(self._cited(piece, citations))
                    )
            except ProviderStreamInterruptedError:
                # Show what was written (once screened), then say it is cut off.
                text, new = citations.finish()
                self.gate.hold(self._events(text, new))
                yield from self._release(self.gate.finish())
                raise _EndError(
                    Message.Status.INTERRUPTED, _interrupted_text()
                ) from None
            except ProviderError as exc:
                raise _EndError(Message.Status.FAILED, str(exc)) from exc
            text, new = citations.finish()
            self.gate.hold(self._events(text, new))
            yield from self._release(self.gate.finish())
        except AnswerWithheldError as withheld:
            raise _EndError(withheld.status, withheld.message, withheld=True) from None

    def _cited(self, piece: str, citations: CitationFilter) -> list[AnswerEvent]:
        text, new = citations.feed(piece)
        return self._events(text, new)

    def _events(self, text: str, new: list[int]) -> list[AnswerEvent]:
        events: list[AnswerEvent] = [Delta(text=text)] if text else []
        # Passages are numbered 1, 2, … in order (see _LiveNumbers).
        events.extend(
            CitationAdded(**citation_fields(self.passages[number - 1]))
            for number in new
        )
        return events

    def _release(self, events: list[AnswerEvent]) -> Iterator[AnswerEvent]:
        """Hand on what moderation passed; store citations as they appear."""
        for event in events:
            if isinstance(event, Delta) and self.message.first_token_ms is None:
                self.message.first_token_ms = _ms_since(self.started)
            if isinstance(event, CitationAdded):
                citation_record(self.message, self.passages[event.marker - 1])
            yield event

    # --- recording -------------------------------------------------------------

    def _finish(
        self, status: str, reason: str = "", *, withheld: bool = False
    ) -> Finished:
        message_finish(
            self.message,
            status=status,
            reason=reason,
            answer=self.gate.released_text,
            usage=self.usage,
            trace=self.trace,
            checks=self.gate.checks,
            latency_ms=_ms_since(self.started),
            withheld=withheld,
        )
        return Finished(
            message_id=self.message.pk,
            status=status,
            reason=reason,
            retract=withheld,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
        )


class _LiveNumbers:
    """The passage numbers valid right now (tool calls add some mid-answer)."""

    def __init__(self, passages: list[prompts.NumberedPassage]) -> None:
        self._passages = passages

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and 1 <= number <= len(self._passages)


def _words(text: str, size: int = 3) -> Iterator[str]:
    """Stream composed text a few words at a time, like a model would."""
    words = text.split(" ")
    for start in range(0, len(words), size):
        chunk = " ".join(words[start : start + size])
        yield chunk if start + size >= len(words) else chunk + " "


def _interrupted_text() -> str:
    return _(
        "The model service failed part-way, so this answer is incomplete. "
        "Ask again to get a full answer."
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
