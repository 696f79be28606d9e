"""Type checks against content (T18): content decides, names must not disagree."""

from __future__ import annotations

import random

import pytest

from ragapp.documents.parsing import (
    ParseError,
    UnsupportedTypeError,
    sniff_content_type,
)
from ragapp.documents.parsing.base import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT
from tests.files import docx_bytes, text_pdf, zip_bytes

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(200)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02"
XLSX_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.'
    b'spreadsheetml.sheet.main+xml"/></Types>'
)


def rejected(head: bytes, filename: str) -> str:
    with pytest.raises(UnsupportedTypeError) as caught:
        sniff_content_type(head, filename)
    return caught.value.code


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"%PDF-1.7\n1 0 obj", "report.pdf", PDF),
        (b"%PDF-1.4\n", "REPORT.PDF", PDF),
        (b"\n\n%PDF-1.4\n", "no-extension", PDF),
        (b"# Title\n\nSome text.\n", "notes.md", MARKDOWN),
        (b"# Title\n\nSome text.\n", "notes", MARKDOWN),
        (b"Just words.\n", "notes.txt", PLAIN_TEXT),
        (b"Just words.\n", "notes", PLAIN_TEXT),
        (b"<!DOCTYPE html><html><body>x</body></html>", "page.html", HTML),
        (b"<!DOCTYPE html><html><body>x</body></html>", "page", HTML),
        (b"<html><body>x</body></html>", "page.txt", PLAIN_TEXT),
        ("Grüße".encode("utf-16"), "greeting", PLAIN_TEXT),
        (b"The header reads %PDF-1.7 in every file.\n", "about.md", MARKDOWN),
    ],
)
def test_supported_content_gets_its_type(head, filename, expected):
    assert sniff_content_type(head, filename) == expected


def test_a_word_document_is_docx_by_its_package_parts():
    assert sniff_content_type(docx_bytes(), "letter.docx") == DOCX


def test_a_cut_off_word_document_is_docx_by_its_local_headers():
    head = docx_bytes()[:8000]  # the ZIP directory at the end is missing
    assert sniff_content_type(head, "letter.docx") == DOCX


def test_an_exe_named_pdf_is_an_executable():
    assert rejected(EXE, "invoice.pdf") == "executable"


def test_an_elf_binary_is_an_executable():
    assert rejected(b"\x7fELF\x02\x01\x01" + bytes(100), "notes.txt") == "executable"


def test_random_binary_named_pdf_is_binary():
    assert rejected(random.Random(7).randbytes(4096), "scan.pdf") == "binary"


def test_an_image_named_pdf_is_an_image():
    assert rejected(PNG + bytes(64), "scan.pdf") == "image"


def test_html_renamed_pdf_is_a_mismatch():
    html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
    assert rejected(html, "invoice.pdf") == "type_mismatch"


def test_a_pdf_named_txt_is_a_mismatch():
    assert rejected(text_pdf([["hello"]]), "notes.txt") == "type_mismatch"


def test_a_plain_zip_named_docx_is_not_docx():
    assert rejected(zip_bytes([("readme.txt", b"hi")]), "letter.docx") == "not_docx"


def test_an_xlsx_named_docx_is_not_docx():
    xlsx = zip_bytes(
        [("[Content_Types].xml", XLSX_TYPES), ("xl/workbook.xml", b"<x/>")]
    )
    assert rejected(xlsx, "letter.docx") == "not_docx"


def test_a_zip_is_an_archive():
    assert rejected(zip_bytes([("a.txt", b"hi")]), "bundle.zip") == "archive"


def test_a_docx_named_pdf_is_a_mismatch():
    assert rejected(docx_bytes(), "letter.pdf") == "type_mismatch"


def test_pdf_with_a_zip_appended_is_a_polyglot():
    polyglot = text_pdf([["hello"]]) + zip_bytes([("payload.html", b"<script>")])
    assert rejected(polyglot, "report.pdf") == "type_mismatch"


def test_html_wrapped_around_a_pdf_is_a_polyglot():
    polyglot = b"<html><body><script>alert(1)</script>\n" + text_pdf([["hello"]])
    assert rejected(polyglot, "report.pdf") == "type_mismatch"
    assert rejected(polyglot, "report.html") == "type_mismatch"


def test_text_under_an_image_name_is_a_mismatch():
    assert rejected(b"just text", "photo.png") == "type_mismatch"


def test_rtf_is_not_supported():
    assert rejected(b"{\\rtf1\\ansi hello}", "letter.rtf") == "unsupported_type"


def test_nul_filled_data_is_binary():
    assert rejected(bytes(5000), "notes.txt") == "binary"


@pytest.mark.parametrize("head", [b"", b"   \n\t  "])
def test_an_empty_file_is_empty(head):
    with pytest.raises(ParseError, match="empty") as caught:
        sniff_content_type(head, "notes.txt")
    assert caught.value.code == "empty"
