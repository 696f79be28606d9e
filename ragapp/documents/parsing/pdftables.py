"""Find tables in a PDF page and write each row with its column headers.

pypdf's default extraction keeps a row's cells on one line but loses the
headers ("40,100 40,150 5,770 5,086 ..."), and wraps a cell's text onto lines
of its own, so neither retrieval nor a quote can tell what a value is. Its
layout mode places text on a character grid by position, which is what a
table pass needs: columns are the runs of characters separated by gutters of
two spaces or more, headers are the short lines stacked above the body, and
an indented line continues the row above. Each row comes out as
"Header: value | Header: value", one line, so it is a sentence of its own to
the chunker and the answerer, and quoting it quotes that row.

docs/BENCHMARKS.md compares this with pypdf's two modes and pdfplumber's
table finder on the eval PDFs' tables. Layout extraction costs about as much
again as default extraction, so it only runs on pages whose default text
looks tabular (`looks_tabular`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_GUTTER = re.compile(r"\S+(?: \S+)*")  # runs of words split by 2+ spaces
_CAPTION = re.compile(
    r"^\s*(?:table|tab\.|chart)\s+(?:[A-Z]\b|[A-Z]?[\d.-]+)", re.IGNORECASE
)
_NUMBER = re.compile(r"^[$(]?[-+]?\d[\d,.]*%?[)*]?$")
_TOKEN = re.compile(r"[^\W_]+")
# A header cell has few words; a body's first cell (a row's key) too.
_SHORT_CELL_WORDS = 5
_MAX_HEADER_LINES = 10
_MIN_ROWS = 3
_MAX_COLUMNS = 24
_MAX_PIECES = 20_000  # per page; a page drawn glyph by glyph is no table to read
_MAX_BLANK_LINES = 2
ROW_SEPARATOR = " | "


@dataclass(frozen=True)
class Cell:
    start: int
    end: int
    text: str

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Table:
    """One table found on a page: its rows, rendered, and its words."""

    rows: list[str]

    def words(self) -> set[str]:
        return {w for row in self.rows for w in _words(row)}


def looks_tabular(text: str) -> bool:
    """Whether a page's default-mode text may hold a table worth the layout pass.

    A caption ("Table 3-2.") or four lines of three or more numbers.
    """
    numeric_rows = 0
    for line in text.splitlines():
        if _CAPTION.match(line):
            return True
        if sum(bool(_NUMBER.match(token)) for token in line.split()) >= 3:
            numeric_rows += 1
            if numeric_rows >= 4:
                return True
    return False


def grid_lines(layout: str) -> list[list[Cell]]:
    """Return the cells of text laid out on a character grid (one cell: words
    with single spaces between them)."""
    return [_cells(line) for line in layout.splitlines()]


class PlacedText:
    """Collect the text pieces of a page with where they start, from pypdf's
    `visitor_text` during the default extraction, so finding tables costs no
    second pass over the page (layout mode costs 2-4 s on a dense table).
    """

    def __init__(self) -> None:
        self.pieces: list[tuple[float, float, float, str]] = []  # x, y, size, text
        self.ends: list[float] = []  # where each piece ends, from its font's widths
        self.widths: dict[int, tuple[int, list[float]] | None] = {}

    def visit(self, text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if not text.strip() or len(self.pieces) >= _MAX_PIECES:
            return
        try:
            a, b, c, d, e, f = _product(tm, cm)
        except (TypeError, ValueError, IndexError):
            return
        if abs(b) > 1e-3 or abs(c) > 1e-3 or a <= 0:  # rotated or mirrored
            return
        height = abs(d) * float(size)
        if height <= 0:
            return
        # pypdf starts a piece with the space that separated it from the last.
        lead = len(text) - len(text.lstrip())
        stripped = text.strip()
        x = e + lead * 0.25 * height
        self.pieces.append((x, f, height, stripped))
        self.ends.append(x + self._width(font, stripped) * a * float(size))

    def _width(self, font: Any, text: str) -> float:
        """Return the text's width in text space units of size 1 (em).

        From a simple font's /Widths; half an em a character otherwise.
        """
        table = self.widths.get(id(font), ...) if font is not None else None
        if table is ...:
            table = None
            try:
                widths = font.get("/Widths")
                first = int(font.get("/FirstChar", 0))
                if widths is not None:
                    values = [float(w) / 1000 for w in widths.get_object()]
                    table = (first, values)
            except Exception:  # odd fonts fall back to the estimate
                table = None
            self.widths[id(font)] = table
        if table is None:
            return 0.5 * len(text)
        first, values = table
        total = 0.0
        for char in text:
            index = ord(char) - first
            total += (
                values[index] if 0 <= index < len(values) and values[index] else 0.5
            )
        return total

    def lines(self) -> list[list[Cell]]:
        """The pieces as lines of cells, top to bottom, on a character grid.

        A character is taken as half the page's usual text height wide; a
        gap of more than one character between pieces starts a new cell.
        """
        if not self.pieces:
            return []
        sizes = sorted(piece[2] for piece in self.pieces)
        unit = max(sizes[len(sizes) // 2] * 0.5, 0.5)
        rows: list[list[tuple[float, float, float, str, float]]] = []
        order = sorted(
            range(len(self.pieces)),
            key=lambda i: (-self.pieces[i][1], self.pieces[i][0]),
        )
        for piece in (self.pieces[i] + (self.ends[i],) for i in order):
            if rows and abs(rows[-1][0][1] - piece[1]) <= 0.3 * piece[2]:
                rows[-1].append(piece)
            else:
                rows.append([piece])
        lines: list[list[Cell]] = []
        previous_y = None
        for row in rows:
            y = row[0][1]
            # A gap of two text lines or more between lines reads as a blank line.
            if previous_y is not None and previous_y - y > 2.2 * row[0][2]:
                lines.append([])
            previous_y = y
            lines.append(_row_cells(sorted(row), unit))
        return lines


def _row_cells(
    pieces: list[tuple[float, float, float, str, float]], unit: float
) -> list[Cell]:
    """Cells of one line; a cell spans the grid columns its text covers."""
    cells: list[Cell] = []
    end_x = float("-inf")
    for x, _y, size, text, piece_end in pieces:
        if cells and x - end_x <= 0.4 * size:  # same cell
            last = cells[-1]
            # A word may come in pieces; only a gap is a space.
            space = x - end_x > 0.12 * size
            joined = f"{last.text} {text}" if space else last.text + text
            end_x = max(end_x, piece_end)
            cells[-1] = Cell(
                last.start, max(round(end_x / unit), last.start + 1), joined
            )
            continue
        start = round(x / unit)
        if cells:
            start = max(start, cells[-1].end + 2)
        end_x = max(end_x, piece_end)
        cells.append(Cell(start, max(round(piece_end / unit), start + 1), text))
    return cells


def _product(m1: Any, m2: Any) -> tuple[float, ...]:
    a1, b1, c1, d1, e1, f1 = (float(v) for v in m1[:6])
    a2, b2, c2, d2, e2, f2 = (float(v) for v in m2[:6])
    return (
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    )


def find_tables(lines: list[list[Cell]]) -> list[Table]:
    """Return the tables among a page's lines of cells, in reading order."""
    tables: list[Table] = []
    index = floor = 0
    while index < len(lines):
        end = _region_end(lines, index)
        if end is None:
            index += 1
            continue
        table = _table(lines, index, end, floor)
        if table is not None:
            tables.append(table)
            floor = end
        index = end
    return tables


