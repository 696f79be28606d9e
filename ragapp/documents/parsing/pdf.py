"""Read PDFs page by page with pypdf, under limits set lower than pypdf's own.

pypdf's security page says catching exceptions is the caller's job and leaves
its filter output caps at 75 MB per stream; the values below are chosen for
documents (a page's content stream is rarely over 1 MB, a 300 dpi colour page
scan about 26 MB), and jbig2dec, an external program, is never run.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections import Counter
from typing import Any

from ragapp.documents.parsing import ocr, pdftables
from ragapp.documents.parsing.base import (
    HEADING_SEPARATOR,
    PDF,
    Block,
    ParsedDocument,
    ParseLimits,
)
from ragapp.documents.parsing.errors import ParseError
from ragapp.documents.parsing.hidden import hidden_text_warning, sample

logger = logging.getLogger(__name__)

# Decompressed bytes allowed from one stream (pypdf's default is 75 MB).
PDF_STREAM_CAP = 32 * 1024 * 1024
MAX_OCR_PAGES = 100
MAX_IMAGES_PER_PAGE = 4
# Declared image size refused before decoding (a 600 dpi Letter page is 34 Mpx).
MAX_IMAGE_PIXELS = 40_000_000
MIN_IMAGE_SIDE = 32
MAX_XOBJECTS_PER_PAGE = 64
MAX_FORM_DEPTH = 2
MAX_NAMED_PAGES = 20  # per-page warnings listed before they are summed up
_EDGE_LINES = 3
_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
        "\x00": "",
    }
)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_FILENAME_TITLE = re.compile(
    r"(?:^Microsoft \w+ - |\.(?:pdf|docx?|rtf|odt|indd|tex)$)", re.I
)


def pypdf_configuration(limits: ParseLimits) -> dict[str, Any]:
    """Return pypdf Configuration overwrites for these limits."""
    stream = min(limits.max_decompressed_bytes, PDF_STREAM_CAP)
    return {
        "maximum_declared_stream_length": stream,
        "array_based_stream_maximum_output_length": stream,
        "jbig2_maximum_output_length": stream,
        "lzw_maximum_output_length": stream,
        "run_length_maximum_output_length": stream,
        "zlib_maximum_output_length": stream,
        "brotli_maximum_output_length": stream,
        "zlib_maximum_recovery_input_length": min(stream, 2_000_000),
        "image_maximum_buffer_size": stream,
        "stream_filters_maximum_length": 4,
        "stream_decoding_work_maximum_length": 2 * stream,
        "xmp_maximum_input_length": 1_000_000,
        "outline_maximum_entries": 10_000,
        "outline_maximum_depth": 32,
        "page_tree_maximum_entries": max(2 * limits.max_pages, 1_000),
        "page_tree_maximum_depth": 32,
        "page_tree_maximum_page_entries": max(10 * limits.max_pages, 10_000),
        "form_fields_maximum_entries": 10_000,
        "named_destinations_maximum_entries": 10_000,
        "xform_maximum_invocations_per_extraction": 1_000,
        "xfa_decoding_work_maximum_length": stream,
        "jbig2dec_binary": None,
        "disable_legacy_handling": True,
    }


def parse_pdf(data: bytes, limits: ParseLimits, *, deadline: float) -> ParsedDocument:
    """Return one or more blocks per page; OCR pages without text until `deadline`."""
    import pypdf
    from pypdf.errors import EmptyFileError, FileNotDecryptedError, LimitReachedError

    with pypdf.apply_configuration(**pypdf_configuration(limits)):
        try:
            return _read(data, limits, deadline)
        except ParseError:
            raise
        except LimitReachedError as exc:
            raise ParseError(
                "too_large",
                "The PDF holds, or expands to, more data than ragapp is set to read.",
            ) from exc
        except FileNotDecryptedError as exc:
            raise ParseError("encrypted") from exc
        except EmptyFileError as exc:
            raise ParseError("empty") from exc
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # pypdf raises many types on broken files
            raise ParseError("corrupt") from exc


def _read(data: bytes, limits: ParseLimits, deadline: float) -> ParsedDocument:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, LimitReachedError

    reader = PdfReader(
        io.BytesIO(data),
        strict=False,
        root_object_recovery_limit=2_000,
        xref_stream_maximum_entries=500_000,
    )
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise ParseError(
                "encrypted",
                "The PDF uses an encryption method ragapp cannot open; "
                "save an unprotected copy and upload that.",
            ) from exc
        if opened == PasswordType.NOT_DECRYPTED:
            raise ParseError("encrypted")
    page_count = len(reader.pages)
    if page_count == 0:
        raise ParseError("empty")
    if page_count > limits.max_pages:
        raise ParseError(
            "too_large",
            f"The PDF has {page_count:,} pages; ragapp reads at most "
            f"{limits.max_pages:,}.",
        )
    warnings: list[str] = []
    outline = _outline(reader, warnings)
    texts: list[str] = []
    unread: list[int] = []
    no_text: list[int] = []
    pending: dict[int, list[bytes]] = {}
    ocr_blocked = None if limits.ocr else "OCR is turned off"
    chars = 0
    hidden = HiddenTextScan()
    layout_budget = [LAYOUT_BUDGET_SECONDS]
    for number, page in enumerate(reader.pages, start=1):
        try:
            hidden.start_page(number)
            placed = pdftables.PlacedText()
            text = _clean(
                page.extract_text(
                    visitor_operand_before=hidden.visit, visitor_text=placed.visit
                )
                or ""
            )
            text = _with_tables(page, placed, text, layout_budget)
        except (LimitReachedError, MemoryError, RecursionError):
            raise
        except Exception:  # one broken page should not cost the others
            unread.append(number)
            texts.append("")
            continue
        chars += len(text)
        if chars > limits.max_chars:
            raise ParseError(
                "too_large",
                f"The PDF holds more than {limits.max_chars:,} characters of text; "
                "split it into smaller files.",
            )
        texts.append(text)
        if text:
            continue
        no_text.append(number)
        if ocr_blocked is None:
            ocr_blocked = ocr.ocr_unavailable_reason()
        if ocr_blocked is None and len(pending) < MAX_OCR_PAGES:
            images = _page_images(page)
            if images:
                pending[number] = images
    if len(unread) == page_count:
        raise ParseError("corrupt")
    texts = strip_repeated_edges(texts)
    warnings.extend(hidden.warnings())
    read_by_ocr, blank_after_ocr = _run_ocr(pending, texts, deadline, warnings)
    title = (
        _metadata_title(reader)
        or next(
            (
                line.strip()
                for text in texts
                for line in text.split("\n")
                if line.strip()
            ),
            "",
        )[:200]
    )
    without_text = [n for n in no_text if not texts[n - 1]]
    _explain(warnings, unread, without_text, read_by_ocr, ocr_blocked, pending)
    if blank_after_ocr:
        warnings.append(f"OCR found no text on {_page_list(blank_after_ocr).lower()}.")
    if len(pending) == MAX_OCR_PAGES and len(no_text) > MAX_OCR_PAGES:
        warnings.append(
            f"Only the first {MAX_OCR_PAGES} pages without a text layer were "
            "offered to OCR."
        )
    return ParsedDocument(
        content_type=PDF,
        title=title,
        page_count=page_count,
        blocks=_blocks(texts, outline),
        pages_without_text=without_text,
        warnings=warnings,
    )


# Fill (or stroke) colours this close to white count as white.
_WHITE = 0.95
# Text this many points high (or wide) or smaller cannot be read.
_TINY_POINTS = 1.0
# Hidden characters (not spaces) of one kind needed before it is reported.
_MIN_HIDDEN_CHARS = 3
_DEVICE_SPACES = frozenset(
    {"/DeviceGray", "/DeviceRGB", "/DeviceCMYK", "/CalGray", "/CalRGB", "/G", "/RGB"}
)
_FILLS = frozenset({b"f", b"F", b"f*", b"b", b"B", b"b*", b"B*"})
_INVISIBLE_MODES = frozenset({3, 7})  # neither filled nor stroked
_FILL_MODES = frozenset({0, 2, 4, 6})
_STROKE_MODES = frozenset({1, 2, 5, 6})
_HIDDEN_KINDS = {
    "white": "text drawn in white, which readers do not see unless it sits on "
    "a dark background",
    "tiny": "text 1 point high or smaller, too small to read",
    "invisible": "invisible text (render mode 3), as OCR software lays over a "
    "scanned page, or as text hidden on purpose",
}


class HiddenTextScan:
    """Watch a page's content stream for text drawn so that no reader sees it.

    Fed every operator by pypdf's `visitor_operand_before` during text
    extraction, so the stream is read once. Tracks the parts of the graphics
    state that decide visibility (fill and stroke colour, text render mode,
    font size, horizontal scaling, through q/Q) and counts the characters each
    text-showing operator draws while hidden. Not covered: text under an
    opaque shape or image, transparency set through ExtGState, text placed off
    the page or clipped away.
    """

    def __init__(self) -> None:
        self.page = 0
        self.state: dict[str, Any] = {}
        self.stack: list[dict[str, Any]] = []
        # kind -> page -> characters; kind -> samples of the text
        self.found: dict[str, Counter[int]] = {
            kind: Counter() for kind in _HIDDEN_KINDS
        }
        self.samples: dict[str, list[str]] = {kind: [] for kind in _HIDDEN_KINDS}

    def start_page(self, number: int) -> None:
        self.page = number
        self.stack = []
        # Areas painted in a colour or with an image; white text on them shows.
        self.backgrounds: list[tuple[float, float, float, float]] = []
        self.path: list[tuple[float, float, float, float]] = []
        self.state = {
            "fill": (0.0,),
            "stroke": (0.0,),
            "fill_space": True,  # colour operands are gray, RGB or CMYK
            "stroke_space": True,
            "mode": 0,
            "size": 0.0,
            "scale": 100.0,
        }

    def visit(self, operator: bytes, operands: list[Any], cm: Any, tm: Any) -> None:
        """Update the state for one operator; count text it shows while hidden."""
        try:
            self._visit(operator, operands, cm, tm)
        except (MemoryError, RecursionError):
            raise
        except Exception:  # odd operands must not cost the page its text
            logger.debug("hidden-text scan skipped an operator %r", operator)

    def _visit(self, operator: bytes, operands: list[Any], cm: Any, tm: Any) -> None:
        state = self.state
        if operator == b"q":
            self.stack.append(dict(state))
        elif operator == b"Q":
            if self.stack:
                self.state = self.stack.pop()
        elif operator in (b"g", b"rg", b"k"):
            state["fill"] = _numbers(operands) or state["fill"]
            state["fill_space"] = True
        elif operator in (b"G", b"RG", b"K"):
            state["stroke"] = _numbers(operands) or state["stroke"]
            state["stroke_space"] = True
        elif operator in (b"sc", b"scn"):
            # Separation, Indexed and pattern operands are no colours to judge.
            state["fill"] = (
                (_numbers(operands) or (0.0,)) if state["fill_space"] else (0.0,)
            )
        elif operator in (b"SC", b"SCN"):
            state["stroke"] = (
                (_numbers(operands) or (0.0,)) if state["stroke_space"] else (0.0,)
            )
        elif operator == b"cs" and operands:
            state["fill"], state["fill_space"] = (0.0,), operands[0] in _DEVICE_SPACES
        elif operator == b"CS" and operands:
            state["stroke"] = (0.0,)
            state["stroke_space"] = operands[0] in _DEVICE_SPACES
        elif operator == b"Tr" and operands:
            state["mode"] = int(operands[0])
        elif operator == b"Tf" and len(operands) >= 2:
            state["size"] = float(operands[1])
        elif operator == b"Tz" and operands:
            state["scale"] = float(operands[0])
        elif operator in (b"Tj", b"'", b'"', b"TJ") and operands:
            self._shown(operator, operands, cm, tm)
        else:
            self._painted(operator, operands, cm)

    def _painted(self, operator: bytes, operands: list[Any], cm: Any) -> None:
        """Remember rectangles filled in a colour, and images, as backgrounds."""
        if operator == b"re" and len(operands) == 4:
            x, y, w, h = (float(v) for v in operands)
            self.path.append(_transform_box((x, y, x + w, y + h), cm))
        elif operator in (b"m", b"l", b"c", b"v", b"y") and len(operands) >= 2:
            x, y = float(operands[-2]), float(operands[-1])
            point = _transform_box((x, y, x, y), cm)
            if operator == b"m" or not self.path:
                self.path.append(point)
            else:  # grow the subpath's box
                left, bottom, right, top = self.path[-1]
                self.path[-1] = (
                    min(left, point[0]),
                    min(bottom, point[1]),
                    max(right, point[2]),
                    max(top, point[3]),
                )
        elif operator in _FILLS:
            if not _is_white(self.state["fill"]) and len(self.backgrounds) < 5000:
                self.backgrounds.extend(self.path)
            self.path = []
        elif operator in (b"n", b"S", b"s"):
            self.path = []
        elif operator == b"Do" and len(self.backgrounds) < 5000:
            self.backgrounds.append(_transform_box((0, 0, 1, 1), cm))

    def _shown(self, operator: bytes, operands: list[Any], cm: Any, tm: Any) -> None:
        if operator == b"TJ":
            parts = [p for p in operands[0] if isinstance(p, str | bytes)]
        else:
            parts = [operands[-1]]
        text = "".join(p if isinstance(p, str) else p.decode("latin-1") for p in parts)
        chars = sum(1 for ch in text if not ch.isspace())
        if not chars:
            return
        kind = self._hidden_kind(cm, tm)
        if kind is None:
            return
        self.found[kind][self.page] += chars
        # Raw string bytes only read as text in simple fonts; quote them then.
        if len(self.samples[kind]) < 4 and text.isprintable() and text.isascii():
            self.samples[kind].append(text)

    def _hidden_kind(self, cm: Any, tm: Any) -> str | None:
        state = self.state
        mode = state["mode"]
        if mode in _INVISIBLE_MODES:
            return "invisible"
        a, b, c, d = _combined_scale(tm, cm)
        size = abs(state["size"])
        height = size * math.hypot(c, d)
        width = size * math.hypot(a, b) * abs(state["scale"]) / 100
        if min(height, width) <= _TINY_POINTS:
            return "tiny"
        fills = mode in _FILL_MODES
        strokes = mode in _STROKE_MODES
        if (not fills or _is_white(state["fill"])) and (
            not strokes or _is_white(state["stroke"])
        ):
            return None if self._on_background(tm, cm) else "white"
        return None

    def _on_background(self, tm: Any, cm: Any) -> bool:
        x0, y0, _x1, _y1 = _transform_box((0, 0, 0, 0), _multiply(tm, cm))
        return any(
            left - 1 <= x0 <= right + 1 and bottom - 1 <= y0 <= top + 1
            for left, bottom, right, top in self.backgrounds
        )

    def warnings(self) -> list[str]:
        """Return one hidden-text warning per kind found in the document."""
        found = []
        for kind, description in _HIDDEN_KINDS.items():
            pages = self.found[kind]
            if sum(pages.values()) < _MIN_HIDDEN_CHARS:
                continue
            quote = sample(" ".join(self.samples[kind]))
            found.append(
                hidden_text_warning(
                    f"{_page_list(sorted(pages))} {'has' if len(pages) == 1 else 'have'} "
                    f"{description}"
                    + (f" (“{quote}”)" if quote.strip() else "")
                    + "; it is indexed."
                )
            )
        return found


def _multiply(m1: Any, m2: Any) -> list[float]:
    a1, b1, c1, d1, e1, f1 = (float(v) for v in m1[:6])
    a2, b2, c2, d2, e2, f2 = (float(v) for v in m2[:6])
    return [
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    ]


def _transform_box(
    box: tuple[float, float, float, float], matrix: Any
) -> tuple[float, float, float, float]:
    """Return the bounding box, in page space, of a box in `matrix`'s space."""
    a, b, c, d, e, f = (float(v) for v in matrix[:6])
    x0, y0, x1, y1 = box
    xs, ys = [], []
    for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
        xs.append(a * x + c * y + e)
        ys.append(b * x + d * y + f)
    return min(xs), min(ys), max(xs), max(ys)


