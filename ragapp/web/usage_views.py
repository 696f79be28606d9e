"""The usage page for admins, and their audited reading of staff conversations.

Privacy, decided: admins may read a staff member's conversation (to follow
up feedback or a moderation event), and every such read is recorded
(ragapp.answers.models.ConversationRead), shown on the usage page and to
the staff member on their own thread. No role can edit or delete the log.
"""

from __future__ import annotations

import datetime as dt

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ragapp.answers import usage
from ragapp.answers.models import Thread
from ragapp.answers.selectors import thread_messages
from ragapp.answers.services import conversation_read_record
from ragapp.web.manage_views import admin_required
from ragapp.web.turns import turn_context

MAX_DAYS = 366
CHART_HEIGHT = 120


def _period(request: HttpRequest) -> tuple[usage.Period, str]:
    """The period asked for (default: the last 30 days) and any complaint."""
    default = usage.Period.last(30)
    try:
        start = dt.date.fromisoformat(
            request.GET.get("from") or default.start.isoformat()
        )
        end = dt.date.fromisoformat(request.GET.get("to") or default.end.isoformat())
    except ValueError:
        return default, "Dates are written as YYYY-MM-DD; showing the last 30 days."
    if end < start:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start = end - dt.timedelta(days=MAX_DAYS - 1)
        return usage.Period(start, end), "At most a year is shown at once."
    return usage.Period(start, end), ""


def _chart(per_day: list[tuple[dt.date, int]]) -> dict:
    """Bars of an SVG chart, sized on the server: no chart library, no JS."""
    peak = max((n for _, n in per_day), default=0) or 1
    width = max(4, min(24, 720 // max(len(per_day), 1)))
    bars = [
        {
            "x": index * width,
            "height": round(n / peak * CHART_HEIGHT),
            "y": CHART_HEIGHT - round(n / peak * CHART_HEIGHT),
            "day": day,
            "count": n,
        }
        for index, (day, n) in enumerate(per_day)
    ]
    return {
        "bars": bars,
        "bar_width": max(width - 2, 2),
        "width": width * len(per_day),
        "height": CHART_HEIGHT,
        "peak": peak,
    }


@admin_required
@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    period, complaint = _period(request)
    per_day = usage.questions_per_day(period)
    context = {
        "period": period,
        "complaint": complaint,
        "chart": _chart(per_day),
        "per_day": per_day,
        "totals": usage.usage_totals(period),
        "statuses": usage.status_counts(period),
        "by_user": usage.usage_by_user(period),
        "by_collection": usage.usage_by_collection(period),
        "feedback": usage.feedback_list(period)[:200],
        "moderation": usage.moderation_events(period)[:200],
        "reads": usage.conversation_reads(period)[:200],
    }
    return render(request, "web/usage.html", context)


@admin_required
@require_GET
def conversation_audit(request: HttpRequest, thread_id: int) -> HttpResponse:
    """Read a staff member's conversation; the read is logged first."""
    thread = Thread.objects.select_related("user").filter(pk=thread_id).first()
    if thread is None:
        raise Http404
    conversation_read_record(reader=request.user, thread=thread)
    turns = [
        turn_context(m, user=request.user, readonly=True)
        for m in thread_messages(thread=thread, reader=request.user)
    ]
    return render(
        request, "web/conversation_audit.html", {"thread": thread, "turns": turns}
    )