def _cells(line: str) -> list[Cell]:
    return [Cell(m.start(), m.end(), m.group()) for m in _GUTTER.finditer(line)]


def _is_row(cells: list[Cell]) -> bool:
    """A line of two or more cells whose first one is short (a row's key) and
    holds a letter or digit."""
    if len(cells) < 2 or not any(ch.isalnum() for ch in cells[0].text):
        return False  # a bullet (a dash, "•") starts a list item, not a row
    if len(cells) == 2:
        first, second = cells
        # Two long runs side by side are two columns of prose, not a table.
        return (
            len(first.text.split()) <= _SHORT_CELL_WORDS
            and second.start - first.end >= 3
        )
    return True


def _region_end(lines: list[list[Cell]], start: int) -> int | None:
    """Return where a table starting at `start` ends, if one starts there.

    A table is at least three row lines; lines indented past a row's first
    cell continue it; up to two blank lines may fall between rows.
    """
    if not _is_row(lines[start]):
        return None
    key_end = lines[start][0].end
    rows = 0
    blanks = 0
    index = start
    last = start
    while index < len(lines):
        cells = lines[index]
        if not cells:
            blanks += 1
            if blanks > _MAX_BLANK_LINES:
                break
        elif _is_row(cells) and cells[0].start <= key_end:
            rows += 1
            blanks = 0
            last = index
        elif cells[0].start > key_end and rows:  # continues the row above
            blanks = 0
            last = index
        else:
            break
        index += 1
    return last + 1 if rows >= _MIN_ROWS else None


