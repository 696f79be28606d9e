"""Tasks that let operators and tests see the worker do real work."""

import os
import socket

from celery import shared_task


@shared_task(ignore_result=False)
def worker_ping_task(token: str) -> dict[str, object]:
    """Echo `token` with the identity of the process that ran it."""
    return {"token": token, "pid": os.getpid(), "hostname": socket.gethostname()}
