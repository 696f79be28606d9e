"""The data directory: where ragapp keeps everything it writes.

Imported by settings, so it must not import Django models or settings.
"""

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def prepare_data_dir(path: Path | str) -> Path:
    """Create the data dir and prove it is writable, or say what to do.

    A probe file is written instead of trusting `os.access`, which answers yes
    to root even on a read-only mount.
    """
    data_dir = Path(path).expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise ImproperlyConfigured(
            f"The data directory {data_dir} is not writable ({exc.strerror or exc}). "
            "Point RAGAPP_DATA_DIR at a directory this user can write, "
            "e.g. RAGAPP_DATA_DIR=$HOME/ragapp-data make run."
        ) from exc
    return data_dir


def read_or_create_secret_key(path: Path) -> str:
    """Return the key stored at `path`, generating it on first use.

    Web, worker and management commands start at the same moment on the first
    run; the key is written to a temporary file and hard-linked into place so
    exactly one process wins and the others read the winner's key.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        with os.fdopen(fd, "w") as tmp:
            tmp.write(secrets.token_urlsafe(64))
        os.chmod(tmp_name, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, path)
    finally:
        os.unlink(tmp_name)
    return path.read_text().strip()
