"""Show a cited PDF page as a PNG, with the quoted passage highlighted.

pdfium (through pypdfium2) draws the page and knows where each character of
its text layer is; both are C code reading an untrusted upload, so the work
runs in a child process under the parse sandbox's limits
(`page_render_child`), never in the web process. Renders are cached on disk,
so a page seen twice costs a file read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from ragapp.documents.exceptions import PageImageError
from ragapp.documents.models import Document
from ragapp.documents.parsing.base import PDF
from ragapp.documents.parsing.isolated import (
    child_environment,
    failure_for_returncode,
    kill_group,
)

logger = logging.getLogger(__name__)

CHILD_MODULE = "ragapp.documents.page_render_child"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIN_WIDTH, MAX_WIDTH = 200, 2000
# A page view waits for the render, so the budget is far below the parse's;
# the eval PDFs' pages take 0.2-0.3 s each, child start included.
RENDER_TIMEOUT_SECONDS = 15.0
# A chunk is about 1,000 characters; more than this is not a quotation.
MAX_HIGHLIGHT_CHARS = 20_000
CACHE_DIR_NAME = "page-images"
CACHE_MAX_BYTES = 256 * 1024 * 1024  # about 2,000 pages at width 1000
_CACHE_KEEP_FRACTION = 0.8  # pruning goes below the bound, not to it each time
_STALE_TEMP_SECONDS = 3600
# Part of every cache name: a change to drawing or matching bumps it, and
# renders made by older code are simply never read again.
RENDER_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
# The child's environment: what Python and the C libraries need, no secrets
# (the web process holds the database URL and API keys).

# Child processes started by this process, counted so tests can tell a cache
# hit from a render without patching anything.
child_runs = 0


@dataclass(frozen=True)
class RenderedPage:
    """One rendered page: PNG bytes and the pixel boxes drawn over the passage."""

    png: bytes
    page_count: int
    boxes: list[tuple[int, int, int, int]]


def page_image(
    *, document: Document, page_number: int, highlight: str = "", width: int = 1000
) -> bytes:
    """Return physical page `page_number` (1-based) of a PDF as PNG bytes.

    The text `highlight` (a chunk's text or a sentence of it) is marked in
    yellow where the page shows it; text not on the page leaves the page
    unmarked rather than failing, since a passage may start on the page
    before. `width` is clamped to MIN_WIDTH..MAX_WIDTH pixels. Raises
    PageImageError with a message fit for the reader.
    """
    if document.content_type != PDF:
        raise PageImageError(
            _("Only PDF documents can be shown as page images."), code="not_pdf"
        )
    width = max(MIN_WIDTH, min(MAX_WIDTH, int(width)))
    highlight = highlight[:MAX_HIGHLIGHT_CHARS]
    known = document.page_count
    if page_number < 1 or (known is not None and page_number > known):
        raise _out_of_range(page_number, known)
    cached = _cache_path(document, page_number, width, highlight)
    try:
        data = cached.read_bytes()
    except OSError:
        pass
    else:
        _touch(cached)
        return data
    rendered = render_page_isolated(
        _stored_path(document),
        page_number=page_number,
        width=width,
        highlight=highlight,
        timeout_seconds=RENDER_TIMEOUT_SECONDS,
        memory_bytes=settings.PARSE_MEMORY_MB * 1024 * 1024,
    )
    cache_store(cached, rendered.png, max_bytes=CACHE_MAX_BYTES)
    return rendered.png


def page_count(*, document: Document) -> int | None:
    """Return how many pages can be shown, or None when none can (or not known yet).

    Parsing stores the count; opening the file again here would run pdfium
    on it outside the sandbox.
    """
    return document.page_count if document.content_type == PDF else None


def cache_directory() -> Path:
    """Return where rendered pages are kept (read at call time: tests move it)."""
    return Path(settings.DATA_DIR) / CACHE_DIR_NAME


def render_page_isolated(
    path: Path,
    *,
    page_number: int,
    width: int,
    highlight: str,
    timeout_seconds: float,
    memory_bytes: int,
) -> RenderedPage:
    """Render in a limited child; raise PageImageError on any failure.

    The child is a plain subprocess, as for parsing (parsing/isolated.py):
    Celery workers and ASGI servers may run daemonic processes, which
    multiprocessing refuses to fork from, and JSON, unlike pickle, cannot
    run code when the parent reads the answer of a process that just read
    hostile input.
    """
    global child_runs
    request = json.dumps(
        {
            "path": str(Path(path).resolve()),
            "page": page_number,
            "width": width,
            "highlight": highlight,
            "memory_bytes": memory_bytes,
            "timeout_seconds": timeout_seconds,
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
        logger.error("could not start the page render child: %s", exc)
        raise _failure("crashed") from exc
    child_runs += 1
    try:
        stdout, stderr = process.communicate(request, timeout=timeout_seconds)
    except subprocess.TimeoutExpired as exc:
        kill_group(process)
        raise _failure("timeout") from exc
    except BaseException:
        kill_group(process)
        raise
    return _answer(process.returncode, stdout, stderr, page_number)


def cache_store(path: Path, data: bytes, *, max_bytes: int) -> None:
    """Write `data` to `path` atomically, then keep the directory under max_bytes.

    Two renders of one page may race; both write whole files and the last
    rename wins, so a reader never sees half a PNG. A cache that cannot be
    written costs speed, not the page.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=".tmp-", suffix=".png", delete=False
        ) as temporary:
            temporary.write(data)
        os.replace(temporary.name, path)
    except OSError as exc:
        logger.warning("could not cache a page image in %s: %s", path.parent, exc)
        return
    cache_prune(path.parent, max_bytes=max_bytes)