def _numbers(operands: list[Any]) -> tuple[float, ...] | None:
    values = tuple(float(o) for o in operands if isinstance(o, int | float))
    return values if len(values) in (1, 3, 4) else None


def _is_white(colour: tuple[float, ...]) -> bool:
    if len(colour) == 4:  # CMYK: no ink at all
        return max(colour) <= 1 - _WHITE
    return min(colour) >= _WHITE  # gray or RGB


def _combined_scale(tm: Any, cm: Any) -> tuple[float, float, float, float]:
    """Return the linear part of tm x cm: how text space maps to the page."""
    a, b, c, d, _e, _f = _multiply(tm, cm)
    return a, b, c, d


# Marks a line of `texts` as a table row until `_blocks` makes table blocks.
_TABLE_ROW = "\ue000"  # private use: no line break to splitlines()


# Seconds of pypdf layout mode a document may spend on tables the text
# positions did not show (layout mode costs 2-4 s a dense page).
LAYOUT_BUDGET_SECONDS = 15.0


def _with_tables(
    page: Any, placed: pdftables.PlacedText, text: str, budget: list[float]
) -> str:
    """Replace the lines of tables found on the page with rows that keep headers.

    The positions pypdf reported during the default pass come first; where a
    producer drew a whole row as one piece they show no columns, and pypdf's
    layout mode is asked instead while `budget` (seconds, shared by the
    document's pages) lasts. A failure there keeps the default text.
    """
    if not pdftables.looks_tabular(text):
        return text
    found = pdftables.find_tables(placed.lines())
    if not found and budget[0] > 0:
        started = time.monotonic()
        try:
            layout = page.extract_text(extraction_mode="layout") or ""
            found = pdftables.find_tables(pdftables.grid_lines(layout))
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # layout mode is stricter than the default mode
            logger.info("table layout pass skipped a page: %s", type(exc).__name__)
        budget[0] -= time.monotonic() - started
    tables = [
        pdftables.Table(rows=[row.translate(_LIGATURES) for row in table.rows])
        for table in found
    ]
    return pdftables.merge_tables(text, tables, _TABLE_ROW) if tables else text


