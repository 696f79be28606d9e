"""DOCX: structure, and every bomb refused before python-docx extracts anything."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from ragapp.documents.parsing import (
    ParseError,
    ParseLimits,
    parse_bytes,
    parse_file_isolated,
)
from ragapp.documents.parsing.base import DOCX
from ragapp.documents.parsing.wordml import read_docx
from tests.files import docx_bytes, overlapping_zip, rewrite_zip

LIMITS = ParseLimits()
SMALL = ParseLimits(timeout_seconds=60, memory_bytes=384 * 1024 * 1024)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def build_handbook(document) -> None:
    document.core_properties.title = ""
    document.add_heading("Staff handbook", level=0)
    document.add_heading("1 Scope", level=1)
    document.add_paragraph("This handbook covers all staff.")
    document.add_heading("1.1 Terms", level=2)
    document.add_paragraph("Leave means paid time off.", style="List Bullet")
    document.add_paragraph("Shift means an eight-hour block.", style="List Number")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {
        (0, 0): "Role",
        (0, 1): "Days",
        (1, 0): "Nurse",
        (1, 1): "25",
    }.items():
        table.cell(row, col).text = text
    document.add_heading("2 Leave", level=1)
    document.add_paragraph("Ask your manager two weeks ahead.")


def document_xml(body: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n{doctype}'
        f'<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    ).encode()


def with_document_xml(xml: bytes) -> bytes:
    return rewrite_zip(docx_bytes(), replace={"word/document.xml": xml})


def parse_error(data: bytes, limits: ParseLimits = LIMITS) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_bytes(data, content_type=DOCX, limits=limits)
    return caught.value


def test_docx_keeps_headings_lists_and_tables_in_order():
    document = parse_bytes(docx_bytes(build_handbook), content_type=DOCX, limits=LIMITS)
    assert document.title == "Staff handbook"
    assert document.page_count is None
    assert [(b.kind, b.heading, b.text) for b in document.blocks] == [
        ("heading", "", "Staff handbook"),
        ("heading", "1 Scope", "1 Scope"),
        ("paragraph", "1 Scope", "This handbook covers all staff."),
        ("heading", "1 Scope > 1.1 Terms", "1.1 Terms"),
        ("list_item", "1 Scope > 1.1 Terms", "Leave means paid time off."),
        ("list_item", "1 Scope > 1.1 Terms", "Shift means an eight-hour block."),
        ("table", "1 Scope > 1.1 Terms", "Role | Days\nNurse | 25"),
        ("heading", "2 Leave", "2 Leave"),
        ("paragraph", "2 Leave", "Ask your manager two weeks ahead."),
    ]


def test_docx_title_comes_from_core_properties():
    def build(document):
        document.core_properties.title = "Annual report"
        document.add_paragraph("Body.")

    document = parse_bytes(docx_bytes(build), content_type=DOCX, limits=LIMITS)
    assert document.title == "Annual report"


def test_a_docx_with_no_text_is_empty():
    data = docx_bytes(lambda document: None)
    assert parse_error(data).code == "empty"


def test_a_plain_zip_passed_as_docx_is_refused():
    data = rewrite_zip(docx_bytes(), replace={"[Content_Types].xml": b"<Types/>"})
    assert parse_error(data).code == "not_docx"


def test_a_truncated_docx_is_refused():
    data = docx_bytes(build_handbook)
    error = parse_error(data[: len(data) // 2])
    assert error.code in {"type_mismatch", "corrupt"}


def test_a_high_ratio_document_xml_is_a_bomb_before_extraction():
    padding = " " * (40 * 1024 * 1024)  # 40 MB of whitespace deflates ~1000:1
    xml = document_xml(f"<w:p><w:r><w:t>hi</w:t></w:r></w:p>{padding}")
    error = parse_error(with_document_xml(xml))
    assert error.code == "compression_bomb"
    assert "far more data" in str(error)


def test_a_docx_with_many_entries_is_refused():
    data = rewrite_zip(
        docx_bytes(), add=((f"extra/item{i}.xml", b"") for i in range(10_001))
    )
    assert parse_error(data).code == "too_large"


def test_an_overlapping_entry_docx_is_refused():
    with zipfile.ZipFile(io.BytesIO(docx_bytes())) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    overlapping = overlapping_zip(50_000, 50, members, incompressible=True)
    assert parse_error(overlapping).code == "unsafe_archive"
    # The real construction: kernels that also inflate ~1000:1.
    bomb = overlapping_zip(5 * 1024 * 1024, 200, members)
    assert parse_error(bomb).code == "compression_bomb"


def test_a_docx_with_a_traversal_entry_is_refused():
    forged = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx_bytes())) as source,
        zipfile.ZipFile(forged, "w") as target,
    ):
        for info in source.infolist():
            target.writestr(info, source.read(info))
        evil = zipfile.ZipInfo("x")
        evil.filename = "../../evil.xml"
        target.writestr(evil, b"<x/>")
    assert parse_error(forged.getvalue()).code == "unsafe_archive"


BILLION_LAUGHS = (
    '<!DOCTYPE w:document [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)


def test_a_billion_laughs_docx_is_refused():
    xml = document_xml("<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>", BILLION_LAUGHS)
    error = parse_error(with_document_xml(xml))
    assert error.code == "unsafe_xml"


def test_python_docx_alone_does_not_expand_a_billion_laughs():
    xml = document_xml("<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>", BILLION_LAUGHS)
    try:
        document = read_docx(with_document_xml(xml))
    except ParseError:
        return
    assert all(len(block.text) < 1000 for block in document.blocks)


XXE_FILE = '<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def test_an_external_entity_docx_is_refused():
    xml = document_xml("<w:p><w:r><w:t>start &xxe; end</w:t></w:r></w:p>", XXE_FILE)
    assert parse_error(with_document_xml(xml)).code == "unsafe_xml"


def test_an_external_entity_in_utf16_is_refused():
    xml = document_xml("<w:p><w:r><w:t>&xxe;</w:t></w:r></w:p>", XXE_FILE)
    xml = (
        xml.replace(b'encoding="UTF-8"', b'encoding="UTF-16"').decode().encode("utf-16")
    )
    assert parse_error(with_document_xml(xml)).code == "unsafe_xml"


def test_python_docx_alone_does_not_read_local_files():
    xml = document_xml("<w:p><w:r><w:t>start &xxe; end</w:t></w:r></w:p>", XXE_FILE)
    try:
        document = read_docx(with_document_xml(xml))
    except ParseError:
        return
    assert "root:" not in "\n".join(block.text for block in document.blocks)


@pytest.fixture
def loopback_listener():
    """A TCP listener on 127.0.0.1 that records every connection it gets."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    hits: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, address = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            hits.append(str(address))
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_an_entity_pointing_at_a_listener_fetches_nothing(loopback_listener, tmp_path):
    port, hits = loopback_listener
    doctype = (
        f'<!DOCTYPE w:document [<!ENTITY net SYSTEM "http://127.0.0.1:{port}/x">]>'
    )
    data = with_document_xml(
        document_xml("<w:p><w:r><w:t>&net;</w:t></w:r></w:p>", doctype)
    )
    assert parse_error(data).code == "unsafe_xml"
    with contextlib.suppress(ParseError):
        read_docx(data)
    path = tmp_path / "net.docx"
    path.write_bytes(data)
    with pytest.raises(ParseError):
        parse_file_isolated(path, content_type=DOCX, limits=SMALL)
    assert hits == []


@pytest.mark.timeout(60)
def test_docx_bombs_end_in_parse_errors_in_the_isolated_parser(tmp_path: Path):
    with zipfile.ZipFile(io.BytesIO(docx_bytes())) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    bombs = {
        "ratio.docx": (
            with_document_xml(document_xml("<w:p/>" + " " * (40 * 1024 * 1024))),
            "compression_bomb",
        ),
        "laughs.docx": (
            with_document_xml(
                document_xml("<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>", BILLION_LAUGHS)
            ),
            "unsafe_xml",
        ),
        "overlap.docx": (
            overlapping_zip(5 * 1024 * 1024, 200, members),
            "compression_bomb",
        ),
    }
    for name, (data, code) in bombs.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ParseError) as caught:
            parse_file_isolated(path, content_type=DOCX, limits=SMALL)
        assert caught.value.code == code, name
