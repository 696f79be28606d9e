"""Run the parser in a child process with memory, CPU and wall-clock limits.

The caller is a Celery prefork worker, a daemonic process that multiprocessing
refuses to fork children from, so the child is a plain `subprocess` running
`python -m ragapp.documents.parsing.child`. Request and result travel as JSON
on stdin/stdout (never pickle: the result comes from a process that just read
hostile input). Whatever happens in the child, the worker sees a
ParsedDocument or a ParseError, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from ragapp.documents.parsing.base import ParsedDocument, ParseLimits
from ragapp.documents.parsing.errors import ParseError

logger = logging.getLogger(__name__)

CHILD_MODULE = "ragapp.documents.parsing.child"
_PROJECT_ROOT = Path(__file__).resolve().parents[3]
_MEMORY_SIGNS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")


def parse_file_isolated(
    path: Path, *, content_type: str, limits: ParseLimits
) -> ParsedDocument:
    """Parse the file at `path` in a limited child; raise ParseError on any failure.

    Codes beyond those of `parse_bytes`: "timeout" (wall clock or CPU limit),
    "too_large" (memory limit), "crashed" (killed by a signal or exited without
    an answer).
    """
    request = json.dumps(
        {
            "path": str(Path(path).resolve()),
            "content_type": content_type,
            "limits": limits.to_json(),
        }
    ).encode()
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", CHILD_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=_PROJECT_ROOT,
            env=child_environment(),
            start_new_session=True,  # its own group, so a kill reaches all of it
        )
    except OSError as exc:
        logger.error("could not start the parse child: %s", exc)
        raise ParseError("crashed") from exc
    try:
        stdout, stderr = process.communicate(request, timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired as exc:
        kill_group(process)
        raise ParseError("timeout") from exc
    except BaseException:
        kill_group(process)
        raise
    return _result(process.returncode, stdout, stderr)


# What the child may see of the worker's environment: no SECRET_KEY, no API
# keys, no DATABASE_URL with its password; it reads one file and answers.
CHILD_ENV_ALLOWED = frozenset(
    {
        "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME",
        "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONHASHSEED", "VIRTUAL_ENV",
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
    }
)  # fmt: skip


def child_environment() -> dict[str, str]:
    """Return the child's environment: an allow-list, threads and path pinned.

    Numerical libraries would otherwise start a thread pool per core, each
    reserving address space that counts against RLIMIT_AS. Django settings
    are not passed: the child configures the little it needs itself.
    """
    env = {
        name: value for name, value in os.environ.items() if name in CHILD_ENV_ALLOWED
    }
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH", "")])
    )
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started in its own session, and everything it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.communicate()


def failure_for_returncode(returncode: int, stderr: bytes) -> ParseError:
    """Turn a child that gave no answer into a ParseError with a plain reason."""
    text = stderr[-4000:].decode("utf-8", errors="replace")
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return ParseError("timeout")
    if returncode == -signal.SIGKILL or any(sign in text for sign in _MEMORY_SIGNS):
        return ParseError("too_large")
    return ParseError("crashed")


def _result(returncode: int, stdout: bytes, stderr: bytes) -> ParsedDocument:
    if returncode != 0 or not stdout:
        logger.warning(
            "parse child failed with exit status %s: %s",
            returncode,
            stderr[-2000:].decode("utf-8", errors="replace"),
        )
        raise failure_for_returncode(returncode, stderr)
    try:
        answer = json.loads(stdout)
        if answer.get("ok") is True:
            return ParsedDocument.from_json(answer.get("document"))
        code, message = answer.get("code"), answer.get("message")
    except (ValueError, AttributeError, TypeError) as exc:
        logger.warning("parse child answered with malformed JSON: %s", exc)
        raise ParseError("crashed") from exc
    if not isinstance(code, str) or not isinstance(message, str):
        raise ParseError("crashed")
    try:
        error = ParseError(code, message)
    except ValueError as exc:  # a code this version does not know
        raise ParseError("unreadable") from exc
    if code.startswith("unsupported") or code in _TYPE_CODES:
        from ragapp.documents.parsing.errors import UnsupportedTypeError

        raise UnsupportedTypeError(code, message)
    raise error


_TYPE_CODES = frozenset(
    {"unsupported_type", "executable", "image", "media", "archive", "not_docx",
     "binary", "type_mismatch"}
)  # fmt: skip
