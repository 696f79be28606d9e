"""Turn an uploaded file into structured text, safely (issue #4).

`sniff_content_type` decides the type from content; `parse_bytes` parses in
this process; `parse_file_isolated` parses in a child process under memory,
CPU and wall-clock limits and is what the ingestion pipeline should call.
Only ParseError (and UnsupportedTypeError) escapes any of them.
"""

from ragapp.documents.parsing.base import (
    SUPPORTED_TYPES,
    Block,
    ParsedDocument,
    ParseLimits,
)
from ragapp.documents.parsing.core import parse_bytes
from ragapp.documents.parsing.errors import ParseError, UnsupportedTypeError
from ragapp.documents.parsing.isolated import parse_file_isolated
from ragapp.documents.parsing.sniff import sniff_content_type

__all__ = [
    "SUPPORTED_TYPES",
    "Block",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "UnsupportedTypeError",
    "parse_bytes",
    "parse_file_isolated",
    "sniff_content_type",
]
