"""Build the test files at test time: PDFs, DOCX packages and ZIPs, good and bad.

No binary fixture is committed; every hostile file is made here, so each test
shows exactly what it feeds the parser.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from collections.abc import Iterable


def pdf_from_objects(
    objects: list[bytes], *, root: int = 1, info: int | None = None
) -> bytes:
    """Write a PDF whose object N (1-based) is objects[N-1], with a correct xref."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, root)
    if info:
        trailer += b" /Info %d 0 R" % info
    out.write(b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """Return a stream object body holding `data` as is."""
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def text_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """Return a real text PDF: one Helvetica line per string, one list per page."""
    count = len(pages)
    first_page = 4
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, lines in enumerate(pages):
        content = (
            b"BT /F1 12 Tf 14 TL 72 720 Td "
            + b" ".join(_pdf_string(line) + b" Tj T*" for line in lines)
            + b" ET"
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (first_page + 2 * index + 1)
        )
        objects.append(stream(content))
    info = None
    if title is not None:
        objects.append(b"<< /Title %s >>" % _pdf_string(title))
        info = len(objects)
    return pdf_from_objects(objects, info=info)


def placed_text_pdf(pieces: list[tuple[float, float, str]]) -> bytes:
    """Return a one-page text PDF with each (x, y, text) drawn where it says:
    cells of a table, columns of prose."""
    content = (
        b"BT /F1 10 Tf "
        + b" ".join(
            b"1 0 0 1 %.1f %.1f Tm %s Tj" % (x, y, _pdf_string(text))
            for x, y, text in pieces
        )
        + b" ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        stream(content),
    ]
    return pdf_from_objects(objects)


def deflate_stream(total: int, *, byte: bytes = b" ", level: int = 9) -> bytes:
    """Compress `total` repeated bytes without ever holding them in memory."""
    compressor = zlib.compressobj(level)
    chunk = byte * (1024 * 1024)
    parts = []
    left = total
    while left > 0:
        part = chunk if left >= len(chunk) else chunk[:left]
        parts.append(compressor.compress(part))
        left -= len(part)
    parts.append(compressor.flush())
    return b"".join(parts)


def nested_flate_bomb_pdf(expanded_bytes: int, layers: int = 2) -> bytes:
    """Return a one-page PDF whose content stream is Flate inside Flate (pypdf#3429).

    The page's content stream inflates to `expanded_bytes` of spaces through
    `layers` nested /FlateDecode filters, so the file stays a few kilobytes.
    """
    data = deflate_stream(expanded_bytes)
    for _ in range(layers - 1):
        data = zlib.compress(data, 9)
    filters = b"[" + b" ".join([b"/FlateDecode"] * layers) + b"]"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        stream(data, b"/Filter " + filters + b" "),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_from_objects(objects)


def docx_bytes(build: object = None) -> bytes:
    """Return a real DOCX made with python-docx; `build(document)` adds content."""
    import docx

    document = docx.Document()
    if callable(build):
        build(document)
    else:
        document.add_paragraph("A plain paragraph.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rewrite_zip(
    data: bytes,
    replace: dict[str, bytes] | None = None,
    add: Iterable[tuple[str, bytes]] = (),
) -> bytes:
    """Copy a ZIP, replacing some members and appending others."""
    replace = replace or {}
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            body = replace.get(info.filename, None)
            target.writestr(
                info.filename, body if body is not None else source.read(info)
            )
        for name, body in add:
            target.writestr(name, body)
    return out.getvalue()


def zip_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """Return a ZIP of the given members, deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members:
            archive.writestr(name, body)
    return out.getvalue()


def overlapping_zip(
    kernel_bytes: int,
    entries: int,
    prefix: Iterable[tuple[str, bytes]] = (),
    *,
    incompressible: bool = False,
) -> bytes:
    """Return a ZIP whose last `entries` members all share one compressed kernel.

    After David Fifield's non-recursive zip bomb: the local headers are laid
    back to back in front of one deflated kernel, and each directory record
    claims the data from its header to the end of the kernel, so every entry
    overlaps the next. Reading the directory is cheap; extracting would inflate
    `entries * kernel_bytes`. `prefix` members (stored, well formed) come first,
    so the archive can look like a DOCX to a sniffer. An `incompressible`
    kernel (random bytes) keeps every ratio near 1:1, isolating the overlap.
    """
    out = io.BytesIO()
    records = []  # (name, offset, crc, compressed size, size, method)
    for name, data in prefix:
        raw = name.encode()
        crc = zlib.crc32(data)
        records.append((raw, out.tell(), crc, len(data), len(data), 0))
        out.write(_local_header(raw, 0, crc, len(data), len(data)) + data)
    if incompressible:
        kernel = zlib.compress(random.Random(0).randbytes(kernel_bytes))
    else:
        kernel = deflate_stream(kernel_bytes, byte=b"a")
    crc = 0  # never checked: nothing may get as far as inflating these
    offsets = []
    names = [b"word/media/part%05d.xml" % i for i in range(entries)]
    for name in names:
        offsets.append(out.tell())
        out.write(_local_header(name, 8, crc, 0, kernel_bytes))
    out.write(kernel)
    end = out.tell()
    for name, offset in zip(names, offsets, strict=True):
        records.append(
            (name, offset, crc, end - offset - 30 - len(name), kernel_bytes, 8)
        )
    directory = io.BytesIO()
    for name, offset, crc, compressed, size, method in records:
        directory.write(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                method,
                0,
                0,
                crc,
                compressed,
                size,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
    listing = directory.getvalue()
    count = len(records)
    eocd = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(listing), end, 0
    )
    return out.getvalue() + listing + eocd


def _local_header(
    name: bytes, method: int, crc: int, compressed: int, size: int
) -> bytes:
    return (
        struct.pack(
            "<4s5H3L2H",
            b"PK\x03\x04",
            20,
            0,
            method,
            0,
            0,
            crc,
            compressed,
            size,
            len(name),
            0,
        )
        + name
    )


def docx_ratio_bomb(padding_mb: int = 40) -> bytes:
    """Return a real DOCX whose document.xml inflates about 1000:1 (whitespace)."""
    namespace = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:document xmlns:w="{namespace}"><w:body>'
        "<w:p><w:r><w:t>hi</w:t></w:r></w:p>"
        + " " * (padding_mb * 1024 * 1024)
        + "</w:body></w:document>"
    ).encode()
    return rewrite_zip(docx_bytes(), replace={"word/document.xml": xml})


# --- Hidden text (T13): documents that say more than a reader sees ---------------

# PDF content-stream snippets that draw the text after them so no reader sees it.
HIDDEN_PDF_STYLES = {
    "white_rgb": b"1 1 1 rg",
    "white_gray": b"1 g",
    "white_cmyk": b"0 0 0 0 k",
    "near_white": b"0.98 0.98 0.98 rg",
    "tiny_font": b"/F1 0.5 Tf",
    "tiny_matrix": b"0.05 0 0 0.05 72 400 Tm",
    "invisible": b"3 Tr",
}


def hidden_text_pdf(
    visible: list[str],
    hidden: str,
    *,
    style: str,
    info: dict[str, str] | None = None,
    xmp: str | None = None,
) -> bytes:
    """Return a one-page PDF: `visible` lines, then `hidden` drawn in `style`.

    `style` names a HIDDEN_PDF_STYLES snippet, or "" to draw `hidden` normally.
    `info` fills the Info dictionary (Title, Subject, ...); `xmp` becomes the
    catalog's XMP metadata stream (as dc:description).
    """
    lines = b" ".join(_pdf_string(line) + b" Tj T*" for line in visible)
    snippet = HIDDEN_PDF_STYLES[style] if style else b""
    content = (
        b"BT /F1 12 Tf 14 TL 72 720 Td " + lines + b" ET\n"
        b"q BT /F1 12 Tf 72 400 Td "
        + snippet
        + b" "
        + _pdf_string(hidden)
        + b" Tj ET Q\n"
        b"BT /F1 12 Tf 72 380 Td (End of notice.) Tj ET"
    )
    catalog = b"<< /Type /Catalog /Pages 2 0 R"
    objects = [
        b"",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        stream(content),
    ]
    if xmp is not None:
        packet = (
            '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{xmp}</rdf:li>'
            "</rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
            '<?xpacket end="w"?>'
        ).encode()
        objects.append(stream(packet, b"/Type /Metadata /Subtype /XML "))
        catalog += b" /Metadata %d 0 R" % len(objects)
    objects[0] = catalog + b" >>"
    info_number = None
    if info:
        entries = b" ".join(
            b"/" + key.encode() + b" " + _pdf_string(value)
            for key, value in info.items()
        )
        objects.append(b"<< " + entries + b" >>")
        info_number = len(objects)
    return pdf_from_objects(objects, info=info_number)


def docx_with_hidden_run(visible: str, hidden: str, *, how: str) -> bytes:
    """Return a DOCX: a paragraph of `visible` text with a `hidden` run inside.

    `how`: "vanish" (w:vanish on the run), "style" (a character style that
    sets w:vanish), "white" (w:color FFFFFF) or "tiny" (w:sz 2, 1 pt).
    """
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import Pt, RGBColor

    def build(document: object) -> None:
        paragraph = document.add_paragraph(visible + " ")
        run = paragraph.add_run(hidden)
        if how == "vanish":
            run.font.hidden = True
        elif how == "style":
            style = document.styles.add_style("Quiet", WD_STYLE_TYPE.CHARACTER)
            style.font.hidden = True
            run.style = style
        elif how == "white":
            run.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
        elif how == "tiny":
            run.font.size = Pt(1)
        else:
            raise ValueError(how)
        paragraph.add_run(" End of notice.")

    return docx_bytes(build)


def tag_characters(text: str) -> str:
    """Spell ASCII `text` in Unicode tag characters: invisible in every viewer."""
    return "".join(chr(0xE0000 + ord(ch)) for ch in text if 0x20 <= ord(ch) < 0x7F)


def zero_width_binary(text: str) -> str:
    """Encode `text` as runs of zero-width spaces and joiners (one bit each)."""
    bits = "".join(f"{byte:08b}" for byte in text.encode())
    return "\u2060" + "".join("\u200b" if bit == "0" else "\u200c" for bit in bits)


def zero_width_split(text: str) -> str:
    """Put a zero-width space inside every word, as text that slips past filters."""
    return " ".join(
        word[: len(word) // 2] + "\u200b" + word[len(word) // 2 :]
        if len(word) > 3
        else word
        for word in text.split(" ")
    )
