"""Cited PDF pages as PNGs: real eval PDFs, real chunks, real sandboxed renders.

Where the highlight should be is worked out here, independently of the code
under test: pdfium's own search finds the passage's first and last words,
and the characters between them are the region. The highlight is what
changed between the page drawn with and without it.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
import time

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageChops, ImageDraw

from ragapp.documents import ingestion, page_images, services
from ragapp.documents.exceptions import PageImageError
from ragapp.documents.models import Chunk, Document
from ragapp.documents.page_images import page_image, render_page_isolated
from ragapp.documents.page_render_child import fold, match_ranges
from ragapp.documents.parsing.base import PDF
from tests.factories import CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db

PAPER = "cidr2021_paper17.pdf"  # 8 pages, two columns
WIDTH = 1000
CHANGED = 40  # a channel moved by more than this: the highlight, not quantising
MARGIN = 4  # pixels allowed around pdfium's character boxes


@pytest.fixture(autouse=True)
def storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DATA_DIR = tmp_path / "data"
    return settings


@pytest.fixture
def paper(eval_pdfs) -> Document:
    """The paper uploaded and parsed by the pipeline, so its chunks are real."""
    outcome = services.document_upload_path(
        collection=CollectionFactory(), path=eval_pdfs / PAPER
    )
    assert ingestion.document_parse(document_id=outcome.document.pk)
    return Document.objects.get(pk=outcome.document.pk)


def chunk_starting(document: Document, words: str) -> Chunk:
    chunks = [
        c for c in document.chunks.all() if flat(c.text).startswith(words)
    ]  # fmt: skip
    assert len(chunks) == 1, [flat(c.text)[:60] for c in document.chunks.all()]
    return chunks[0]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def rgb(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def changed_mask(plain: Image.Image, marked: Image.Image) -> Image.Image:
    """Return an L mask of the pixels the highlight moved by more than CHANGED."""
    red, green, blue = ImageChops.difference(plain, marked).split()
    most = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return most.point(lambda value: 255 if value > CHANGED else 0)


class PageText:
    """pdfium's view of one page, opened here on a trusted file."""

    def __init__(self, path, page_number: int, width: int = WIDTH) -> None:
        self.document = pdfium.PdfDocument(path)
        self.page = self.document[page_number - 1]
        assert self.page.get_rotation() == 0
        assert self.page.get_mediabox()[:2] == (0, 0)
        self.text = self.page.get_textpage()
        self.scale = width / self.page.get_width()
        self.height = self.page.get_height()

    def find(self, phrase: str) -> tuple[int, int]:
        found = self.text.search(phrase, match_case=False).get_next()
        assert found, f"pdfium does not find {phrase!r}"
        return found[0], found[0] + found[1] - 1

    def boxes(self, first: str, last: str) -> list[tuple[int, int, int, int]]:
        """Pixel boxes of the characters from `first`'s start to `last`'s end."""
        start, end = self.find(first)[0], self.find(last)[1]
        assert start < end
        boxes = []
        for index in range(start, end + 1):
            if pdfium_c.FPDFText_IsGenerated(self.text, index) == 1:
                continue
            left, bottom, right, top = self.text.get_charbox(index, loose=True)
            if right <= left:
                continue
            boxes.append(
                (
                    int(left * self.scale),
                    int((self.height - top) * self.scale),
                    int(right * self.scale) + 1,
                    int((self.height - bottom) * self.scale) + 1,
                )
            )
        return boxes

    def region(self, size, first: str, last: str) -> Image.Image:
        """The passage's characters, and the spaces between neighbours on a line."""
        mask = Image.new("L", size, 0)
        draw = ImageDraw.Draw(mask)
        boxes = self.boxes(first, last)
        for (x0, y0, x1, y1), after in zip(boxes, [*boxes[1:], None], strict=True):
            if after and abs(after[1] - y0) < (y1 - y0) / 2 and after[0] >= x1:
                x1, y1 = after[0], max(y1, after[3])  # same line, reading on
            draw.rectangle((x0 - MARGIN, y0 - MARGIN, x1 + MARGIN, y1 + MARGIN), 255)
        return mask

    def line_of(self, phrase: str) -> tuple[range, int]:
        """Return the pixel columns and the middle row of a phrase on one line."""
        start, end = self.find(phrase)
        left, bottom = self.text.get_charbox(start)[:2]
        right, top = self.text.get_charbox(end)[2:]
        middle = int((self.height - (bottom + top) / 2) * self.scale)
        return range(int(left * self.scale), int(right * self.scale)), middle


def assert_highlight_covers(mask, changed, boxes) -> None:
    """Nothing changed outside the region; the passage's letters did change."""
    outside = ImageChops.subtract(changed, mask)
    assert outside.getbbox() is None, (
        f"highlight outside the passage at {outside.getbbox()}"
    )
    hit = sum(
        changed.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)) == 255
        for x0, y0, x1, y1 in boxes
    )
    assert hit >= 0.97 * len(boxes), (hit, len(boxes))


