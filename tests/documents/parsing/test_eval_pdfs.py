"""The five real PDFs of shared/eval parse with the right pages (read in place)."""

from __future__ import annotations

import re

import pytest

from ragapp.documents.parsing import ParseLimits, parse_bytes, sniff_content_type
from ragapp.documents.parsing.base import PDF

# file, pages, page of the sentence, the sentence (as printed on that page)
KNOWN = [
    (
        "NIST.SP.800-207.pdf",
        59,
        20,
        "Enterprise public key infrastructure (PKI): This system is responsible for "
        "generating and logging certificates issued by the enterprise to resources",
    ),
    (
        "NIST.SP.800-61r2.pdf",
        79,
        30,
        "The incident response process has several phases. The initial phase involves "
        "establishing and training an incident response team",
    ),
    (
        "cidr2021_paper17.pdf",
        8,
        3,
        "First, the top problem reported by enterprise data users today is usually "
        "data quality and reliability",
    ),
    (
        "hf_transformers.pdf",
        8,
        4,
        "Practically, all models follow the same hierarchy of abstraction",
    ),
    (
        "i1040gi.pdf",
        107,
        15,
        "enter the child's name on line 4. If you don\u2019t enter the name, it will "
        "take us longer to process your return",
    ),
]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "pages", "page", "sentence"), KNOWN)
def test_eval_pdf_keeps_a_known_sentence_on_its_page(
    eval_pdfs, name, pages, page, sentence
):
    data = (eval_pdfs / name).read_bytes()
    assert sniff_content_type(data, name) == PDF
    document = parse_bytes(data, content_type=PDF, limits=ParseLimits())
    assert document.page_count == pages
    assert document.pages_without_text == []
    by_page: dict[int, str] = {}
    for block in document.blocks:
        by_page[block.page] = by_page.get(block.page, "") + " " + block.text
    assert sentence in flat(by_page[page])
    assert all(
        sentence not in flat(text) for number, text in by_page.items() if number != page
    )
    assert set(by_page) <= set(range(1, pages + 1))


def test_bookmarks_name_the_sections_of_a_report(eval_pdfs):
    data = (eval_pdfs / "NIST.SP.800-207.pdf").read_bytes()
    document = parse_bytes(data, content_type=PDF, limits=ParseLimits())
    assert document.title == "Zero Trust Architecture"
    headings = {block.heading for block in document.blocks if block.page == 20}
    assert (
        "3 Logical Components of Zero Trust Architecture > 3.1 Variations of Zero Trust Architecture Approaches"
        in headings
    )
