"""What the usage page reads: questions, tokens and cost, feedback, moderation.

Figures come from the message rows the answer loop completes (tokens as the
model server counted them, or tiktoken estimates, marked), so they are the
same numbers each answer recorded. A message is counted for a collection
when it cites a passage of it; answers citing nothing are "no citation".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ragapp.answers.models import Citation, ConversationRead, Feedback, Message
from ragapp.moderation.models import ModerationCheck


@dataclass(frozen=True)
class Period:
    """A range of whole days, in the server's time zone, both ends included."""

    start: dt.date
    end: dt.date

    @classmethod
    def last(cls, days: int, *, today: dt.date | None = None) -> Period:
        today = today or timezone.localdate()
        return cls(start=today - dt.timedelta(days=days - 1), end=today)

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        tz = timezone.get_current_timezone()
        start = dt.datetime.combine(self.start, dt.time.min, tzinfo=tz)
        end = dt.datetime.combine(
            self.end + dt.timedelta(days=1), dt.time.min, tzinfo=tz
        )
        return start, end

    @property
    def days(self) -> list[dt.date]:
        count = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=n) for n in range(count)]


def _messages(period: Period) -> QuerySet[Message]:
    start, end = period.bounds
    return Message.objects.filter(created_at__gte=start, created_at__lt=end)


def questions_per_day(period: Period) -> list[tuple[dt.date, int]]:
    """Every day of the period with its number of questions (0 included)."""
    counts = dict(
        _messages(period)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [(day, counts.get(day, 0)) for day in period.days]


@dataclass(frozen=True)
class UsageRow:
    label: str
    questions: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    estimated: bool


def usage_by_user(period: Period) -> list[UsageRow]:
    rows = (
        _messages(period)
        .values("thread__user__username")
        .annotate(**_totals())
        .order_by("-cost", "-questions")
    )
    return [_row(r["thread__user__username"], r) for r in rows]


def usage_by_collection(period: Period) -> list[UsageRow]:
    """Per collection its answers cited; an answer citing two counts in both."""
    start, end = period.bounds
    cited = (
        Citation.objects.filter(
            message__created_at__gte=start,
            message__created_at__lt=end,
            document__isnull=False,
        )
        .values("document__collection__name", "message_id")
        .distinct()
    )
    by_collection: dict[str, set[int]] = {}
    for row in cited:
        by_collection.setdefault(row["document__collection__name"], set()).add(
            row["message_id"]
        )
    rows = []
    for name, ids in by_collection.items():
        totals = Message.objects.filter(pk__in=ids).aggregate(**_totals())
        rows.append(_row(name, totals))
    uncited = _messages(period).filter(citations__isnull=True).aggregate(**_totals())
    if uncited["questions"]:
        rows.append(_row("(no citation)", uncited))
    return sorted(rows, key=lambda r: (-r.cost_usd, -r.questions))


def usage_totals(period: Period) -> UsageRow:
    return _row("All", _messages(period).aggregate(**_totals()))


def status_counts(period: Period) -> dict[str, int]:
    return dict(
        _messages(period)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )


def feedback_list(period: Period) -> QuerySet[Feedback]:
    start, end = period.bounds
    return (
        Feedback.objects.filter(updated_at__gte=start, updated_at__lt=end)
        .select_related("user", "message__thread")
        .order_by("-updated_at")
    )


def moderation_events(period: Period) -> QuerySet[ModerationCheck]:
    """Checks that flagged something or could not give a verdict."""
    start, end = period.bounds
    return (
        ModerationCheck.objects.filter(created_at__gte=start, created_at__lt=end)
        .filter(Q(flagged=True) | Q(status=ModerationCheck.Status.UNAVAILABLE))
        .select_related("user")
        .order_by("-created_at")
    )


def conversation_reads(period: Period) -> QuerySet[ConversationRead]:
    start, end = period.bounds
    return ConversationRead.objects.filter(read_at__gte=start, read_at__lt=end)


def _totals() -> dict:
    return {
        "questions": Count("pk", distinct=True),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
        "cost": Sum("cost_usd"),
        "estimated": Count("pk", filter=Q(tokens_estimated=True), distinct=True),
    }


def _row(label: str, totals: dict) -> UsageRow:
    return UsageRow(
        label=label,
        questions=totals["questions"] or 0,
        prompt_tokens=totals["prompt"] or 0,
        completion_tokens=totals["completion"] or 0,
        cost_usd=totals["cost"] or Decimal(0),
        estimated=bool(totals["estimated"]),
    )