def test_a_page_renders_as_a_png_of_the_requested_width(paper):
    image = Image.open(io.BytesIO(page_image(document=paper, page_number=3, width=600)))
    assert image.format == "PNG"
    assert image.size == (600, math.ceil(600 * 792 / 612))


@pytest.mark.parametrize(("asked", "given"), [(50, 200), (5000, 2000)])
def test_the_width_is_kept_within_bounds(paper, asked, given):
    png = page_image(document=paper, page_number=1, width=asked)
    assert Image.open(io.BytesIO(png)).size[0] == given


def test_a_chunk_is_highlighted_in_yellow_where_pdfium_has_its_characters(
    paper, eval_pdfs
):
    chunk = chunk_starting(paper, "In contrast, in the first-generation platforms")
    assert (chunk.page_start, chunk.page_end) == (3, 3)
    plain = rgb(page_image(document=paper, page_number=3))
    marked = rgb(page_image(document=paper, page_number=3, highlight=chunk.text))
    page = PageText(eval_pdfs / PAPER, 3)
    first, last = "In contrast, in the first", "run efficiently over ODBC/JDBC."
    changed = changed_mask(plain, marked)
    assert_highlight_covers(
        page.region(plain.size, first, last), changed, page.boxes(first, last)
    )
    # Yellow: paper under the passage keeps red, loses blue.
    columns, y = page.line_of("immediate access")
    for x in columns:
        before, after = plain.getpixel((x, y)), marked.getpixel((x, y))
        if min(before) >= 250:
            assert after[0] >= 240 and after[1] >= 200 and after[2] <= 190, after


def test_one_sentence_of_a_chunk_highlights_that_sentence_alone(paper, eval_pdfs):
    sentence = (
        "Second, more and more business applications require up-to-date data, "
        "but today\u2019s architectures increase data staleness by having a separate "
        "staging area for incoming data before the warehouse and using periodic "
        "ETL/ELT jobs to load it."
    )
    plain = rgb(page_image(document=paper, page_number=3))
    marked = rgb(page_image(document=paper, page_number=3, highlight=sentence))
    page = PageText(eval_pdfs / PAPER, 3)
    first, last = "Second, more and more", "jobs to load it."
    assert_highlight_covers(
        page.region(plain.size, first, last),
        changed_mask(plain, marked),
        page.boxes(first, last),
    )


def test_a_passage_over_two_pages_is_highlighted_on_each(paper, eval_pdfs):
    chunk = chunk_starting(paper, "2 Motivation: Data Warehousing Challenges")
    assert (chunk.page_start, chunk.page_end) == (2, 3)
    # pypdf kept page 3's running header inside the passage, so it is
    # highlighted too: it is part of the quoted text.
    assert "challenges is Lakehouse: A New Generation" in flat(chunk.text)
    for number, first, last in [
        (2, "2 Motivation: Data Warehousing", "each of these challenges is"),
        (3, "Lakehouse: A New Generation", "exacerbates this problem."),
    ]:
        plain = rgb(page_image(document=paper, page_number=number))
        marked = rgb(
            page_image(document=paper, page_number=number, highlight=chunk.text)
        )
        page = PageText(eval_pdfs / PAPER, number)
        changed = changed_mask(plain, marked)
        region = page.region(plain.size, first, last)
        assert_highlight_covers(region, changed, page.boxes(first, last))


def test_a_passage_not_on_the_page_leaves_the_page_unmarked(paper):
    plain = rgb(page_image(document=paper, page_number=5))
    chunk = chunk_starting(paper, "In contrast, in the first-generation platforms")
    for highlight in (chunk.text, "zebra quantum marmalade xylophone"):
        marked = rgb(page_image(document=paper, page_number=5, highlight=highlight))
        assert ImageChops.difference(plain, marked).getbbox() is None


def test_a_second_request_is_served_from_the_cache_without_a_render(paper, settings):
    chunk = chunk_starting(paper, "In contrast, in the first-generation platforms")
    first = page_image(document=paper, page_number=3, highlight=chunk.text)
    runs = page_images.child_runs
    again = page_image(document=paper, page_number=3, highlight=chunk.text)
    assert again == first
    assert page_images.child_runs == runs
    cached = list((settings.DATA_DIR / "page-images").glob(f"{paper.sha256}-p3-*"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    page_image(document=paper, page_number=3, highlight="another passage")
    assert page_images.child_runs == runs + 1


def test_the_cache_drops_the_least_recently_used_images_beyond_its_bound(tmp_path):
    now = time.time()
    for age in range(10):
        path = tmp_path / f"page-{age}.png"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age * 60, now - age * 60))
    page_images.cache_prune(tmp_path, max_bytes=5000)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [f"page-{age}.png" for age in range(4)]


