"""Periodic upkeep of answers (run by the worker's scheduler)."""

from celery import shared_task

from ragapp.answers.runner import answers_sweep


@shared_task
def answers_sweep_task() -> int:
    """End answers whose writing process died, so none stays "answering"."""
    return answers_sweep()