def _numeric(cells: list[Cell]) -> bool:
    return sum(bool(_NUMBER.match(c.text.replace(" ", ""))) for c in cells) * 2 >= len(
        cells
    )


def _table(lines: list[list[Cell]], start: int, end: int, floor: int) -> Table | None:
    """Read the table in lines[start:end]; headers may come from above, to `floor`.

    A table of figures has its header in the leading lines without figures;
    any other table in its first line, when that reads as headers. Rejected
    when the cells do not keep to columns: justified prose has gutters too,
    but they fall anywhere.
    """
    region = [cells for cells in lines[start:end] if cells]
    numeric = sum(_numeric(cells) for cells in region) * 2 >= len(region)
    if numeric:
        head = 0
        while head < len(region) and not _numeric(region[head]):
            head += 1
    else:
        head = 1 if _header_like([c.text for c in region[0]]) else 0
    header_lines, body = region[:head], region[head:]
    if len(body) < _MIN_ROWS or head > _MAX_HEADER_LINES:
        return None
    template = max(body, key=len)
    if not _keeps_to_columns(body, template) or len(template) > _MAX_COLUMNS:
        return None
    rows: list[list[str]] = []
    for cells in body:
        placed = _place(cells, template)
        if rows and not placed[0]:
            for column, text in enumerate(placed):  # a wrapped cell goes on
                if text:
                    rows[-1][column] = _joined(rows[-1][column], text)
        else:
            rows.append(placed)
    above = [] if header_lines else _lines_above(lines, start, floor)
    headers = _headers(above + header_lines, template)
    period = _panel_period(headers)
    rendered = []
    for panel in range(0, len(headers), period):
        names = headers[panel : panel + period]
        for row in rows:
            cells = row[panel : panel + period]
            if any(cells):
                rendered.append(
                    ROW_SEPARATOR.join(
                        f"{name}: {text}" if name else text
                        for name, text in zip(names, cells, strict=True)
                        if text
                    )
                )
    return Table(rows=rendered) if len(rendered) >= _MIN_ROWS else None


def _column(cell: Cell, template: list[Cell]) -> int:
    """The template column the cell overlaps most, or else lies nearest to
    (figures are right-aligned, text left-aligned: neither edge alone will do)."""
    return max(
        range(len(template)),
        key=lambda i: (
            min(cell.end, template[i].end) - max(cell.start, template[i].start)
        ),
    )


def _keeps_to_columns(body: list[list[Cell]], template: list[Cell]) -> bool:
    """Whether half the rows have every column, and three cells in four start
    or end where their column does."""
    key_end = body[0][0].end
    rows = [cells for cells in body if cells[0].start <= key_end]
    if sum(len(cells) == len(template) for cells in rows) * 2 < len(rows):
        return False
    fits = total = 0
    for cells in body:
        for cell in cells:
            column = template[_column(cell, template)]
            total += 1
            fits += (
                abs(cell.start - column.start) <= 1 or abs(cell.end - column.end) <= 1
            )
    return fits * 4 >= total * 3


