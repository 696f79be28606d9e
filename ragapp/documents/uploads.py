"""Upload handling that stops storing a file once it passes the size limit.

Django's default handlers write every byte of an upload to a temporary file
before any view runs, so a 2 GB upload costs 2 GB of disk before it can be
refused. This handler counts bytes as they arrive and, past
RAGAPP_MAX_UPLOAD_MB, discards the rest of that file; the view then receives
a file whose `size` says how much was sent so far and whose content is empty,
and the upload service records it as refused (too large), nothing stored.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler


class OversizedUploadedFile(UploadedFile):
    """Stands in for a file that went over the limit: a size, no content."""

    def __init__(self, name: str, content_type: str, size: int) -> None:
        import io

        super().__init__(io.BytesIO(), name, content_type, size)


class SizeLimitedUploadHandler(TemporaryFileUploadHandler):
    """Write uploads to temporary files, dropping a file's bytes past the limit."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0
        self.oversized = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            if not self.oversized:
                self.oversized = True
                self.file.close()  # deletes the temporary file
            return None
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if self.oversized:
            return OversizedUploadedFile(
                self.file_name, self.content_type or "", self.received
            )
        return super().file_complete(file_size)
