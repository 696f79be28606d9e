"""Following an answer the background runner writes, for API responses.

The same event log the web page reads (ragapp.answers.eventlog): the API
starts an answer with `runner.answer_start` and follows its events from the
event loop, holding no thread while it waits. Every few seconds it checks
that the key still works (revoked, expired or its user disabled: the stream
ends, T04) and that the writer is alive (one whose process died is ended
here, as the web page does).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone
from django.utils.translation import gettext as _

from ragapp.answers import eventlog, runner
from ragapp.answers.events import Finished, event_payload
from ragapp.answers.models import Message
from ragapp.api.models import ApiKey

CHECK_SECONDS = 2.5


class KeyGoneError(Exception):
    """The key was revoked or its user disabled while the answer streamed."""


def _key_usable(key_id: int) -> bool:
    key = ApiKey.objects.select_related("user").filter(pk=key_id).first()
    return bool(key and key.is_usable and key.user.is_active)


def _state(message_id: int) -> tuple[str, Message]:
    message = Message.objects.select_related("thread").get(pk=message_id)
    if message.status != Message.Status.ANSWERING:
        return "ended", message
    if runner.is_stale(message):
        runner.message_interrupt(
            message,
            _("The answer was cut off: the server writing it stopped. Ask again."),
        )
    return "live", message


def _logged_after(message: Message, after: str) -> list[eventlog.LoggedEvent]:
    return list(eventlog.read(message, after=after))


def _final(message_id: int) -> dict[str, Any]:
    message = Message.objects.get(pk=message_id)
    return event_payload(runner.finished_event(message))


async def follow(message: Message, *, key_id: int) -> AsyncIterator[dict[str, Any]]:
    """Yield the answer's event payloads, ending with its `finished` one.

    Raises KeyGoneError when the key stops working part-way.
    """
    reader = eventlog.AsyncReader(message)
    after = "0"
    last_check = time.monotonic()
    try:
        while True:
            batch = await reader.next_batch(after, block_ms=int(CHECK_SECONDS * 1000))
            for event in batch:
                after = event.id
                yield event.payload
                if event.kind == Finished.kind:
                    return
            if batch and time.monotonic() - last_check < CHECK_SECONDS:
                continue
            last_check = time.monotonic()
            if not await sync_to_async(_key_usable)(key_id):
                await sync_to_async(runner.answer_stop)(
                    message=message, reason=_("The API key stopped working.")
                )
                raise KeyGoneError
            state, _fresh = await sync_to_async(_state)(message.pk)
            if state == "ended" and not batch:
                # Ended without a `finished` in the log (a sweep, an expired log).
                remaining = await sync_to_async(_logged_after)(message, after)
                for event in remaining:
                    yield event.payload
                    if event.kind == Finished.kind:
                        return
                yield await sync_to_async(_final)(message.pk)
                return
    finally:
        await reader.close()


_DONE = object()


async def in_thread(
    make: Callable[[], Iterator[Any]], *, name: str
) -> AsyncIterator[Any]:
    """Iterate a blocking generator on a thread of its own, from the event loop.

    For model calls made in the request (chat passthrough): the generator
    blocks on the model server for seconds at a time, which must hold neither
    the event loop nor the one thread Django runs thread-sensitive code on.
    The thread closes its database connection when done. If the reader goes
    away, the generator is closed after its next item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        generator = None
        try:
            generator = make()
            for item in generator:
                put(item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)
        finally:
            if generator is not None:
                generator.close()
            connections.close_all()
            put(_DONE)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def now_unix() -> int:
    return int(timezone.now().timestamp())
