"""Serve an answer stream from ASGI without buffering it or blocking other requests.

Django's ASGI handler reads a synchronous streaming body with
`sync_to_async(list)`: the whole answer would be produced before its first
byte left (django/django#14526). And running each `next()` through
`sync_to_async` would either share Django's one thread-sensitive thread with
every other request (an answer waiting on the model would stall them all) or
hop between pool threads and database connections mid-transaction.

So each answer gets one thread of its own for its whole life: it runs the
loop (ORM, model, moderation, all synchronous), hands events to the event
loop through a queue, and closes its database connection at the end. When
the reader goes away, the thread stops at the next event and closes the
loop's generator, which records the answer as interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Generator

from django.db import connections

from ragapp.answers.events import AnswerEvent

logger = logging.getLogger(__name__)

_DONE = object()


async def in_own_thread(
    events: Generator[AnswerEvent, None, None],
) -> AsyncIterator[AnswerEvent]:
    """Yield `events`, produced by a dedicated thread, as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:
        try:
            # Checked before each step, so a reader who left is noticed
            # before more work is done for nobody.
            while not stop.is_set():
                try:
                    event = next(events)
                except StopIteration:
                    break
                put(event)
        except Exception:
            logger.exception("Answer stream failed")
        finally:
            try:
                events.close()  # a stopped stream records its interruption
            finally:
                connections.close_all()
                put(_DONE)

    threading.Thread(target=produce, name="answer-stream", daemon=True).start()
    try:
        while (item := await queue.get()) is not _DONE:
            yield item  # type: ignore[misc]
    finally:
        stop.set()
