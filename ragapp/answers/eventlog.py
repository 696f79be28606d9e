"""Each answer's events, kept in a Redis stream so any reader can (re)attach.

Generation runs apart from the connection that asked (ragapp.answers.runner);
it appends every released event to the message's stream. A reader, in this
process or another web process, reads from the start or from the last id it
saw (the SSE `Last-Event-ID`), so a reload, a second tab or a dropped
connection sees the same answer finish. Redis is already part of every
deployment (the Celery broker; the bundled server under `make run`), and its
streams give ordered ids, blocking reads and a bound on length for free.

The stream is a cache of what the database will hold when the answer ends:
it expires (ANSWER_EVENTS_TTL_SECONDS) and a reader that finds none falls
back to the message row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from ragapp.answers.events import AnswerEvent, event_payload
from ragapp.answers.models import Message

# Far above any answer's event count (deltas are batched per moderation window).
MAX_EVENTS = 10_000


@dataclass(frozen=True)
class LoggedEvent:
    """An event as read back: its stream id and its payload (`type` + fields)."""

    id: str
    payload: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.payload.get("type", "")


def redis_url() -> str:
    """The redis-py URL of the events server (kombu's socket form translated)."""
    url = settings.ANSWER_EVENTS_REDIS_URL
    if url.startswith("redis+socket://"):
        return "unix://" + url.removeprefix("redis+socket://")
    return url


def _key(message: Message) -> str:
    """The message's stream: its id and creation time, so a stream left from a
    database that was reset (ids start again) is never taken for a new one."""
    created = int(message.created_at.timestamp() * 1_000_000)
    return f"{settings.ANSWER_EVENTS_PREFIX}:{message.pk}:{created}"


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)


def client() -> redis.Redis:
    return _client(redis_url())


def append(message: Message, event: AnswerEvent) -> str:
    """Append `event` to the message's stream and return its id."""
    key = _key(message)
    data = json.dumps(event_payload(event), ensure_ascii=True)
    pipe = client().pipeline(transaction=False)
    pipe.xadd(key, {"e": data}, maxlen=MAX_EVENTS, approximate=True)
    pipe.expire(key, settings.ANSWER_EVENTS_TTL_SECONDS)
    event_id, _ = pipe.execute()
    return event_id.decode() if isinstance(event_id, bytes) else event_id


def read(message: Message, *, after: str = "0") -> Iterator[LoggedEvent]:
    """Every event logged after `after` so far (no waiting)."""
    for event_id, fields in client().xrange(_key(message), min=f"({after}"):
        yield _logged(event_id, fields)


def exists(message: Message) -> bool:
    return bool(client().exists(_key(message)))


def _logged(event_id: bytes | str, fields: dict) -> LoggedEvent:
    raw = fields.get(b"e") or fields.get("e") or b"{}"
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    return LoggedEvent(id=event_id, payload=json.loads(raw))


def valid_id(value: str) -> bool:
    """Whether `value` looks like a stream id a client may resume after."""
    left, _, right = value.partition("-")
    return left.isdigit() and right.isdigit() and len(value) <= 40


class AsyncReader:
    """Blocking reads for an SSE response, on the event loop (no thread held)."""

    def __init__(self, message: Message) -> None:
        self.key = _key(message)
        self._redis = aioredis.Redis.from_url(redis_url(), socket_timeout=None)

    async def next_batch(self, after: str, *, block_ms: int) -> list[LoggedEvent]:
        """Events after `after`, waiting up to `block_ms` for the first."""
        answer = await self._redis.xread({self.key: after}, block=block_ms, count=100)
        if not answer:
            return []
        [(_, entries)] = answer
        return [_logged(event_id, fields) for event_id, fields in entries]

    async def exists(self) -> bool:
        return bool(await self._redis.exists(self.key))

    async def close(self) -> None:
        await self._redis.aclose()
