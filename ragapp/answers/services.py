"""Asking: check the question, record it, and hand back its answer's stream.

`ask()` records the message at once and returns an AnswerStream of events
(ragapp.answers.events), written by ragapp.answers.pipeline. The caller
decides where it runs: the web page and the APIs hand it to the background
runner (ragapp.answers.runner), so an answer outlives the connection that
asked; tests and benchmarks iterate it in place.

A thread's scope is one rule: the collections it searches are the thread's
own (none set: every collection the user may read). Naming collections with
a question sets that scope for this question and the ones after, and each
message's trace records what it searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.answers.events import AnswerEvent
from ragapp.answers.models import ConversationRead, Feedback, Message, Thread
from ragapp.answers.pipeline import AnswerRun, not_found_text
from ragapp.answers.prompts import Turn
from ragapp.answers.threads import thread_turns
from ragapp.documents.models import Collection
from ragapp.documents.selectors import collection_ids_readable
from ragapp.retrieval.lexical import clean_query

__all__ = ["AnswerStream", "QuestionError", "ask", "not_found_text"]

logger = logging.getLogger(__name__)


class QuestionError(ValueError):
    """The question cannot be asked as it is (empty, too long, wrong thread)."""


class AnswerStream:
    """The events of one answer, as an iterator; `stop()` ends it early."""

    def __init__(self, run: AnswerRun) -> None:
        self.run = run
        self.message = run.message
        self._events = run.events()

    def __iter__(self) -> Iterator[AnswerEvent]:
        return self

    def __next__(self) -> AnswerEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def stop(self, reason: str) -> None:
        """End the answer, recording `reason` as why it is incomplete."""
        self.run.stop_reason = reason
        self._events.close()


def ask(
    *,
    user: AbstractBaseUser,
    question: str,
    thread: Thread | None = None,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
    turns: list[Turn] | None = None,
    use_model: bool = True,
) -> AnswerStream:
    """Record the question and return the stream of its answer.

    `collection_ids` sets the thread's scope (see the module docstring);
    only collections the user may read are kept, and access is checked again
    inside every search. `turns` replaces the thread's own history (an API
    caller sends the conversation with each request); `use_model=False`
    answers extractively even when a chat model is configured. Raises
    QuestionError before anything is recorded when the question or thread is
    unusable.
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
                Collection.objects.filter(pk__in=list(collection_ids)).filter(
                    pk__in=collection_ids_readable(user=user)
                )
            )
        scope = list(thread.collections.values_list("pk", flat=True)) or None
        if turns is None:
            turns = thread_turns(thread)
        message = Message.objects.create(thread=thread, question=question)
        Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    if collection_ids is not None and scope is None and list(collection_ids):
        # Every named collection was unreadable: search none, not everything.
        scope = []
    run = AnswerRun(
        user=user,
        message=message,
        turns=turns,
        collection_ids=scope,
        filters=filters,
        use_model=use_model,
    )
    return AnswerStream(run)


def thread_rename(*, thread: Thread, title: str) -> Thread:
    """Rename a thread; an empty title falls back to its first question."""
    title = " ".join(title.split())[:200]
    if not title:
        first = thread.messages.order_by("created_at", "pk").first()
        title = first.question[:200] if first else ""
    thread.title = title
    thread.save(update_fields=["title"])
    return thread


def thread_delete(*, thread: Thread) -> None:
    """Delete a thread, its messages, citations and feedback."""
    thread.delete()


def feedback_set(
    *, message: Message, user: AbstractBaseUser, rating: int, comment: str = ""
) -> Feedback:
    """Record (or change) what the asker thought of an answer."""
    if rating not in Feedback.Rating.values:
        raise QuestionError(_("Choose helpful or not helpful."))
    if message.status == Message.Status.ANSWERING:
        raise QuestionError(_("Wait for the answer to finish first."))
    feedback, _created = Feedback.objects.update_or_create(
        message=message,
        defaults={"user": user, "rating": rating, "comment": comment.strip()[:2000]},
    )
    return feedback


def conversation_read_record(*, reader: AbstractBaseUser, thread: Thread) -> None:
    """Log that `reader` opened someone else's conversation (an admin's read)."""
    if thread.user_id == reader.pk:
        return
    ConversationRead.objects.create(
        reader=reader,
        reader_name=reader.get_username(),
        thread=thread,
        owner_id=thread.user_id,
        owner_name=thread.user.get_username(),
        thread_title=thread.title[:200],
    )


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
