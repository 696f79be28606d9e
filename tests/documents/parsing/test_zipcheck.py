"""The ZIP directory check runs before extraction (T17, T20 unit assertions)."""

from __future__ import annotations

import io
import random
import stat
import zipfile

import pytest

from ragapp.documents.parsing import ParseError
from ragapp.documents.parsing.zipcheck import ZipLimits, inspect_zip, open_zip
from tests.files import deflate_stream, overlapping_zip, zip_bytes

LIMITS = ZipLimits(max_entries=100, max_total_bytes=10 * 1024 * 1024)


def refused(data: bytes, limits: ZipLimits = LIMITS) -> str:
    with pytest.raises(ParseError) as caught:
        inspect_zip(open_zip(data), limits)
    return caught.value.code


def test_a_normal_archive_passes():
    infos = inspect_zip(open_zip(zip_bytes([("word/document.xml", b"<w/>")])), LIMITS)
    assert [info.filename for info in infos] == ["word/document.xml"]


@pytest.mark.parametrize(
    "name",
    ["../../x", "word/../../x", "/etc/passwd", "C:/Windows/x", "..\\..\\x"],
)
def test_unsafe_member_names_are_refused(name):
    # Set the name after construction: ZipInfo() would normalise it, an
    # attacker's tool does not.
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as archive:
        info = zipfile.ZipInfo("x")
        info.filename = name
        archive.writestr(info, b"x")
    assert refused(forged.getvalue()) == "unsafe_archive"


def test_a_symlink_member_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("word/document.xml")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, b"/etc/passwd")
    assert refused(out.getvalue()) == "unsafe_archive"


def test_duplicate_member_names_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", b"<a/>")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("word/document.xml", b"<b/>")
    assert refused(out.getvalue()) == "unsafe_archive"


def test_too_many_entries_are_refused_from_the_directory_alone():
    data = zip_bytes((f"part{i}.xml", b"") for i in range(101))
    assert refused(data) == "too_large"


def test_a_large_declared_total_is_refused():
    parts = [
        (f"part{i}.bin", random.Random(i).randbytes(4 * 1024 * 1024)) for i in range(3)
    ]
    assert refused(zip_bytes(parts)) == "too_large"  # 3 x 4 MB > 10 MB at ~1:1


def test_a_high_ratio_member_is_a_bomb():
    data = zip_bytes([("word/document.xml", b" " * (5 * 1024 * 1024))])
    assert refused(data) == "compression_bomb"


def test_overlapping_members_are_refused():
    data = overlapping_zip(50_000, 20, incompressible=True)
    assert refused(data) == "unsafe_archive"


def test_encrypted_members_are_refused():
    data = bytearray(zip_bytes([("word/document.xml", b"<w/>")]))
    # Set the "encrypted" flag in both the local header and the directory.
    data[6] |= 1
    directory = data.rindex(b"PK\x01\x02")
    data[directory + 8] |= 1
    assert refused(bytes(data)) == "encrypted"


def test_the_check_reads_no_member_data():
    # A kernel whose data is garbage: decompressing it would fail, so passing
    # (or refusing for size) proves only the directory was read.
    kernel = deflate_stream(1024)
    data = zip_bytes([("a.xml", kernel)])
    corrupted = data.replace(kernel[:32], bytes(32), 1)
    assert inspect_zip(open_zip(corrupted), LIMITS)