def test_a_page_past_the_last_is_refused_with_the_page_count(paper):
    with pytest.raises(
        PageImageError, match="Page 9 does not exist; the document has 8"
    ):
        page_image(document=paper, page_number=9)
    with pytest.raises(PageImageError, match="Page 0 does not exist"):
        page_image(document=paper, page_number=0)


def test_the_child_finds_a_page_past_the_last_when_the_count_is_unknown(paper):
    Document.objects.filter(pk=paper.pk).update(page_count=None)
    paper.refresh_from_db()
    with pytest.raises(PageImageError, match="the document has 8") as caught:
        page_image(document=paper, page_number=40)
    assert caught.value.code == "page_out_of_range"


def test_a_document_that_is_not_a_pdf_has_no_page_images():
    document = DocumentFactory(content_type="text/markdown")
    with pytest.raises(PageImageError, match="Only PDF documents") as caught:
        page_image(document=document, page_number=1)
    assert caught.value.code == "not_pdf"


def test_a_pdf_whose_file_is_gone_is_refused_with_a_reason():
    document = DocumentFactory(content_type=PDF, file="documents/gone")
    with pytest.raises(PageImageError, match="no longer stored"):
        page_image(document=document, page_number=1)
    with pytest.raises(PageImageError, match="no longer stored"):
        page_image(document=DocumentFactory(content_type=PDF), page_number=1)


def test_a_corrupt_pdf_is_refused_as_damaged():
    document = DocumentFactory(content_type=PDF)
    junk = b"%PDF-1.7\n" + random.Random(7).randbytes(3000)
    document.file.save("junk", ContentFile(junk))
    with pytest.raises(PageImageError, match="damaged") as caught:
        page_image(document=document, page_number=1)
    assert caught.value.code == "corrupt"


def test_a_render_over_the_time_limit_is_stopped(eval_pdfs):
    with pytest.raises(PageImageError, match="took too long") as caught:
        render_page_isolated(
            eval_pdfs / PAPER,
            page_number=1,
            width=WIDTH,
            highlight="",
            timeout_seconds=0.001,
            memory_bytes=512 * 1024 * 1024,
        )
    assert caught.value.code == "timeout"


@pytest.mark.parametrize("megabytes", [40, 80])
def test_a_render_over_the_memory_limit_is_stopped(eval_pdfs, megabytes):
    # 40 MB stops pdfium itself (it aborts), 80 MB Pillow after the render; the
    # page needs about 130 MB at this width.
    with pytest.raises(PageImageError, match="more memory") as caught:
        render_page_isolated(
            eval_pdfs / "i1040gi.pdf",
            page_number=80,  # a dense tax table
            width=2000,
            highlight="",
            timeout_seconds=30,
            memory_bytes=megabytes * 1024 * 1024,
        )
    assert caught.value.code == "too_large"


def test_page_count_is_the_parsed_count_for_pdfs_only(paper):
    assert page_images.page_count(document=paper) == 8
    assert page_images.page_count(document=DocumentFactory()) is None


# --- matching the passage to the page's text layer ----------------------------


def shown(page: str, highlight: str) -> list[str]:
    haystack = fold(page)
    return [
        page[haystack.origin[start] : haystack.origin[end - 1] + 1]
        for start, end in match_ranges(fold(highlight), haystack)
    ]


def test_hyphenation_ligatures_case_and_line_breaks_do_not_hide_a_passage():
    page = (
        "Running header 12\r\nWords before it. The eﬃcient data ware\x02house "
        "stores FILES\r\nreliably, with ﬁve   copies. Words after it."
    )
    highlight = (
        "the efficient data ware- house stores files reliably, with five copies."
    )
    assert shown(page, highlight) == [
        "The eﬃcient data ware\x02house stores FILES\r\nreliably, with ﬁve   copies"
    ]


def test_only_the_part_of_a_passage_on_this_page_is_found():
    passage = (
        "The policy engine decides whether access is granted to a resource. "
        "It relies on the trust algorithm and on outside sources of data. "
        "The policy administrator then opens or closes the communication path."
    )
    page = (
        "NIST SP 800-207 ZERO TRUST ARCHITECTURE\r\n"
        "It relies on the trust algorithm and on outside sources of data. "
        "The policy administrator then opens or closes the communication path. "
        "The next section describes deployment models."
    )
    assert shown(page, passage) == [
        "It relies on the trust algorithm and on outside sources of data. "
        "The policy administrator then opens or closes the communication path"
    ]


def test_a_phrase_the_page_merely_shares_with_the_passage_is_not_marked():
    passage = (
        "Agencies should treat every request as if it came from an open network, "
        "and the policy enforcement point decides each one on its own merits."
    )
    page = (
        "Chapter 3 covers the policy enforcement point in detail. Unrelated text "
        "about budgets, staffing and procurement follows here."
    )
    assert shown(page, passage) == []
