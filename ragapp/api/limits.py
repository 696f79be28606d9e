"""Request rates, monthly token budgets and concurrent streams, per key and user.

Rates and stream slots are counters in Redis (fixed one-minute windows; a
slot expires on its own if a process dies holding it). Budgets are rows in
PostgreSQL (TokenSpend), because money must survive a Redis restart. When
Redis cannot be reached, rates and slots are not enforced (and a warning is
logged): the limits protect the service, and refusing every request would be
the outage they exist to prevent. Budgets are always enforced.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import date

import redis
from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.answers import eventlog
from ragapp.api.exceptions import BudgetExceededError, RateLimitedError
from ragapp.api.models import ApiKey, TokenSpend

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
STREAM_SLOT_SECONDS = 15 * 60


def _prefix() -> str:
    return f"{settings.ANSWER_EVENTS_PREFIX}:api"


def _window() -> tuple[int, int]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
    return window, retry_after


def _count(name: str, limit: int) -> int | None:
    """Count one hit on `name` in this window; return Retry-After past `limit`."""
    if limit <= 0:
        return None
    window, retry_after = _window()
    counter = f"{_prefix()}:rate:{name}:{window}"
    try:
        pipe = eventlog.client().pipeline()
        pipe.incr(counter)
        pipe.expire(counter, WINDOW_SECONDS + 5)
        hits = pipe.execute()[0]
    except redis.RedisError:
        logger.warning("API rate limits not enforced: Redis is not answering")
        return None
    return retry_after if hits > limit else None


def rate_limited(message: str, retry_after: int) -> RateLimitedError:
    return RateLimitedError(message, headers={"Retry-After": str(retry_after)})


def rate_check(key: ApiKey) -> None:
    """Count a request of `key` and its user; raise RateLimitedError past a limit."""
    per_key = key.requests_per_minute or settings.API_REQUESTS_PER_MINUTE
    if (wait := _count(f"key:{key.pk}", per_key)) is not None:
        raise rate_limited(
            _("Rate limit reached for this API key (%(limit)d requests a minute).")
            % {"limit": per_key},
            wait,
        )
    per_user = settings.API_USER_REQUESTS_PER_MINUTE
    if (wait := _count(f"user:{key.user_id}", per_user)) is not None:
        raise rate_limited(
            _("Rate limit reached for your account (%(limit)d requests a minute).")
            % {"limit": per_user},
            wait,
        )


def failed_auth_check(ip: str) -> None:
    """Count a request with a bad key from `ip`; throttle guessing (T06)."""
    if (
        wait := _count(f"badkey:{ip}", settings.API_FAILED_AUTH_PER_MINUTE)
    ) is not None:
        raise rate_limited(
            _("Too many requests with invalid API keys; try again later."), wait
        )


def failed_auth_blocked(ip: str) -> int | None:
    """Retry-After when `ip` is already past the bad-key limit, without counting."""
    limit = settings.API_FAILED_AUTH_PER_MINUTE
    if limit <= 0:
        return None
    window, retry_after = _window()
    try:
        hits = eventlog.client().get(f"{_prefix()}:rate:badkey:{ip}:{window}")
    except redis.RedisError:
        return None
    return retry_after if hits is not None and int(hits) >= limit else None


# --- budgets ------------------------------------------------------------------


def _month(today: date | None = None) -> date:
    today = today or timezone.now().date()
    return today.replace(day=1)


def _seconds_to_next_month() -> int:
    now = timezone.now()
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return max(1, int((following - now).total_seconds()))


def key_budget(key: ApiKey) -> int:
    return (
        key.monthly_token_budget
        if key.monthly_token_budget is not None
        else settings.API_KEY_MONTHLY_TOKENS
    )


def spent_this_month(key: ApiKey) -> tuple[int, int]:
    """Tokens spent this month by `key`, and by all its user's keys."""
    month = _month()
    rows = TokenSpend.objects.filter(user_id=key.user_id, month=month)
    by_user = rows.aggregate(total=Sum("tokens"))["total"] or 0
    by_key = rows.filter(key=key).aggregate(total=Sum("tokens"))["total"] or 0
    return by_key, by_user


def budget_check(key: ApiKey) -> None:
    """Refuse a request once the key or its user spent this month's budget.

    Checked before each request and spent after, so a budget overshoots by at
    most what the requests in flight spend, each capped by API_MAX_TOKENS.
    """
    by_key, by_user = spent_this_month(key)
    budget = key_budget(key)
    user_budget = settings.API_USER_MONTHLY_TOKENS
    headers = {"Retry-After": str(_seconds_to_next_month())}
    if budget and by_key >= budget:
        raise BudgetExceededError(
            _("This API key has used its %(budget)d tokens for this month.")
            % {"budget": budget},
            headers=headers,
        )
    if user_budget and by_user >= user_budget:
        raise BudgetExceededError(
            _("Your account has used its %(budget)d API tokens for this month.")
            % {"budget": user_budget},
            headers=headers,
        )


def spend(key: ApiKey, tokens: int) -> None:
    """Add `tokens` to this month's spend of `key`."""
    if tokens <= 0:
        return
    month = _month()
    updated = TokenSpend.objects.filter(key=key, month=month).update(
        tokens=F("tokens") + tokens
    )
    if not updated:
        spend_row, created = TokenSpend.objects.get_or_create(
            key=key, month=month, defaults={"user_id": key.user_id, "tokens": tokens}
        )
        if not created:
            TokenSpend.objects.filter(pk=spend_row.pk).update(
                tokens=F("tokens") + tokens
            )


# --- concurrent streams -------------------------------------------------------


class StreamSlot:
    """One of a key's concurrent-stream slots (T37); release() is idempotent.

    Held by a streaming response from before its first byte until its
    generator ends, however it ends; the counter's expiry frees slots a dead
    process held.
    """

    def __init__(self, key: ApiKey) -> None:
        self._counter = f"{_prefix()}:streams:{key.pk}"
        self._held = False
        limit = settings.API_MAX_STREAMS_PER_KEY
        if limit <= 0:
            return
        try:
            client = eventlog.client()
            pipe = client.pipeline()
            pipe.incr(self._counter)
            pipe.expire(self._counter, STREAM_SLOT_SECONDS)
            current = pipe.execute()[0]
        except redis.RedisError:
            logger.warning("API stream limits not enforced: Redis is not answering")
            return
        self._held = True
        if current > limit:
            self.release()
            raise rate_limited(
                _(
                    "This API key already has %(limit)d responses streaming; "
                    "wait for one to finish."
                )
                % {"limit": limit},
                5,
            )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(redis.RedisError):
            eventlog.client().decr(self._counter)
