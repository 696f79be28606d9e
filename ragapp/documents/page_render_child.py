"""Entry point of the isolated page render: `python -m ragapp.documents.page_render_child`.

Reads {"path", "page", "width", "highlight", "memory_bytes", "timeout_seconds"}
as JSON on stdin, limits itself, renders the page with pypdfium2 and writes
{"ok": true, "png": <base64>, "page_count", "boxes"} or {"ok": false, "code",
"page_count"} as JSON on stdout. pdfium is C code reading an untrusted upload,
so it runs here, under RLIMIT_AS and RLIMIT_CPU, and never in the web process.

The module imports neither Django nor the rest of ragapp: a render is on the
path of a page view, and the child's start-up is most of its cost.

Finding the passage: the highlight is a chunk's text as pypdf extracted it
(whitespace, hyphenation and ligatures differ from pdfium's text layer) or a
sentence of it. Both sides are reduced to their letters and digits, case- and
accent-folded, with a map back to pdfium's character indices; the passage is
then tiled with its longest runs found in the page (greedy string tiling), the
runs are kept in reading order, and groups of neighbouring runs long enough
not to be chance are the passage's part on this page
(docs/decisions/page-images.md has the rules and what they were measured on).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import os
import resource
import sys
import unicodedata
from typing import Any, NamedTuple, TextIO

# Runs shorter than this many letters and digits are chance matches (a phrase
# the page repeats), not the passage.
MIN_RUN = 24
_SEED = 8  # length of the substrings that seed a run
_MAX_SEEDS = 64  # places one seed is tried at; bounds work on repetitive pages
# Letters compared in all; text built to make tiling slow (the page and the
# chunk both come from the upload) stops it early instead of timing out.
_MAX_STEPS = 3_000_000
# Two runs belong to one passage when at most this much of the highlight
# between them was not found (a word split or spelled differently).
MAX_GAP = 48
# Letters the page may hold between two runs beyond those the passage holds
# there, for the words between to be marked too (spelled differently, say).
_FILL_SLACK = 16
# Shorter groups of runs are a phrase the page happens to share with the
# passage (a running header, "the incident response team"); a highlight
# shorter than this must be found nearly whole.
MIN_GROUP = 80
# Letters and digits a running header or footer, or footnotes, may take up
# between a page break and the passage that runs over it.
EDGE_SLACK = 400
# How much of the passage's own start or end such a part may miss.
EDGE_GAP = 16
MAX_PAGE_CHARS = 200_000  # a page with more text is shown without a highlight
MAX_PIXELS = 12_000_000  # about 2000 x 6000; an absurd page size is scaled down
HIGHLIGHT_RGBA = (255, 214, 0, 100)
_PAD = 1  # pixels around each highlighted line
_FPDF_ERR_PASSWORD = 4


class RenderError(Exception):
    """A reason the page cannot be shown; the parent turns the code into words."""

    def __init__(self, code: str, page_count: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.page_count = page_count


class Folded(NamedTuple):
    """Text reduced to folded letters and digits, with a way back to the source."""

    text: str
    origin: list[int]  # the source index of each folded character
    # 1 where a word starts; one entry more than `text`, so that position
    # k + 1 being a start means position k ends a word.
    starts: bytearray


def fold(text: str) -> Folded:
    """Return the letters and digits of `text`, folded, and where each came from.

    NFKD splits ligatures and accented letters; dropping everything that is not
    alphanumeric removes whitespace, punctuation, pdfium's end-of-line hyphen
    marks (U+0002) and combining accents, on whichever side they appear.
    """
    folded: list[str] = []
    origin: list[int] = []
    starts = bytearray()
    previous = -2
    for position, char in enumerate(text):
        pieces = char if char.isascii() else unicodedata.normalize("NFKD", char)
        for piece in pieces.casefold():
            if piece.isalnum():
                folded.append(piece)
                origin.append(position)
                starts.append(position > previous + 1)
                previous = position
    starts.append(1)
    return Folded("".join(folded), origin, starts)


def match_ranges(needle: Folded, haystack: Folded) -> list[tuple[int, int]]:
    """Return the [start, end) ranges of `haystack.text` that show `needle`.

    An empty list means the passage is not on this page.
    """
    tiles = _tiles(needle, haystack)
    chain = _in_reading_order(tiles)
    m, n = len(needle.text), len(haystack.text)
    least = min(MIN_GROUP, 0.8 * m)
    ranges: list[tuple[int, int]] = []
    for group in _groups(chain):
        weight = sum(tile[2] for tile in group)
        if weight < least and not (weight >= MIN_RUN and _runs_over(group, m, n)):
            continue
        start, end = group[0][1], group[0][1] + group[0][2]
        for (i1, j1, l1), (i2, j2, l2) in itertools.pairwise(group):
            needle_gap, hay_gap = i2 - (i1 + l1), j2 - (j1 + l1)
            if hay_gap <= needle_gap + _FILL_SLACK:
                end = j2 + l2  # the words between are the passage's too
            else:  # something else sits between them on the page: a caption
                ranges.append((start, end))
                start, end = j2, j2 + l2
        ranges.append((start, end))
    return ranges


def _runs_over(group: list[tuple[int, int, int]], m: int, n: int) -> bool:
    """Tell whether a group is the part of a passage cut by a page break.

    Such a part is short, but sits at two edges at once: the passage's start
    at the end of the page text (before the footer), or the passage's end at
    the start of the page text (after the header). A phrase the page merely
    shares with the passage rarely does.
    """
    slack = max(EDGE_SLACK, n // 4)
    first, last = group[0], group[-1]
    starts_passage = first[0] <= EDGE_GAP and last[1] + last[2] >= n - slack
    ends_passage = last[0] + last[2] >= m - EDGE_GAP and first[1] <= slack
    return starts_passage or ends_passage


def _tiles(needle: Folded, haystack: Folded) -> list[tuple[int, int, int]]:
    """Cover `needle` greedily with its longest runs found in `haystack`.

    Each run is then cut back to whole words on both sides: letters match by
    chance across a word boundary ("resourc|e it relies" against "architectur|e
    it relies"), and a highlight that starts on a word's last letter looks
    broken.
    """
    a, b = needle.text, haystack.text
    m, n = len(a), len(b)
    seed = min(_SEED, m)
    if seed == 0 or n < seed:
        return []
    least = max(seed, min(MIN_RUN, m))
    seeds: dict[str, list[int]] = {}
    for j in range(n - seed + 1):
        places = seeds.setdefault(b[j : j + seed], [])
        if len(places) < _MAX_SEEDS:
            places.append(j)
    tiles: list[tuple[int, int, int]] = []
    i = steps = 0
    while i <= m - seed and steps < _MAX_STEPS:
        best_length, best_at = 0, -1
        for j in seeds.get(a[i : i + seed], ()):
            length = seed
            while i + length < m and j + length < n:
                if a[i + length] != b[j + length]:
                    break
                length += 1
            steps += length
            if length > best_length:
                best_length, best_at = length, j
        if best_length < least:
            i += 1
            continue
        tile = _whole_words(needle, haystack, i, best_at, best_length)
        if tile[2] >= least:
            tiles.append(tile)
        i += best_length
    return tiles


def _whole_words(
    needle: Folded, haystack: Folded, i: int, j: int, length: int
) -> tuple[int, int, int]:
    start, end = 0, length
    while start < end and not (needle.starts[i + start] and haystack.starts[j + start]):
        start += 1
    while end > start and not (needle.starts[i + end] and haystack.starts[j + end]):
        end -= 1
    return i + start, j + start, end - start


def _in_reading_order(
    tiles: list[tuple[int, int, int]],
) -> list[tuple[int, int, int]]:
    """Keep the heaviest subset of runs that is in order on both sides.

    A run found out of order is a phrase the page repeats elsewhere, or figure
    labels that the two extractors read in different orders.
    """
    if not tiles:
        return []
    weight = [tile[2] for tile in tiles]
    before = [-1] * len(tiles)
    for k, (_, j, _) in enumerate(tiles):
        for p in range(k):
            pj, pl = tiles[p][1], tiles[p][2]
            if pj + pl <= j and weight[p] + tiles[k][2] > weight[k]:
                weight[k], before[k] = weight[p] + tiles[k][2], p
    k = max(range(len(tiles)), key=weight.__getitem__)
    chain: list[tuple[int, int, int]] = []
    while k != -1:
        chain.append(tiles[k])
        k = before[k]
    return chain[::-1]


def _groups(chain: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    groups: list[list[tuple[int, int, int]]] = []
    for tile in chain:
        if groups:
            last = groups[-1][-1]
            if tile[0] - (last[0] + last[2]) <= MAX_GAP:
                groups[-1].append(tile)
                continue
        groups.append([tile])
    return groups


def _page_text(textpage: Any) -> str:
    """Return one character per pdfium char index (no CRLF insertions or drops)."""
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count > MAX_PAGE_CHARS:
        return ""
    chars = []
    for index in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        chars.append(chr(code) if 0 < code <= 0x10FFFF else " ")
    return "".join(chars)


def _char_ranges(textpage: Any, highlight: str) -> list[tuple[int, int]]:
    """Return inclusive pdfium char index ranges that show the highlight."""
    needle = fold(highlight)
    if not needle.text:
        return []
    text = _page_text(textpage)
    haystack = fold(text)
    ranges = []
    for start, end in match_ranges(needle, haystack):
        first, last = haystack.origin[start], haystack.origin[end - 1]
        # Matching sees letters only; the quote marks and full stop that
        # touch the passage belong to it.
        for _ in range(3):  # not along a table of contents' dot leaders
            if first > 0 and _is_punctuation(text[first - 1]):
                first -= 1
            if last + 1 < len(text) and _is_punctuation(text[last + 1]):
                last += 1
        ranges.append((first, last))
    return ranges


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _line_boxes(
    textpage: Any, ranges: list[tuple[int, int]], to_bitmap: Any
) -> list[tuple[int, int, int, int]]:
    """Return pixel boxes for the ranges' characters, joined into line segments.

    Built from each character's box rather than pdfium's text rectangles
    (`count_rects`), which span a whole text object: a running header's
    title and date, far apart on one line, would come back as one bar.
    """
    import pypdfium2.raw as pdfium_c

    boxes = []
    for first, last in ranges:
        for index in range(first, last + 1):
            if pdfium_c.FPDFText_IsGenerated(textpage, index) == 1:
                continue
            if chr(pdfium_c.FPDFText_GetUnicode(textpage, index)).isspace():
                continue
            box = _char_box(textpage, index)
            if box is None:
                continue
            left, bottom, right, top = box
            x0, y0 = to_bitmap(left, top)
            x1, y1 = to_bitmap(right, bottom)
            boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return merge_lines(boxes)


def _char_box(textpage: Any, index: int) -> tuple[float, float, float, float] | None:
    """Return a character's box at its font's full height, so lines look even.

    A font with a broken bounding box gives a loose box many lines tall; the
    glyph's tight box is used then.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        loose = textpage.get_charbox(index, loose=True)
        size = pdfium_c.FPDFText_GetFontSize(textpage, index)
        if loose[3] - loose[1] > 2 * size > 0:
            loose = textpage.get_charbox(index)
    except pdfium.PdfiumError:  # pdfium has no box for this character
        return None
    if loose[2] <= loose[0] or loose[3] <= loose[1]:
        return None
    return loose


def merge_lines(
    boxes: list[tuple[int, int, int, int]],
) -> list[tuple[int, int, int, int]]:
    """Join character boxes that sit on one line next to each other into one box.

    Drawn one by one, the boxes of a line would leave slivers between letters
    and words. Boxes in the next column, or across a running header's gap,
    are on the same line but too far apart to join. A join can bring two
    earlier boxes together, so it repeats until nothing changes.
    """
    runs: list[list[int]] = []
    for box in boxes:  # reading order: most neighbours are the previous box
        if runs and _same_line(list(box), runs[-1]):
            _join(runs[-1], box)
        else:
            runs.append(list(box))
    changed = True
    while changed:
        changed = False
        runs.sort(key=lambda box: (box[1], box[0]))
        kept: list[list[int]] = []
        for box in runs:
            for other in kept:
                if _same_line(box, other):
                    _join(other, box)
                    changed = True
                    break
            else:
                kept.append(box)
        runs = kept
    return [(box[0], box[1], box[2], box[3]) for box in runs]


def _join(box: list[int], other: list[int] | tuple[int, int, int, int]) -> None:
    box[:] = [
        min(box[0], other[0]),
        min(box[1], other[1]),
        max(box[2], other[2]),
        max(box[3], other[3]),
    ]


def _same_line(box: list[int], other: list[int]) -> bool:
    """Tell whether two boxes share a line and no more than a word space apart."""
    overlap = min(box[3], other[3]) - max(box[1], other[1])
    shorter = min(box[3] - box[1], other[3] - other[1])
    taller = max(box[3] - box[1], other[3] - other[1])
    gap = max(box[0] - other[2], other[0] - box[2])
    return overlap >= 0.5 * shorter and gap <= taller


def render(path: str, page_number: int, width: int, highlight: str) -> dict[str, Any]:
    """Render one page to PNG, with the highlight's lines marked."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        code = "encrypted" if exc.err_code == _FPDF_ERR_PASSWORD else "corrupt"
        raise RenderError(code) from exc
    page_count = len(document)
    if not 1 <= page_number <= page_count:
        raise RenderError("page_out_of_range", page_count)
    try:
        page = document[page_number - 1]
        page_width, page_height = page.get_size()
        if not (page_width >= 1 and page_height >= 1):
            raise RenderError("corrupt", page_count)
        scale = min(
            width / page_width, math.sqrt(MAX_PIXELS / (page_width * page_height))
        )
        bitmap = page.render(scale=scale, rev_byteorder=True)
        image = bitmap.to_pil().convert("RGB")
        boxes: list[tuple[int, int, int, int]] = []
        if highlight:
            textpage = page.get_textpage()
            ranges = _char_ranges(textpage, highlight)
            if ranges:
                boxes = _line_boxes(
                    textpage, ranges, bitmap.get_posconv(page).to_bitmap
                )
    except pdfium.PdfiumError as exc:
        raise RenderError("corrupt", page_count) from exc
    if boxes:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for x0, y0, x1, y1 in boxes:
            draw.rectangle(
                (x0 - _PAD, y0 - _PAD, x1 + _PAD, y1 + _PAD), fill=HIGHLIGHT_RGBA
            )
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    # 256 colours without dithering: a quarter of the bytes of RGB for a text
    # page, each pixel within a few levels of the render.
    try:
        image = image.quantize(
            colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
    except ValueError as exc:  # how Pillow reports an allocation that failed here
        raise MemoryError from exc
    output = io.BytesIO()
    image.save(output, format="PNG")
    return {
        "ok": True,
        "png": base64.b64encode(output.getvalue()).decode("ascii"),
        "page_count": page_count,
        "boxes": [list(box) for box in boxes],
    }


def apply_limits(memory_bytes: int, timeout_seconds: float) -> None:
    """Limit address space, CPU time and core dumps before the file is opened.

    The same limits as the parse child (parsing/child.py), minus its OCR
    allowance: a render runs on one thread. An inherited hard limit is never
    raised.
    """
    soft = hard = memory_bytes
    _, current_hard = resource.getrlimit(resource.RLIMIT_AS)
    if current_hard != resource.RLIM_INFINITY:
        soft = hard = min(memory_bytes, current_hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    cpu = math.ceil(timeout_seconds) + 2
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_hard == resource.RLIM_INFINITY or cpu + 2 <= cpu_hard:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run(request: Any) -> dict[str, Any]:
    """Check the request's shape, limit this process, then render."""
    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    path, page, width = request.get("path"), request.get("page"), request.get("width")
    highlight = request.get("highlight")
    memory, timeout = request.get("memory_bytes"), request.get("timeout_seconds")
    if not isinstance(path, str) or not isinstance(highlight, str):
        raise ValueError("path and highlight must be strings")
    if any(type(value) is not int for value in (page, width, memory)):
        raise ValueError("page, width and memory_bytes must be integers")
    if not isinstance(timeout, int | float) or timeout <= 0 or width < 1:
        raise ValueError("timeout_seconds and width must be positive")
    apply_limits(memory, timeout)
    return render(path, page, width, highlight)


def main(stdin: TextIO, stdout: TextIO) -> int:
    """Answer one request; every outcome is a JSON answer and exit status 0."""
    try:
        answer = run(json.load(stdin))
    except RenderError as exc:
        answer = {"ok": False, "code": exc.code, "page_count": exc.page_count}
    except MemoryError:
        answer = {"ok": False, "code": "too_large", "page_count": None}
    except BaseException as exc:  # reported as a reason, never as a traceback
        print(f"render child: {type(exc).__name__}: {exc}", file=sys.stderr)
        answer = {"ok": False, "code": "failed", "page_count": None}
    try:
        json.dump(answer, stdout)
    except MemoryError:
        stdout.write('{"ok": false, "code": "too_large", "page_count": null}')
    stdout.flush()
    return 0


if __name__ == "__main__":
    # pdfium and Pillow may print; keep fd 1 for the JSON answer alone.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    with os.fdopen(answer_fd, "w", encoding="utf-8") as answer_stream:
        sys.exit(main(sys.stdin, answer_stream))