def _place(cells: list[Cell], template: list[Cell]) -> list[str]:
    placed = [""] * len(template)
    for cell in cells:
        column = _column(cell, template)
        placed[column] = _joined(placed[column], cell.text)
    return placed


def _joined(before: str, after: str) -> str:
    """Join a cell's pieces; a word hyphenated across lines is made whole."""
    if not before:
        return after
    if not after:
        return before
    if before.endswith("-") and after[:1].islower():
        return before[:-1] + after
    return f"{before} {after}"


def _lines_above(lines: list[list[Cell]], start: int, floor: int) -> list[list[Cell]]:
    """Header lines stacked above a table: short cells, up to a caption or prose."""
    found: list[list[Cell]] = []
    index = start - 1
    while index >= floor and len(found) < _MAX_HEADER_LINES:
        cells = lines[index]
        index -= 1
        if not cells:
            continue
        text = " ".join(cell.text for cell in cells)
        if _CAPTION.match(text) or not _header_like([c.text for c in cells]):
            break
        found.insert(0, cells)
    return found


def _headers(header_lines: list[list[Cell]], template: list[Cell]) -> list[str]:
    """Column names: the header lines' cells stacked by column, top to bottom.

    A header cell names the first column that ends at or after its start
    (the gutter to its left belongs to it: headers line up with the left of
    right-aligned figures, or centre over left-aligned text); one that runs
    into the next column heads several and names none.
    """
    headers = [""] * len(template)
    for cells in header_lines:
        for cell in cells:
            column = next(
                (i for i, col in enumerate(template) if cell.start <= col.end),
                len(template) - 1,
            )
            following = template[column + 1] if column + 1 < len(template) else None
            if following is not None and cell.end > following.start + 1:
                continue
            headers[column] = _joined(headers[column], cell.text)
    return headers


def _header_like(cells: list[str]) -> bool:
    """Short cells without figures read as headers."""
    return bool(cells) and all(
        len(cell.split()) <= _SHORT_CELL_WORDS
        and not any(_NUMBER.match(token) for token in cell.split())
        for cell in cells
    )


def _panel_period(headers: list[str]) -> int:
    """The width of one panel when a table is printed side by side several times.

    The panels' first headers must match; of the others, three in four, up to
    a header spanning the panel ("And you are—") or one missing in a panel.
    """
    count = len(headers)
    for period in range(2, count // 2 + 1):
        if (
            count % period == 0
            and headers[0]
            and sum(_same_header(headers[i], headers[i % period]) for i in range(count))
            * 4
            >= count * 3
            and all(headers[i] == headers[0] for i in range(0, count, period))
        ):
            return period
    return count


def _same_header(one: str, other: str) -> bool:
    return not one or not other or one.endswith(other) or other.endswith(one)


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def merge_tables(text: str, tables: list[Table], marker: str) -> str:
    """Put each table's rows, `marker`-prefixed, in place of its default-mode lines.

    A default-mode line all of whose words are words of the table is the
    table's (a row, a wrapped cell, a header piece); the first such line
    takes the rendered rows, the rest go. Each table looks only after the one
    before, and stops taking lines after three in a row that are not its.
    """
    lines = text.split("\n")
    cursor = 0
    for table in tables:
        words = table.words()
        taken: list[int] = []
        misses = 0
        for index in range(cursor, len(lines)):
            line_words = _words(lines[index])
            if line_words and set(line_words) <= words:
                taken.append(index)
                misses = 0
            elif taken and lines[index].strip():
                misses += 1
                if misses >= 3:
                    break
        if not taken:
            continue
        first = taken[0]
        rows = "\n".join(marker + row for row in table.rows)
        dropped = set(taken[1:])
        lines = [
            rows if index == first else line
            for index, line in enumerate(lines)
            if index not in dropped
        ]
        cursor = first + 1
    return "\n".join(lines)
