"""PDFs: page numbers, titles, and every broken or hostile PDF ends in a ParseError."""

from __future__ import annotations

import io
import random
import subprocess
import sys

import pypdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from ragapp.documents.parsing import (
    ParseError,
    ParseLimits,
    parse_bytes,
    parse_file_isolated,
)
from ragapp.documents.parsing.base import PDF
from ragapp.documents.parsing.ocr import ocr_unavailable_reason
from ragapp.documents.parsing.pdf import strip_repeated_edges
from tests.files import nested_flate_bomb_pdf, pdf_from_objects, stream, text_pdf

LIMITS = ParseLimits()


def parse(data: bytes, limits: ParseLimits = LIMITS):
    return parse_bytes(data, content_type=PDF, limits=limits)


def parse_error(data: bytes, limits: ParseLimits = LIMITS) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(data, limits)
    return caught.value


def test_a_multi_page_pdf_keeps_page_numbers():
    data = text_pdf(
        [
            ["Alpha starts here.", "More alpha."],
            ["Bravo is second."],
            [],
            ["Delta (last)."],
        ],
        title="Field manual",
    )
    document = parse(data)
    assert document.page_count == 4
    assert document.title == "Field manual"
    assert [(b.page, b.text) for b in document.blocks] == [
        (1, "Alpha starts here.\nMore alpha."),
        (2, "Bravo is second."),
        (4, "Delta (last)."),
    ]
    assert document.pages_without_text == [3]
    assert "Page 3 has no text layer." in document.warnings


def test_the_title_falls_back_to_the_first_line():
    assert parse(text_pdf([["Quarterly figures", "body"]])).title == "Quarterly figures"


def test_a_filename_in_the_title_metadata_is_ignored():
    document = parse(text_pdf([["Real heading"]], title="Microsoft Word - draft7.docx"))
    assert document.title == "Real heading"


def test_running_headers_and_page_numbers_are_dropped():
    bodies = ["Ants march.", "Bees hum.", "Cats nap.", "Dogs bark.", "Eels swim."]
    pages = [
        [f"ACME HANDBOOK rev {n}", body, f"More on {body.split()[0]}.", f"- {n} -"]
        for n, body in enumerate(bodies, start=1)
    ]
    document = parse(text_pdf(pages))
    assert [b.text for b in document.blocks] == [
        f"{body}\nMore on {body.split()[0]}." for body in bodies
    ]


def test_edge_stripping_leaves_short_documents_alone():
    texts = ["Header\nbody one", "Header\nbody two", "Header\nbody three"]
    assert strip_repeated_edges(texts) == texts


def test_a_pdf_without_pages_is_empty():
    buffer = io.BytesIO()
    pypdf.PdfWriter().write(buffer)
    error = parse_error(buffer.getvalue())
    assert error.code == "empty"
    assert str(error) == "The file is empty or has no pages."


def test_a_corrupt_pdf_is_corrupt():
    data = b"%PDF-1.7\n" + random.Random(3).randbytes(20_000)
    assert parse_error(data).code == "corrupt"


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_a_truncated_pdf_is_corrupt(fraction):
    data = text_pdf([["one"], ["two"], ["three"]])
    assert parse_error(data[: int(len(data) * fraction)]).code == "corrupt"


