"""Write answers in the background, bounded, so they outlive their connections.

The page that asks gets the new message at once and reads its events from
the event log (ragapp.answers.eventlog); the answer itself is written by a
thread of this process that no connection owns. Closing the tab, reloading
or opening a second one changes nothing for the writer.

Bounds, instead of one unbounded thread per stream: at most
ANSWER_MAX_CONCURRENT_PER_PROCESS writers here and
ANSWER_MAX_CONCURRENT_PER_USER answers per user across every process
(counted in the database under an advisory lock); past either the asker is
told plainly to try again. One heartbeat thread renews the `heartbeat_at` of
every answer this process writes and tells writers to stop when the asker
pressed Stop, was disabled, or the answer ran past ANSWER_MAX_SECONDS. An
answer whose process died stops being renewed, and the sweep
(`answers_sweep`) ends it with what had been released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ragapp.answers import eventlog
from ragapp.answers.events import Delta, Finished
from ragapp.answers.models import Message, Thread
from ragapp.answers.prompts import Turn
from ragapp.answers.services import AnswerStream, ask

logger = logging.getLogger(__name__)

# Namespace of the per-user advisory locks (pg_advisory_xact_lock(int, int)).
_USER_LOCK_SPACE = 0x5241


class AnswerBusyError(Exception):
    """Too many answers are being written; `message` says so in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Writer:
    stream: AnswerStream
    user_id: int
    deadline: float
    stop_reason: str = ""
    thread: threading.Thread | None = None
    on_end: Callable[[int], None] | None = None


