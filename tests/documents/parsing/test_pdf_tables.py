"""PDF tables come out as rows that keep their column headers."""

from __future__ import annotations

import pytest

from ragapp.documents.chunking import passage_sentences
from ragapp.documents.parsing import ParseLimits, parse_bytes
from ragapp.documents.parsing.base import PDF
from tests.files import placed_text_pdf

PLANS = [("Basic", "10", "5"), ("Team", "45", "25"), ("Business", "120", "100")]


def plans_table(top: float = 600) -> list[tuple[float, float, str]]:
    pieces = [
        (72, 700, "Our plans compare as follows, billed every month."),
        (72, 660, "Table 1. Plans and prices"),
        (72, 640, "Plan"),
        (200, 640, "Price"),
        (320, 640, "Seats"),
    ]
    for index, (plan, price, seats) in enumerate(PLANS):
        y = top - 16 * index
        pieces += [(72, y, plan), (200, y, price), (320, y, seats)]
    pieces.append((72, top - 80, "Prices exclude tax."))
    return pieces


def parse(pieces: list[tuple[float, float, str]]):
    return parse_bytes(placed_text_pdf(pieces), content_type=PDF, limits=ParseLimits())


def test_a_table_row_keeps_its_column_headers():
    document = parse(plans_table())
    tables = [block for block in document.blocks if block.kind == "table"]
    assert len(tables) == 1
    assert tables[0].page == 1
    assert tables[0].text.splitlines() == [
        "Plan: Basic | Price: 10 | Seats: 5",
        "Plan: Team | Price: 45 | Seats: 25",
        "Plan: Business | Price: 120 | Seats: 100",
    ]
    prose = " ".join(b.text for b in document.blocks if b.kind == "paragraph")
    # The text around the table stays, in order, and the raw cells go.
    assert prose.index("Our plans compare") < prose.index("Table 1. Plans")
    assert "Prices exclude tax." in prose
    assert "Basic" not in prose


def test_a_cited_row_is_a_sentence_of_its_own():
    document = parse(plans_table())
    table = next(block for block in document.blocks if block.kind == "table")
    sentences = [s.text for s in passage_sentences("Plans we sell.\n" + table.text)]
    assert sentences == ["Plans we sell.", *table.text.splitlines()]


def test_two_columns_of_prose_are_not_a_table():
    left = "The quick brown fox jumps over the lazy dog again and again"
    right = "while the other column of the page says something else entirely"
    pieces = [(72, 700, "Table 2. A caption that makes the page look tabular")]
    pieces += [(72, 680 - 14 * i, left) for i in range(6)]
    pieces += [(330, 680 - 14 * i, right) for i in range(6)]
    document = parse(pieces)
    assert [block.kind for block in document.blocks] == ["paragraph"]
    assert document.blocks[0].text.count("quick brown fox") == 6


def test_a_page_without_a_caption_or_figures_is_left_alone():
    pieces = [
        (x, 700 - 16 * row, f"word{row}{x}") for row in range(5) for x in (72, 200, 320)
    ]
    document = parse(pieces)
    assert all(block.kind == "paragraph" for block in document.blocks)


@pytest.mark.slow
def test_eval_pdf_tables_keep_rows_with_headers(eval_pdfs):
    nist = parse_bytes(
        (eval_pdfs / "NIST.SP.800-61r2.pdf").read_bytes(),
        content_type=PDF,
        limits=ParseLimits(),
    )
    rows = {
        line
        for block in nist.blocks
        if block.kind == "table" and block.page == 42
        for line in block.text.splitlines()
    }
    assert (
        "Category: Medium | Definition: Organization has lost the ability to provide "
        "a critical service to a subset of system users"
    ) in rows
    taxes = parse_bytes(
        (eval_pdfs / "i1040gi.pdf").read_bytes(),
        content_type=PDF,
        limits=ParseLimits(),
    )
    tax_rows = [
        line
        for block in taxes.blocks
        if block.kind == "table" and block.page == 83
        for line in block.text.splitlines()
    ]
    row = next(line for line in tax_rows if "At least: 40,100 |" in line)
    assert "But less than: 40,150 | Single: 5,770 |" in row
    assert "Head of a household: 5,351" in row


def test_the_answerer_prefers_the_row_that_brackets_an_asked_figure():
    from ragapp.answers.extractive import _row_holds

    row = "Income at least: 63,450 | But less than: 63,500 | Single: 11,620"
    assert _row_holds(row, {63_480.0})
    assert _row_holds(row, {11_620.0})
    assert not _row_holds(row, {63_550.0})
    assert not _row_holds("Income at least 63,450 but less than 63,500.", {63_480.0})
    # Figures in a header are no values: "If line 43 ... At least: 63,500".
    assert not _row_holds(
        "If line 43 is at least: 63,500 | But less than: 63,550", {63_480.0}
    )


def test_a_bulleted_list_is_not_a_table():
    pieces = [(72, 700, "Table 3. What a handler records")]
    items = ["the current status of the incident", "a summary of it", "who handled it"]
    for index, item in enumerate(items):
        pieces += [(90, 680 - 14 * index, "-"), (110, 680 - 14 * index, item)]
    document = parse(pieces)
    assert all(block.kind == "paragraph" for block in document.blocks)