def test_a_truncated_real_pdf_is_corrupt(eval_pdfs):
    data = (eval_pdfs / "hf_transformers.pdf").read_bytes()
    assert parse_error(data[: len(data) // 2]).code == "corrupt"


def encrypted(data: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.encrypt(
        user_password=user_password, owner_password="owner-secret", algorithm="AES-256"
    )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_password_protected_pdf_is_encrypted():
    error = parse_error(encrypted(text_pdf([["secret plans"]]), "s3cret"))
    assert error.code == "encrypted"
    assert "password" in str(error)


def test_a_pdf_with_only_an_owner_password_is_read():
    document = parse(encrypted(text_pdf([["open to all readers"]]), ""))
    assert [b.text for b in document.blocks] == ["open to all readers"]


def test_a_binary_claimed_as_pdf_is_refused():
    with pytest.raises(ParseError) as caught:
        parse(random.Random(5).randbytes(4096))
    assert caught.value.code == "binary"


def test_an_exe_claimed_as_pdf_is_refused():
    with pytest.raises(ParseError) as caught:
        parse(b"MZ\x90\x00" + bytes(500))
    assert caught.value.code == "executable"


def scanned_pdf(lines: list[str]) -> bytes:
    """Return an image-only PDF: a page picture of text, no text layer."""
    page = Image.new("L", (1275, 1650), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=40)
    for index, line in enumerate(lines):
        draw.text((100, 150 + 90 * index), line, font=font, fill=0)
    buffer = io.BytesIO()
    page.save(buffer, "PDF", resolution=150)
    return buffer.getvalue()


SCAN_LINES = ["The harbour opens at seven.", "Boats register with the warden."]


def test_an_image_only_page_without_ocr_is_listed():
    document = parse(scanned_pdf(SCAN_LINES), ParseLimits(ocr=False))
    assert document.page_count == 1
    assert document.blocks == []
    assert document.pages_without_text == [1]
    assert "Page 1 has no text layer." in document.warnings


@pytest.mark.timeout(120)
def test_an_image_only_page_is_read_with_ocr_or_listed(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf(SCAN_LINES))
    document = parse_file_isolated(path, content_type=PDF, limits=LIMITS)
    if ocr_unavailable_reason() is not None:
        assert document.pages_without_text == [1]
        return
    text = " ".join(b.text for b in document.blocks).lower()
    assert "harbour opens at seven" in text
    assert "register with the warden" in text
    assert [b.page for b in document.blocks] == [1]
    assert document.pages_without_text == []
    assert any("read with OCR" in warning for warning in document.warnings)


def test_pages_over_the_limit_are_too_large():
    error = parse_error(text_pdf([["a"], ["b"], ["c"]]), ParseLimits(max_pages=2))
    assert error.code == "too_large"
    assert "3 pages" in str(error)


def test_text_over_the_character_limit_is_too_large():
    error = parse_error(text_pdf([["x" * 80], ["y" * 80]]), ParseLimits(max_chars=100))
    assert error.code == "too_large"


def test_a_nested_flate_bomb_stops_at_pypdfs_lowered_limit():
    data = nested_flate_bomb_pdf(64 * 1024 * 1024)  # a few kB on disk
    assert len(data) < 100_000
    error = parse_error(data, ParseLimits(max_decompressed_bytes=8 * 1024 * 1024))
    assert error.code == "too_large"


@pytest.mark.timeout(60)
def test_a_nested_flate_bomb_ends_in_a_parse_error_when_isolated(tmp_path):
    path = tmp_path / "bomb.pdf"
    path.write_bytes(nested_flate_bomb_pdf(1024 * 1024 * 1024, layers=3))
    limits = ParseLimits(timeout_seconds=30, memory_bytes=256 * 1024 * 1024)
    with pytest.raises(ParseError) as caught:
        parse_file_isolated(path, content_type=PDF, limits=limits)
    assert caught.value.code == "too_large"


@pytest.mark.timeout(60)
def test_a_child_out_of_memory_reports_too_large(tmp_path):
    # Nothing but RLIMIT_AS stops this one: 150 MB of text, no character cap.
    path = tmp_path / "huge.txt"
    path.write_bytes(b"all work and no play\n" * 7_500_000)
    limits = ParseLimits(
        timeout_seconds=30, memory_bytes=256 * 1024 * 1024, max_chars=10**10, ocr=False
    )
    with pytest.raises(ParseError) as caught:
        parse_file_isolated(path, content_type="text/plain", limits=limits)
    assert caught.value.code == "too_large"


def one_page_pdf(page_extra: bytes, *more: bytes) -> bytes:
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            + page_extra
            + b" >>",
            *more,
        ]
    )


def test_a_page_tree_cycle_is_corrupt():
    data = pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    )
    assert parse_error(data).code == "corrupt"


def test_an_xref_prev_cycle_is_survived():
    data = one_page_pdf(b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >>",
                        stream(b"BT /F1 12 Tf 72 700 Td (cycle) Tj ET"),
                        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")  # fmt: skip
    xref = int(data[data.rindex(b"startxref") + 9 :].split()[0])
    trailer = b"trailer\n<< /Size 6 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
    data = data[: data.rindex(b"trailer")] + trailer % (xref, xref)
    assert [b.text for b in parse(data).blocks] == ["cycle"]


def test_a_missing_root_with_a_huge_size_stops_early():
    objects = b"".join(
        b"%d 0 obj\n<< /A %d >>\nendobj\n" % (n, n) for n in range(1, 3000)
    )
    data = (
        b"%PDF-1.7\n"
        + objects
        + b"trailer\n<< /Size 99999999 >>\nstartxref\n0\n%%EOF\n"
    )
    assert parse_error(data).code in {"too_large", "corrupt"}


def test_an_lzw_bomb_stops_at_the_limit():
    from pypdf._codecs._codecs import LzwCodec

    bomb = LzwCodec().encode(b"a" * (6 * 1024 * 1024))
    data = one_page_pdf(
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >>",
        stream(bomb, b"/Filter /LZWDecode "),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    )
    error = parse_error(data, ParseLimits(max_decompressed_bytes=1024 * 1024))
    assert error.code == "too_large"


def test_an_image_declaring_ten_gigapixels_is_never_decoded():
    image = stream(
        b"\x00" * 100,
        b"/Type /XObject /Subtype /Image /Width 100000 /Height 100000 "
        b"/ColorSpace /DeviceGray /BitsPerComponent 8 ",
    )
    data = one_page_pdf(
        b"/Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R",
        image,
        stream(b"q 612 0 0 792 0 0 cm /Im1 Do Q"),
    )
    document = parse(data)
    assert document.pages_without_text == [1]


def test_a_text_pdf_never_loads_the_ocr_model(tmp_path):
    path = tmp_path / "text.pdf"
    path.write_bytes(text_pdf([["plain text"]]))
    script = (
        "import sys; from pathlib import Path\n"
        "from ragapp.documents.parsing import ParseLimits, parse_bytes\n"
        f"parse_bytes(Path({str(path)!r}).read_bytes(), content_type='application/pdf',"
        " limits=ParseLimits())\n"
        "print(sorted(m for m in ('rapidocr', 'onnxruntime', 'cv2') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