def cache_prune(directory: Path, *, max_bytes: int) -> None:
    """Delete the least recently used images once the directory outgrows max_bytes.

    A hit refreshes its file's mtime, so the oldest mtime is the page least
    recently shown. Temporary files of killed writers go after an hour.
    """
    entries: list[tuple[float, int, str]] = []
    now = time.time()
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - stat.st_mtime > _STALE_TEMP_SECONDS:
                        _remove(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    entries.append((stat.st_mtime, stat.st_size, entry.path))
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return
    for _mtime, size, name in sorted(entries):
        if total <= max_bytes * _CACHE_KEEP_FRACTION:
            break
        if _remove(name):
            total -= size


def _cache_path(document: Document, page: int, width: int, highlight: str) -> Path:
    """Name a render by what it shows: the file's content, page, width, passage.

    A re-uploaded or changed file has another SHA-256, so an old render can
    never be shown for it.
    """
    source = document.sha256
    if not _HEX64.fullmatch(source):  # never part of a path unchecked
        source = hashlib.sha256(f"{document.pk}:{document.file.name}".encode())
        source = source.hexdigest()
    passage = hashlib.sha256(highlight.encode("utf-8", "surrogatepass")).hexdigest()
    name = f"{source}-p{page}-w{width}-h{passage[:32]}-v{RENDER_VERSION}.png"
    return cache_directory() / name


def _stored_path(document: Document) -> Path:
    missing = PageImageError(
        _("The document's file is no longer stored, so its pages cannot be shown."),
        code="missing_file",
    )
    if not document.file:
        raise missing
    try:
        path = Path(document.file.path)
    except NotImplementedError:  # a storage without local files
        raise missing from None
    if not path.is_file():
        raise missing
    return path


def _answer(
    returncode: int, stdout: bytes, stderr: bytes, page_number: int
) -> RenderedPage:
    if returncode != 0 or not stdout:
        logger.warning(
            "page render child failed with exit status %s: %s",
            returncode,
            stderr[-2000:].decode("utf-8", errors="replace"),
        )
        if returncode == -signal.SIGABRT:
            # pdfium's allocator aborts when an allocation fails; under the
            # child's RLIMIT_AS that is what an abort means.
            raise _failure("too_large")
        raise _failure(failure_for_returncode(returncode, stderr).code)
    try:
        answer = json.loads(stdout)
        if answer.get("ok") is True:
            png = base64.b64decode(answer["png"], validate=True)
            count = answer["page_count"]
            boxes = [tuple(int(v) for v in box) for box in answer["boxes"]]
            if (
                png.startswith(b"\x89PNG\r\n\x1a\n")
                and type(count) is int
                and all(len(box) == 4 for box in boxes)
            ):
                return RenderedPage(png=png, page_count=count, boxes=boxes)
            raise ValueError("unexpected answer shape")
        code, count = answer.get("code"), answer.get("page_count")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        logger.warning("page render child answered with malformed JSON: %s", exc)
        raise _failure("crashed") from exc
    if code == "page_out_of_range":
        raise _out_of_range(page_number, count if type(count) is int else None)
    stderr_tail = stderr[-2000:].decode("utf-8", errors="replace")
    if stderr_tail:
        logger.info("page render child: %s", stderr_tail)
    raise _failure(code if isinstance(code, str) else "crashed")


def _out_of_range(page_number: int, page_count: int | None) -> PageImageError:
    if page_count is None:
        message = _("Page %(page)s does not exist in this document.") % {
            "page": page_number
        }
    else:
        message = _("Page %(page)s does not exist; the document has %(count)s.") % {
            "page": page_number,
            "count": page_count,
        }
    return PageImageError(message, code="page_out_of_range")


def _failure(code: str) -> PageImageError:
    messages = {
        "timeout": _(
            "Drawing this page took too long and was stopped; the file may be "
            "damaged or unusually complex."
        ),
        "too_large": _("This page needs more memory to draw than ragapp allows."),
        "encrypted": _(
            "The PDF is protected by a password, so its pages cannot be shown."
        ),
        "corrupt": _("The PDF is damaged, so this page cannot be shown."),
    }
    message = messages.get(code) or _(
        "This page could not be drawn; open the document itself to read it."
    )
    return PageImageError(message, code=code if code in messages else "render_failed")


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: str) -> bool:
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        logger.warning("could not prune a cached page image: %s", exc)
        return False
    return True
