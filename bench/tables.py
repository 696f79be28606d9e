"""How well each PDF text extraction keeps a table row together, on the eval PDFs.

For every `table` question of the labelled set (bench/qa/questions.jsonl),
each gold page is extracted four ways: pypdf's default mode (what ingestion
used before), ragapp's table pass (ragapp/documents/parsing/pdftables.py:
rows with their headers, from the positions pypdf's default mode reports,
pypdf's layout mode where those show no columns), pypdf's layout mode, and
pdfplumber's table finder (cells of each detected table, a row a line). A row survives when one line holds the
answer fact together with one of the question's content words, i.e. the
row's key and its value stayed on one line, which is what retrieval and
quoting need. Reported per method: rows kept, lines per page (noise) and
seconds per page.

    .venv/bin/python bench/tables.py     (needs `pip install -e '.[bench]'`)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pdfplumber
from _common import REPO, command_line, django_setup, eval_path, report_write
from pypdf import PdfReader
from qa_labels import contains, load_questions, normalise_variants

STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "which",
        "who",
        "with",
        "under",
        "line",
        "amount",
        "your",
        "you",
        "if",
    ]
)


def pypdf_plain(path: Path, page: int) -> str:
    return PdfReader(path).pages[page - 1].extract_text() or ""


def pypdf_layout(path: Path, page: int) -> str:
    return PdfReader(path).pages[page - 1].extract_text(extraction_mode="layout") or ""


def plumber_tables(path: Path, page: int) -> str:
    with pdfplumber.open(path) as pdf:
        tables = pdf.pages[page - 1].extract_tables()
    return "\n".join(
        " | ".join(cell or "" for cell in row) for table in tables for row in table
    )


def ragapp_tables(path: Path, page: int) -> str:
    """What ingestion does now: default text, its table lines as header rows."""
    from ragapp.documents.parsing import pdf, pdftables

    placed = pdftables.PlacedText()
    source = PdfReader(path).pages[page - 1]
    text = pdf._clean(source.extract_text(visitor_text=placed.visit) or "")
    text = pdf._with_tables(source, placed, text, [pdf.LAYOUT_BUDGET_SECONDS])
    return text.replace(pdf._TABLE_ROW, "")


METHODS: dict[str, Callable[[Path, int], str]] = {
    "pypdf default (before)": pypdf_plain,
    "ragapp table pass (pypdf positions, layout mode fallback)": ragapp_tables,
    "pypdf layout mode": pypdf_layout,
    "pdfplumber tables": plumber_tables,
}


def words(text: str) -> set[str]:
    return {
        w for w in normalise_variants(text)[0].split() if w not in STOP and len(w) > 2
    }


def row_kept(text: str, fact: str, keys: set[str]) -> bool:
    for line in text.splitlines():
        normalised = normalise_variants(line)[0]
        if any(contains(normalised, f) for f in normalise_variants(fact)) and (
            words(line) & keys
        ):
            return True
    return False


def main() -> None:
    django_setup(REPO / "var" / "bench" / "tables")  # the parser's messages
    pdfs = eval_path("pdfs", "i1040gi.pdf")
    questions = [q for q in load_questions() if q.kind == "table"]
    rows = []
    for name, method in METHODS.items():
        kept = lines = pages = 0
        seconds = 0.0
        for question in questions:
            keys = words(question.question)
            found = False
            for page in question.gold_pages:
                started = time.perf_counter()
                text = method(pdfs / question.document, page)
                seconds += time.perf_counter() - started
                pages += 1
                lines += len(text.splitlines())
                found = found or any(row_kept(text, f, keys) for f in question.facts)
            kept += found
        rows.append((name, kept, lines / pages, seconds / pages))
    lines_out = [
        "# Table rows through PDF text extraction",
        "",
        f"Command: `{command_line()}`; {len(questions)} table questions of the "
        "labelled set, their gold pages.",
        "",
        "| method | rows kept (fact + a key word on one line) | lines a page | s a page |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, kept, per_page, secs in rows:
        lines_out.append(
            f"| {name} | {kept} of {len(questions)} | {per_page:.0f} | {secs:.2f} |"
        )
    keys = ["pypdf", "ragapp", "pypdf_layout", "pdfplumber"]
    summary = {key: kept for key, (_, kept, _, _) in zip(keys, rows, strict=True)}
    report_write("tables.md", "\n".join(lines_out) + "\n", summary)


if __name__ == "__main__":
    main()
