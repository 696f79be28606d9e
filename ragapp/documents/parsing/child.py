"""Entry point of the isolated parse: `python -m ragapp.documents.parsing.child`.

Reads {"path", "content_type", "limits"} as JSON on stdin, limits itself, parses
and writes {"ok": true, "document": ...} or {"ok": false, "code", "message"}
as JSON on stdout. The limits are set before the file is read, so nothing
hostile runs without them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
from pathlib import Path
from typing import Any, TextIO

from ragapp.documents.parsing.base import ParseLimits
from ragapp.documents.parsing.errors import MESSAGES, ParseError

# OCR runs two inference threads; CPU time may run at twice wall-clock time.
_CPU_THREADS = 2


def apply_limits(limits: ParseLimits) -> None:
    """Limit address space, CPU time and core dumps of this process.

    The soft RLIMIT_AS is the parsing budget; the hard one leaves room for the
    OCR model, which `ocr.lift_memory_limit` claims only after every image has
    been decoded under the soft limit. An inherited hard limit is never raised.
    """
    soft = limits.memory_bytes
    hard = max(soft, limits.ocr_memory_bytes) if limits.ocr else soft
    _, current_hard = resource.getrlimit(resource.RLIMIT_AS)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    cpu = math.ceil(limits.timeout_seconds * _CPU_THREADS) + 5
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_hard == resource.RLIM_INFINITY or cpu + 5 <= cpu_hard:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(request: Any) -> dict[str, Any]:
    """Parse the requested file and return the JSON answer."""
    from ragapp.documents.parsing.core import parse_bytes

    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    limits = ParseLimits.from_json(request.get("limits"))
    path, content_type = request.get("path"), request.get("content_type")
    if not isinstance(path, str) or not isinstance(content_type, str):
        raise ValueError("path and content_type must be strings")
    apply_limits(limits)
    # pypdf logs a warning per oddity in a broken file; the parent keeps only
    # the tail of stderr, which should hold the child's own last words.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ParseError(
            "unreadable", "The uploaded file could not be opened."
        ) from exc
    document = parse_bytes(data, content_type=content_type, limits=limits)
    return {"ok": True, "document": document.to_json()}


def _failure(code: str, message: str | None = None) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message or MESSAGES[code]}


def main(stdin: TextIO, stdout: TextIO) -> int:
    """Answer one request; every outcome is a JSON answer and exit status 0."""
    try:
        answer = run(json.load(stdin))
    except ParseError as exc:
        answer = _failure(exc.code, exc.message)
    except MemoryError:
        answer = _failure("too_large")
    except BaseException as exc:  # reported as a reason, never as a traceback
        print(f"parse child: {type(exc).__name__}: {exc}", file=sys.stderr)
        answer = _failure(
            "unreadable", f"The file could not be read ({type(exc).__name__})."
        )
    try:
        json.dump(answer, stdout, ensure_ascii=False)
    except MemoryError:
        stdout.write(json.dumps(_failure("too_large")))
    stdout.flush()
    return 0


if __name__ == "__main__":
    # Libraries that print would corrupt the answer: send fd 1 to stderr and
    # keep a private copy of the real stdout for the JSON alone.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    with os.fdopen(answer_fd, "w", encoding="utf-8") as answer_stream:
        sys.exit(main(sys.stdin, answer_stream))