def _run_ocr(
    pending: dict[int, list[bytes]],
    texts: list[str],
    deadline: float,
    warnings: list[str],
) -> tuple[list[int], list[int]]:
    """OCR pending page images into `texts`; return pages read and pages blank."""
    if not pending:
        return [], []
    try:
        found, left = ocr.recognize_pages(pending, deadline=deadline)
    except Exception as exc:  # a failing OCR model must not fail the document
        warnings.append(
            f"OCR failed ({type(exc).__name__}), so scanned pages stay empty."
        )
        return [], []
    if left:
        warnings.append(
            f"OCR stopped at the time limit; {len(left)} scanned page(s) were not read."
        )
    for number, text in found.items():
        texts[number - 1] = _clean(text)
    read = [number for number in sorted(found) if texts[number - 1]]
    blank = [number for number in sorted(found) if not texts[number - 1]]
    return read, blank


def _explain(
    warnings: list[str],
    unread: list[int],
    without_text: list[int],
    read_by_ocr: list[int],
    ocr_blocked: str | None,
    pending: dict[int, list[bytes]],
) -> None:
    """Add plain-language notes about pages whose text is missing or guessed."""
    for number in unread[:MAX_NAMED_PAGES]:
        warnings.append(f"Page {number} could not be read; its text is missing.")
    if len(unread) > MAX_NAMED_PAGES:
        warnings.append(
            f"{len(unread) - MAX_NAMED_PAGES} more pages could not be read."
        )
    if read_by_ocr:
        warnings.append(
            f"{_page_list(read_by_ocr)} had no text layer and "
            f"{'was' if len(read_by_ocr) == 1 else 'were'} read with OCR; "
            "recognised text may contain errors."
        )
    for number in without_text[:MAX_NAMED_PAGES]:
        warnings.append(f"Page {number} has no text layer.")
    if len(without_text) > MAX_NAMED_PAGES:
        more = len(without_text) - MAX_NAMED_PAGES
        warnings.append(f"{more} more pages have no text layer.")
    if without_text and ocr_blocked:
        warnings.append(
            f"Pages without a text layer were not read with OCR: {ocr_blocked}."
        )
    elif without_text and not pending:
        warnings.append("Pages without a text layer hold no image that OCR could read.")


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_NAMED_PAGES])
    more = len(numbers) - MAX_NAMED_PAGES
    label = "Page" if len(numbers) == 1 else "Pages"
    return f"{label} {shown}" + (f" and {more} more" if more > 0 else "")


