"""Check a ZIP archive's directory before anything is extracted from it.

Everything here reads only the central directory (names, sizes, offsets, flags):
no member is decompressed. A member read through `zipfile` never yields more
than its declared size (the reader stops there and checks the CRC), so bounding
the declared sizes bounds what python-docx can inflate later.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass

from ragapp.documents.parsing.errors import ParseError

# DEFLATE tops out near 1032:1; real DOCX parts compress about 5-30:1, the most
# repetitive (empty tables) rarely past 100:1. Past this a member is a bomb.
MAX_COMPRESSION_RATIO = 200
# Members smaller than this are never called bombs, whatever their ratio: a
# 100 kB part costs nothing, and tiny parts often have huge ratios.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
_SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# Fixed part of a local file header; name and extra field follow it.
_LOCAL_HEADER_SIZE = 30


@dataclass(frozen=True)
class ZipLimits:
    """The bounds `inspect_zip` enforces."""

    max_entries: int
    max_total_bytes: int
    max_ratio: float = MAX_COMPRESSION_RATIO


def open_zip(data: bytes) -> zipfile.ZipFile:
    """Open bytes as a ZIP archive, or raise ParseError("corrupt")."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise ParseError("corrupt") from exc


def inspect_zip(archive: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Refuse archives that are bombs or unsafe; return the members otherwise.

    Checked before extraction: entry count, total declared uncompressed size,
    per-member compression ratio, encrypted members, unsupported compression,
    member names (absolute, drive, `..`, backslash, NUL, duplicates), symlink
    entries, and members whose data overlap (the Fifield construction, where many
    directory entries share one compressed kernel).
    """
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ParseError(
            "too_large",
            f"The file has more than {limits.max_entries:,} parts inside; "
            "documents never need that many.",
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        _check_name(info.filename)
        if info.filename in seen:
            raise ParseError("unsafe_archive")
        seen.add(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ParseError("unsafe_archive")
        if info.flag_bits & 0x1:
            raise ParseError("encrypted")
        if info.compress_type not in _SUPPORTED_METHODS:
            raise ParseError("corrupt")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ParseError(
                "too_large",
                "The file unpacks to more data than ragapp is set to read "
                f"({limits.max_total_bytes // (1024 * 1024):,} MB).",
            )
        if info.file_size >= RATIO_CHECK_MIN_BYTES and info.file_size > (
            limits.max_ratio * max(info.compress_size, 1)
        ):
            raise ParseError("compression_bomb")
    _check_overlaps(infos, archive.start_dir)
    return infos


def _check_name(name: str) -> None:
    parts = name.split("/")
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part == ".." for part in parts)
    ):
        raise ParseError("unsafe_archive")


def _check_overlaps(infos: list[zipfile.ZipInfo], directory_start: int) -> None:
    """Refuse members whose header and data are not disjoint and in order."""
    spans = sorted(
        (
            info.header_offset,
            # The local header repeats the name (zipfile refuses a mismatch when
            # the member is read); its extra field is not counted, which only
            # makes this check more lenient.
            info.header_offset
            + _LOCAL_HEADER_SIZE
            + len(_raw_name(info))
            + info.compress_size,
        )
        for info in infos
    )
    previous_end = 0
    for start, end in spans:
        if start < previous_end or end > directory_start:
            raise ParseError("unsafe_archive")
        previous_end = end


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    return info.orig_filename.encode(encoding, errors="surrogateescape")
