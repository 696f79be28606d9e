"""Check the labelled QA bench against the text of the PDFs it was written from.

The set (bench/qa/questions.jsonl) holds questions written by hand from the
five eval PDFs in ../shared/eval/pdfs: facts, definitions, numbers, table
lookups, answers that need two pages, paraphrases that avoid the document's
words, and plausible near-misses the documents do not answer. Each answerable
question names its gold pages (physical PDF page numbers, 1-based, not the
printed page labels) and 1-3 short facts a correct answer must contain.

Split rule, fixed when the questions were written and never changed after
seeing results: within each kind, questions alternate tune, measure, tune, ...
in file order. Tune on "tune"; "measure" is only ever measured.

A label is bad when a field is missing or of the wrong type, an id repeats, a
gold page is outside the PDF, a fact is on none of its question's gold pages
(a "two_pages" question must also have a fact on each of its pages), an
unanswerable question has pages or facts, or a kind or a document is missing
from one of the splits. Page text is pypdf's, in its plain and its layout
mode (table rows may survive only in the latter), normalised on both sides
(NFKC, casefold, plain quotes, a hyphenated line break read both joined and
as a real hyphen, whitespace collapsed, thousands separators dropped) so a
fact matches what a reader sees.

    .venv/bin/python bench/qa_labels.py

Prints every bad label, a summary per document, kind and split, and ends with
a key=value line; exits non-zero when any label is bad. bench/qa.py imports
`load_questions()`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import eval_path

QUESTIONS = Path(__file__).resolve().parent / "qa" / "questions.jsonl"

KINDS = (
    "fact",
    "definition",
    "number",
    "table",
    "two_pages",
    "paraphrase",
    "unanswerable",
)
SPLITS = ("tune", "measure")
MAX_FACTS = 3

# Field name -> (type, required). `bool` is a subclass of `int`, so page
# numbers are checked for it separately.
FIELDS: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "document": (str, True),
    "question": (str, True),
    "kind": (str, True),
    "gold_pages": (list, True),
    "facts": (list, True),
    "split": (str, True),
    "note": (str, False),
}


class LabelError(ValueError):
    """The question set does not load: each line of the message is one problem."""


@dataclass(frozen=True)
class Question:
    """One labelled question; `gold_pages` are physical, 1-based PDF pages."""

    id: str
    document: str
    question: str
    kind: str
    gold_pages: tuple[int, ...]
    facts: tuple[str, ...]
    split: str
    note: str = ""

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable"


# --- Reading and field checks -----------------------------------------------------


def read_records(path: Path) -> list[tuple[int, Any]]:
    """Return (line number, parsed JSON or the raw line if it is not JSON)."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError:
            records.append((number, line))
    return records