def _clean(text: str) -> str:
    """Expand ligatures, drop trailing spaces and runs of blank lines."""
    lines = [line.rstrip() for line in text.translate(_LIGATURES).splitlines()]
    cleaned: list[str] = []
    for line in lines:
        if line.strip() or (cleaned and cleaned[-1]):
            cleaned.append(line if line.strip() else "")
    return "\n".join(cleaned).strip()


def _edge_key(line: str) -> str:
    return _DIGITS.sub("#", _SPACES.sub(" ", line).strip()).lower()


def strip_repeated_edges(texts: list[str]) -> list[str]:
    """Drop running headers and footers: edge lines repeated on most pages.

    A line (digits ignored, so page numbers match) among the first or last
    lines of at least half the pages, and of at least three pages, is dropped
    from page edges; it would otherwise repeat in every chunk. Needs four pages
    with text to judge.
    """
    bodies = [[line for line in text.split("\n") if line.strip()] for text in texts]
    with_text = [body for body in bodies if body]
    if len(with_text) < 4:
        return texts
    counts: Counter[str] = Counter()
    for body in with_text:
        edge = _edge_size(body)
        counts.update({_edge_key(line) for line in body[:edge] + body[-edge:]})
    needed = max(3, math.ceil(len(with_text) / 2))
    repeated = {
        key for key, count in counts.items() if count >= needed and len(key) <= 200
    }
    if not repeated:
        return texts
    result = []
    for text, body in zip(texts, bodies, strict=True):
        edge = _edge_size(body)
        start, end = 0, len(body)
        while start < min(edge, end) and _edge_key(body[start]) in repeated:
            start += 1
        while (
            end > max(start, len(body) - edge) and _edge_key(body[end - 1]) in repeated
        ):
            end -= 1
        if (start, end) == (0, len(body)):
            result.append(text)  # untouched: keep its blank lines
        else:
            result.append(_clean("\n".join(body[start:end])))
    return result


