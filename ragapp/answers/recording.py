"""What an answer leaves behind: usage, citations, the finished message row.

The row is completed however the answer ends, so a refused question, a model
outage or a withheld answer leaves the same trail as a good one. A withheld
answer keeps neither its text nor its citations: failing closed means it can
never be shown again, on any page or API.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from ragapp.answers import prompts
from ragapp.answers.models import Citation, Message
from ragapp.documents.tokens import count_tokens
from ragapp.moderation.models import ModerationCheck
from ragapp.providers.base import ChatFinished
from ragapp.providers.catalog import chat_cost_usd


@dataclass
class Usage:
    """Tokens an answer spent across its model calls (rewrite, rerank, answer)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    def count(self, finished: ChatFinished, messages: list[dict], written: str) -> None:
        """Add one call's usage; estimate with tiktoken when the server sent none."""
        if finished.usage is not None:
            self.prompt_tokens += finished.usage.prompt_tokens
            self.completion_tokens += finished.usage.completion_tokens
            return
        self.estimated = True
        self.prompt_tokens += sum(
            count_tokens(m.get("content") or "") + 4 for m in messages
        )
        self.completion_tokens += count_tokens(written)


def citation_fields(item: prompts.NumberedPassage) -> dict:
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


def citation_record(message: Message, item: prompts.NumberedPassage) -> None:
    """Store a citation as it is released, so its link works while streaming."""
    Citation.objects.get_or_create(
        message=message, marker=item.number, defaults=citation_fields(item)
    )


def passage_trace(item: prompts.NumberedPassage) -> dict:
    """What the retrieval trace keeps of an offered passage: where it ranked."""
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


def message_finish(
    message: Message,
    *,
    status: str,
    reason: str,
    answer: str,
    usage: Usage,
    trace: dict,
    checks: list[ModerationCheck],
    latency_ms: int,
    withheld: bool = False,
) -> None:
    """Complete the message row: status, why, text, cost, timing, verdicts."""
    message.status = status
    message.status_reason = reason
    message.withheld = withheld
    message.answer = "" if withheld else answer
    message.prompt_tokens = usage.prompt_tokens
    message.completion_tokens = usage.completion_tokens
    message.tokens_estimated = usage.estimated
    message.cost_usd = (
        chat_cost_usd(message.model, usage.prompt_tokens, usage.completion_tokens)
        if message.answerer == Message.Answerer.MODEL
        else Decimal(0)
    )
    message.retrieval_trace = trace
    message.latency_ms = latency_ms
    message.finished_at = timezone.now()
    with transaction.atomic():
        message.save()
        if checks:
            message.answer_checks.add(*checks)
        if withheld:
            message.citations.all().delete()