def field_problems(record: Any) -> list[str]:
    """Return what is wrong with one record's fields, without reading any PDF."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = [f"unknown field {name!r}" for name in record if name not in FIELDS]
    for name, (kind, required) in FIELDS.items():
        if name not in record:
            if required:
                problems.append(f"missing field {name!r}")
        elif not isinstance(record[name], kind):
            problems.append(f"{name} should be {kind.__name__}, not {record[name]!r}")
        elif kind is str and not record[name].strip():
            problems.append(f"{name} is empty")
    if problems:
        return problems

    if record["kind"] not in KINDS:
        problems.append(f"kind {record['kind']!r} is not one of {', '.join(KINDS)}")
    if record["split"] not in SPLITS:
        problems.append(f"split {record['split']!r} is not tune or measure")
    pages, facts = record["gold_pages"], record["facts"]
    if any(isinstance(p, bool) or not isinstance(p, int) for p in pages):
        problems.append(f"gold_pages should be whole page numbers, not {pages!r}")
    if any(not isinstance(f, str) or not f.strip() for f in facts):
        problems.append(f"facts should be non-empty strings, not {facts!r}")
    if problems:
        return problems

    if len(set(pages)) != len(pages):
        problems.append(f"gold_pages repeat a page: {pages}")
    if record["kind"] == "unanswerable":
        if pages or facts:
            problems.append(f"unanswerable but has gold_pages {pages} / facts {facts}")
    else:
        if not pages:
            problems.append("answerable but has no gold_pages")
        if not 1 <= len(facts) <= MAX_FACTS:
            problems.append(f"needs 1-{MAX_FACTS} facts, has {len(facts)}")
        if record["kind"] == "two_pages" and len(pages) < 2:
            problems.append(f"two_pages needs at least two gold pages, has {pages}")
    return problems


def _question(record: dict[str, Any]) -> Question:
    return Question(
        id=record["id"],
        document=record["document"],
        question=record["question"],
        kind=record["kind"],
        gold_pages=tuple(record["gold_pages"]),
        facts=tuple(record["facts"]),
        split=record["split"],
        note=record.get("note", ""),
    )


def _parse(path: Path) -> tuple[list[Question], list[str]]:
    """Return the well-formed questions and a problem line for each bad record."""
    questions, problems = [], []
    seen: dict[str, int] = {}
    for number, record in read_records(path):
        label = f"line {number}"
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            label = f"{record['id']} (line {number})"
            if record["id"] in seen:
                problems.append(
                    f"{label}: id repeats the one on line {seen[record['id']]}"
                )
            seen.setdefault(record["id"], number)
        found = field_problems(record)
        problems.extend(f"{label}: {problem}" for problem in found)
        if not found:
            questions.append(_question(record))
    return questions, problems


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Return the question set, in file order; raise LabelError on bad fields.

    Only the fields are checked here (no PDF is read); run this module to
    check the labels against the page text.
    """
    questions, problems = _parse(path)
    if problems:
        raise LabelError("\n".join(problems))
    return questions


# --- Page text ----------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_HYPHEN_BREAK = re.compile(r"(?<=\w)-[ \t]*\n\s*(?=\w)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def normalise_variants(text: str) -> tuple[str, ...]:
    """Return `text` normalised for matching, once per reading of its line breaks.

    A hyphen at a line break is usually a split word ("infor-\\nmation") but
    sometimes a real one ("low-\\ncost"); both readings are kept so either
    spelling of the fact matches.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    text = text.replace("\u00ad", "")
    variants = {_HYPHEN_BREAK.sub("", text), _HYPHEN_BREAK.sub("-", text)}
    return tuple(
        _THOUSANDS.sub("", re.sub(r"\s+", " ", variant).strip())
        for variant in sorted(variants)
    )


def _edge(char: str) -> str:
    """Return the character class a fact's edge `char` must not run on into."""
    if char.isdigit():
        return r"\d"
    return r"[^\W\d_]" if char.isalpha() else ""


def contains(haystack: str, fact: str) -> bool:
    """Whether normalised `fact` occurs in `haystack`, not inside a longer word or number.

    Only a letter continuing a word or a digit continuing a number counts as
    running on: pypdf glues footnote marks to words ("kindervag1").
    """
    start, end = _edge(fact[:1]), _edge(fact[-1:])
    pattern = (
        (f"(?<!{start})" if start else "")
        + re.escape(fact)
        + (f"(?!{end})" if end else "")
    )
    return re.search(pattern, haystack) is not None


class PageText:
    """The eval PDFs' page text, read lazily and kept per (document, page, mode)."""

    MODES = ("plain", "layout")

    def __init__(self, pdf_dir: Path) -> None:
        self.pdf_dir = pdf_dir
        self._readers: dict[str, Any] = {}
        self._texts: dict[tuple[str, int, str], tuple[str, ...]] = {}

    def has(self, document: str) -> bool:
        return (self.pdf_dir / document).is_file()

    def _reader(self, document: str) -> Any:
        if document not in self._readers:
            from pypdf import PdfReader

            # The 1040 booklet's rotated margin text and a duplicate /ToUnicode
            # key make pypdf warn on every page; neither touches the body text.
            logging.getLogger("pypdf").setLevel(logging.ERROR)
            self._readers[document] = PdfReader(self.pdf_dir / document)
        return self._readers[document]

    def page_count(self, document: str) -> int:
        return len(self._reader(document).pages)

    def texts(self, document: str, page: int, mode: str) -> tuple[str, ...]:
        """Return the normalised variants of physical `page` (1-based) in `mode`."""
        key = (document, page, mode)
        if key not in self._texts:
            pdf_page = self._reader(document).pages[page - 1]
            raw = (
                pdf_page.extract_text(extraction_mode="layout")
                if mode == "layout"
                else pdf_page.extract_text()
            )
            self._texts[key] = normalise_variants(raw or "")
        return self._texts[key]

    def holds(self, document: str, page: int, fact: str) -> bool:
        """Whether `fact` is on the page in either extraction mode.

        Layout mode is read only when the plain text lacks the fact: it is the
        slower of the two and needed only for some table rows.
        """
        wanted = set(normalise_variants(fact))
        return any(
            contains(text, form)
            for mode in self.MODES
            for text in self.texts(document, page, mode)
            for form in wanted
        )