def _edge_size(body: list[str]) -> int:
    """Return how many lines at each end may be a header or footer.

    Up to three, but at most a third of the page, so a short page keeps its body.
    """
    return max(1, min(_EDGE_LINES, len(body) // 3))


def _metadata_title(reader: Any) -> str:
    try:
        metadata = reader.metadata
        title = str(metadata.title or "") if metadata else ""
    except Exception:  # broken Info dictionaries are common and harmless
        return ""
    title = _SPACES.sub(" ", title).strip()
    if _FILENAME_TITLE.search(title):
        return ""
    return title[:200]


def _outline(reader: Any, warnings: list[str]) -> dict[int, list[tuple[int, str]]]:
    """Return outline (bookmark) entries by 0-based page: (level, title) in order."""
    entries: list[tuple[int, int, str]] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)  # the children of the entry before
                continue
            title = _SPACES.sub(" ", str(getattr(item, "title", "") or "")).strip()
            page = reader.get_destination_page_number(item)
            if title and isinstance(page, int) and page >= 0:
                entries.append((page, level, title[:300]))

    try:
        walk(reader.outline, 1)
    except MemoryError:
        raise
    except Exception:  # a broken outline only costs the section names
        warnings.append(
            "The PDF's bookmarks could not be read, so sections are not named."
        )
        return {}
    by_page: dict[int, list[tuple[int, str]]] = {}
    for page, level, title in sorted(entries, key=lambda entry: entry[0]):
        by_page.setdefault(page, []).append((level, title))
    return by_page


def _find_title(lines: list[str], title: str, start: int) -> int | None:
    """Return the line at or after `start` where a bookmarked section begins."""
    wanted = _SPACES.sub(" ", title).strip().lower()
    for index in range(start, len(lines)):
        line = _SPACES.sub(" ", lines[index]).strip().lower()
        if not line:
            continue
        if line.startswith(wanted[:60]) or (len(line) >= 8 and wanted.startswith(line)):
            return index
    return None


def _blocks(texts: list[str], outline: dict[int, list[tuple[int, str]]]) -> list[Block]:
    """Cut each page at the bookmarked headings found in it; keep page numbers."""
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for index, text in enumerate(texts):
        lines = text.split("\n")
        cuts = [(0, HEADING_SEPARATOR.join(t for _, t in path))]
        search = 0
        for level, title in outline.get(index, []):
            path = [(lvl, t) for lvl, t in path if lvl < level]
            path.append((level, title))
            found = _find_title(lines, title, search)
            at = search if found is None else found
            search = at if found is None else found + 1
            cuts.append((at, HEADING_SEPARATOR.join(t for _, t in path)))
        for position, (start, heading) in enumerate(cuts):
            end = cuts[position + 1][0] if position + 1 < len(cuts) else len(lines)
            blocks.extend(_kinds(lines[start:end], index + 1, heading))
    return blocks


def _kinds(lines: list[str], page: int, heading: str) -> list[Block]:
    """Cut a page segment into paragraph blocks and table blocks (marked rows)."""
    blocks: list[Block] = []
    run: list[str] = []
    in_table = False

    def flush() -> None:
        segment = "\n".join(run).strip()
        if segment:
            kind = "table" if in_table else "paragraph"
            blocks.append(Block(text=segment, page=page, heading=heading, kind=kind))
        run.clear()

    for line in lines:
        is_row = line.startswith(_TABLE_ROW)
        if is_row != in_table:
            flush()
            in_table = is_row
        run.append(line.removeprefix(_TABLE_ROW))
    flush()
    return blocks


def _page_images(page: Any, depth: int = 0) -> list[bytes]:
    """Decode up to MAX_IMAGES_PER_PAGE images of a page, shrunk for OCR.

    Sizes are checked from the image dictionaries before anything is decoded;
    decoding itself runs under pypdf's buffer limit and the child's RLIMIT_AS.
    """
    found: list[bytes] = []
    try:
        resources = page.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if resources is not None else None
        xobjects = xobjects.get_object() if xobjects is not None else None
        names = list(xobjects.keys())[:MAX_XOBJECTS_PER_PAGE] if xobjects else []
    except (MemoryError, RecursionError):
        raise
    except Exception:
        return found
    for name in names:
        if len(found) >= MAX_IMAGES_PER_PAGE:
            break
        try:
            xobject = xobjects[name].get_object()
            subtype = xobject.get("/Subtype")
            if subtype == "/Form" and depth < MAX_FORM_DEPTH:
                found.extend(_page_images(xobject, depth + 1))
                continue
            if subtype != "/Image":
                continue
            width, height = (
                int(xobject.get("/Width", 0)),
                int(xobject.get("/Height", 0)),
            )
            if min(width, height) < MIN_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                continue
            image = xobject.decode_as_image()
            if image is not None:
                found.append(ocr.shrink_for_ocr(image))
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # an image that cannot be decoded is skipped
            logger.info("skipped an undecodable PDF image: %s", type(exc).__name__)
    return found[:MAX_IMAGES_PER_PAGE]


def deadline_for(limits: ParseLimits, started: float | None = None) -> float:
    """Return when OCR must stop: well inside the parse's wall-clock budget."""
    start = time.monotonic() if started is None else started
    return start + 0.7 * limits.timeout_seconds