@dataclass
class _Registry:
    """The writers of this process, guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writers: dict[int, _Writer] = field(default_factory=dict)
    reserved: int = 0
    heartbeat: threading.Thread | None = None


_registry = _Registry()


def answer_start(
    *,
    user: AbstractBaseUser,
    question: str,
    thread: Thread | None = None,
    collection_ids: Iterable[int] | None = None,
    filters: dict | None = None,
    turns: list[Turn] | None = None,
    use_model: bool = True,
    on_end: Callable[[int], None] | None = None,
) -> Message:
    """Record the question and start writing its answer in the background.

    `on_end(message_id)` runs in the writer once the answer has ended, however
    it ended: for callers that will not be there to see it (an API response
    made in the background still has its tokens to count).

    Raises AnswerBusyError past a concurrency cap and QuestionError for an
    unusable question, both before anything is recorded.
    """
    _reserve_slot()
    try:
        with transaction.atomic():
            _check_user_cap(user)
            stream = ask(
                user=user,
                question=question,
                thread=thread,
                collection_ids=collection_ids,
                filters=filters,
                turns=turns,
                use_model=use_model,
            )
            message = stream.message
            message.heartbeat_at = timezone.now()
            Message.objects.filter(pk=message.pk).update(
                heartbeat_at=message.heartbeat_at
            )
    except BaseException:
        _release_slot(None)
        raise
    writer = _Writer(
        stream=stream,
        user_id=user.pk,
        deadline=time.monotonic() + settings.ANSWER_MAX_SECONDS,
        on_end=on_end,
    )
    writer.thread = threading.Thread(
        target=_write, args=(writer,), name=f"answer-{message.pk}", daemon=True
    )
    with _registry.lock:
        _registry.writers[message.pk] = writer
        _registry.reserved -= 1
        _ensure_heartbeat()
    writer.thread.start()
    return message


def answer_stop(*, message: Message, reason: str) -> bool:
    """Ask the writer of `message` to stop; False if this process is not writing it.

    Writers in other processes hear of it through the event log's stop key.
    """
    eventlog.client().set(_stop_key(message.pk), reason, ex=600)
    with _registry.lock:
        writer = _registry.writers.get(message.pk)
        if writer is not None and not writer.stop_reason:
            writer.stop_reason = reason
    return writer is not None


def writers_active() -> int:
    """How many answers this process is writing now."""
    with _registry.lock:
        return len(_registry.writers)


def wait_idle(timeout: float = 30.0) -> bool:
    """Wait until this process writes no answer (for shutdown and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _registry.lock:
            threads = [w.thread for w in _registry.writers.values() if w.thread]
        if not threads:
            return True
        threads[0].join(timeout=max(0.0, deadline - time.monotonic()))
    return writers_active() == 0


# --- caps ---------------------------------------------------------------------


def _reserve_slot() -> None:
    with _registry.lock:
        busy = len(_registry.writers) + _registry.reserved
        if busy >= settings.ANSWER_MAX_CONCURRENT_PER_PROCESS:
            raise AnswerBusyError(
                _(
                    "ragapp is busy writing other answers right now. Try again "
                    "in a minute."
                )
            )
        _registry.reserved += 1


def _release_slot(message_id: int | None) -> None:
    with _registry.lock:
        if message_id is None:
            _registry.reserved -= 1
        else:
            _registry.writers.pop(message_id, None)


def _check_user_cap(user: AbstractBaseUser) -> None:
    """Count the user's live answers under a lock only this user's asks take."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [_USER_LOCK_SPACE, user.pk]
        )
    live = Message.objects.filter(
        thread__user=user,
        status=Message.Status.ANSWERING,
        heartbeat_at__gte=timezone.now()
        - timedelta(seconds=settings.ANSWER_STALE_SECONDS),
    ).count()
    if live >= settings.ANSWER_MAX_CONCURRENT_PER_USER:
        raise AnswerBusyError(
            ngettext(
                "You already have %(count)d answer being written. Wait for it "
                "to finish, then ask again.",
                "You already have %(count)d answers being written. Wait for one "
                "to finish, then ask again.",
                live,
            )
            % {"count": live}
        )


# --- writing --------------------------------------------------------------------


def _write(writer: _Writer) -> None:
    stream = writer.stream
    message_id = stream.message.pk
    finished = False
    try:
        for event in stream:
            eventlog.append(stream.message, event)
            finished = isinstance(event, Finished)
            if writer.stop_reason and not finished:
                stream.stop(writer.stop_reason)
                break
    except Exception:
        # Most likely the event log is unreachable: end the answer, recorded.
        logger.exception("Writing answer %s failed", message_id)
        stream.stop(_("The answer could not be delivered; ask again."))
    finally:
        try:
            if not finished:
                _log_end(message_id)
        except Exception:
            logger.exception("Could not record the end of answer %s", message_id)
        try:
            if writer.on_end is not None:
                writer.on_end(message_id)
        except Exception:
            logger.exception("The end hook of answer %s failed", message_id)
        finally:
            _release_slot(message_id)
            connections.close_all()


def _log_end(message_id: int) -> None:
    """Append the Finished event of an answer that ended without one."""
    message = Message.objects.get(pk=message_id)
    if message.finished_at is None:
        message_interrupt(message, _("The answer stopped unexpectedly; ask again."))
        return
    eventlog.append(message, finished_event(message))


def finished_event(message: Message) -> Finished:
    return Finished(
        message_id=message.pk,
        status=message.status,
        reason=message.status_reason,
        retract=message.withheld,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
    )


# --- heartbeat --------------------------------------------------------------------


def _ensure_heartbeat() -> None:
    """Start the heartbeat thread if it is not running (the lock is held)."""
    if _registry.heartbeat is None or not _registry.heartbeat.is_alive():
        _registry.heartbeat = threading.Thread(
            target=_beat, name="answer-heartbeat", daemon=True
        )
        _registry.heartbeat.start()


def _beat() -> None:
    try:
        while True:
            with _registry.lock:
                writers = dict(_registry.writers)
                if not writers:
                    _registry.heartbeat = None
                    return
            try:
                _renew(writers)
            except Exception:
                logger.exception("Answer heartbeat failed")
            time.sleep(settings.ANSWER_HEARTBEAT_SECONDS)
    finally:
        connections.close_all()


def _renew(writers: dict[int, _Writer]) -> None:
    Message.objects.filter(
        pk__in=list(writers), status=Message.Status.ANSWERING
    ).update(heartbeat_at=timezone.now())
    active = set(
        get_user_model()
        .objects.filter(pk__in={w.user_id for w in writers.values()}, is_active=True)
        .values_list("pk", flat=True)
    )
    now = time.monotonic()
    for message_id, writer in writers.items():
        if writer.stop_reason:
            continue
        reason = ""
        if writer.user_id not in active:
            reason = _("The answer was stopped: the account was disabled.")
        elif now > writer.deadline:
            reason = _("The answer took too long and was stopped.")
        else:
            requested = eventlog.client().get(_stop_key(message_id))
            if requested:
                reason = requested.decode(errors="replace")
        if reason:
            writer.stop_reason = reason


def _stop_key(message_id: int) -> str:
    return f"{settings.ANSWER_EVENTS_PREFIX}:stop:{message_id}"


# --- ending answers whose writer is gone ------------------------------------------


def message_interrupt(message: Message, reason: str) -> bool:
    """End an answering message with what had been released; False if it had ended.

    The released text is rebuilt from the event log, so a reader who saw
    part of an answer finds that same part recorded.
    """
    released = "".join(
        event.payload.get("text", "")
        for event in eventlog.read(message)
        if event.kind == Delta.kind
    )
    now = timezone.now()
    updated = Message.objects.filter(
        pk=message.pk, status=Message.Status.ANSWERING
    ).update(
        status=Message.Status.INTERRUPTED,
        status_reason=reason,
        answer=released,
        finished_at=now,
        latency_ms=int((now - message.created_at).total_seconds() * 1000),
    )
    if updated:
        message.refresh_from_db()
        eventlog.append(message, finished_event(message))
    return bool(updated)


def answers_sweep() -> int:
    """End every answer whose writer stopped renewing it; return how many."""
    stale = timezone.now() - timedelta(seconds=settings.ANSWER_STALE_SECONDS)
    messages = Message.objects.filter(status=Message.Status.ANSWERING).filter(
        heartbeat_at__lt=stale
    ) | Message.objects.filter(
        status=Message.Status.ANSWERING, heartbeat_at__isnull=True, created_at__lt=stale
    )
    ended = 0
    for message in messages:
        ended += message_interrupt(
            message,
            _("The answer was cut off: the server writing it stopped. Ask again."),
        )
    if ended:
        logger.warning("Ended %d answers whose writer had stopped", ended)
    return ended


def is_stale(message: Message) -> bool:
    """Whether an answering message's writer stopped renewing it."""
    beat = message.heartbeat_at or message.created_at
    return beat < timezone.now() - timedelta(seconds=settings.ANSWER_STALE_SECONDS)