# --- Label checks -------------------------------------------------------------------


def label_problems(questions: Sequence[Question], pages: PageText) -> list[str]:
    """Return each label the page text contradicts, and any split missing a kind or document."""
    problems = []
    for q in questions:
        if not pages.has(q.document):
            problems.append(f"{q.id}: no PDF {q.document!r} in {pages.pdf_dir}")
            continue
        count = pages.page_count(q.document)
        outside = [p for p in q.gold_pages if not 1 <= p <= count]
        if outside:
            problems.append(
                f"{q.id}: gold pages {outside} outside {q.document} (1-{count})"
            )
            continue
        held = {
            fact: [p for p in q.gold_pages if pages.holds(q.document, p, fact)]
            for fact in q.facts
        }
        problems.extend(
            f"{q.id}: fact {fact!r} is on none of pages {list(q.gold_pages)}"
            f" of {q.document}"
            for fact, on in held.items()
            if not on
        )
        if q.kind == "two_pages":
            bare = [p for p in q.gold_pages if not any(p in on for on in held.values())]
            if bare:
                problems.append(
                    f"{q.id}: two_pages but no fact is on page(s) {bare}"
                    f" of {q.document}"
                )
    problems.extend(split_problems(questions))
    return problems


def split_problems(questions: Sequence[Question]) -> list[str]:
    """Return each kind or document missing from one of the splits."""
    problems = []
    for field in ("kind", "document"):
        for value in sorted({getattr(q, field) for q in questions}):
            have = {q.split for q in questions if getattr(q, field) == value}
            problems.extend(
                f"split: {field} {value!r} has no {split!r} question"
                for split in SPLITS
                if split not in have
            )
    return problems


def check(
    path: Path = QUESTIONS, pdf_dir: Path | None = None
) -> tuple[list[Question], list[str]]:
    """Return the well-formed questions and every bad label, fields and text alike."""
    questions, problems = _parse(path)
    pages = PageText(pdf_dir or eval_path("pdfs", "SOURCE.md"))
    problems.extend(label_problems(questions, pages))
    return questions, problems


# --- Report -------------------------------------------------------------------------


def _table(field: str, rows: Sequence[str], questions: Sequence[Question]) -> str:
    width = max(len(field), *(len(row) for row in rows))
    lines = [f"{field:<{width}}  total  tune  measure"]
    for row in rows:
        mine = [q for q in questions if getattr(q, field) == row]
        tune = sum(q.split == "tune" for q in mine)
        lines.append(
            f"{row:<{width}}  {len(mine):>5}  {tune:>4}  {len(mine) - tune:>7}"
        )
    return "\n".join(lines)


def summary(questions: Sequence[Question]) -> str:
    """Return the counts per document and per kind, each split into tune/measure."""
    documents = sorted({q.document for q in questions})
    kinds = [kind for kind in KINDS if any(q.kind == kind for q in questions)]
    return (
        _table("document", documents, questions)
        + "\n\n"
        + _table("kind", kinds, questions)
    )


def main() -> int:
    questions, problems = check()
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        print()
    print(summary(questions))
    splits = Counter(q.split for q in questions)
    print(
        f"questions={len(questions)} documents={len({q.document for q in questions})}"
        f" tune={splits['tune']} measure={splits['measure']} bad={len(problems)}",
        flush=True,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
