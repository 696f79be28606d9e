"""Threads: whose they are, what was said, and follow-ups made to stand alone.

"And what about page 3?" finds nothing on its own: retrieval needs the
subject of the conversation. With a chat model configured, the model rewrites
the follow-up into a standalone query (one short, non-streamed call); without
one, or when that call fails, a follow-up that leans on the previous turn
borrows that turn's search query. The rewrite is only ever a search query: the
model still answers the question as asked.
"""

from __future__ import annotations

import logging
import re

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from ragapp.answers.citations import strip_markers
from ragapp.answers.models import Message, Thread
from ragapp.answers.prompts import Turn
from ragapp.documents.tokens import truncate_to_tokens
from ragapp.providers.base import ChatProvider, UsageSink
from ragapp.providers.chat import complete, default_chat_options
from ragapp.providers.exceptions import ProviderError

logger = logging.getLogger(__name__)

REWRITE_PROMPT = """\
Rewrite the user's last question as one standalone search query for the \
organisation's documents, filling in from the conversation what "it", "that", \
"page 3" and the like refer to. Reply with the query only, on one line. If the \
question already stands alone, repeat it unchanged."""

# Words that make a question lean on what was said before.
_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|this|that|these|those|he|she|his|her|"
    r"there|same|above|previous|former|latter|also|else|more|page|section|"
    r"what about|how about|and)\b",
    re.IGNORECASE,
)
MAX_QUERY_CHARS = 500


def threads_of(user: AbstractBaseUser) -> QuerySet[Thread]:
    """The user's own threads; no one else's are ever reachable."""
    return Thread.objects.filter(user=user)


def thread_turns(thread: Thread, *, limit: int = 20) -> list[Turn]:
    """The thread's last answered turns, oldest first."""
    rows = (
        thread.messages.filter(
            status__in=[Message.Status.ANSWERED, Message.Status.NOT_FOUND]
        )
        .order_by("-created_at", "-pk")
        .values_list("question", "answer", "search_query")[:limit]
    )
    return [Turn(question=q, answer=a, search_query=sq) for q, a, sq in reversed(rows)]


def is_follow_up(question: str) -> bool:
    """Whether the question probably needs the conversation to be understood."""
    return len(question.split()) <= 6 or bool(_ANAPHORA.search(question))


def standalone_query(
    question: str,
    turns: list[Turn],
    *,
    provider: ChatProvider | None,
    on_finished: UsageSink | None = None,
) -> str:
    """Return the query to search with for `question` asked after `turns`.

    `on_finished` gets the rewrite call's end (usage), its messages and text,
    so the message's tokens and cost include it.
    """
    if not turns or not is_follow_up(question):
        return question
    if provider is not None:
        rewritten = _rewrite_with_model(question, turns, provider, on_finished)
        if rewritten:
            return rewritten
    previous = turns[-1].search_query or turns[-1].question
    return f"{previous} {question}"[:MAX_QUERY_CHARS]


def _rewrite_with_model(
    question: str,
    turns: list[Turn],
    provider: ChatProvider,
    on_finished: UsageSink | None,
) -> str:
    messages: list[dict] = [{"role": "system", "content": REWRITE_PROMPT}]
    for turn in turns[-3:]:
        messages.append({"role": "user", "content": turn.question})
        answer = truncate_to_tokens(strip_markers(turn.answer), 200)
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": question})
    options = default_chat_options(temperature=0, max_tokens=60)
    try:
        text, _ = complete(provider, messages, options=options, on_finished=on_finished)
    except ProviderError as exc:
        logger.warning("Follow-up rewrite skipped: %s", exc)
        return ""
    return " ".join(text.split())[:MAX_QUERY_CHARS]
