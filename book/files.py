"""Writing a file so that a crash, a full disk or a power cut leaves the old file or the new
one under its name, never half of one.

Every file the book writes (checkpoints, the NumPy model's weights, downloads) goes through
``atomic_write``: the bytes go to a temporary file beside the target, are flushed to the disk
(``fsync``), and only then is the temporary renamed onto the target, which is atomic on one
file system; on POSIX the folder is synced as well, so that the rename itself is durable.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to; it replaces ``path`` only when the
    ``with`` block ends without an exception. Otherwise ``path`` is left as it was, and the
    temporary file (whose name is the file object's ``name``) is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the target, so that the rename stays on one file system; a random suffix, so
    # that two processes writing at once never share a temporary file
    part = path.with_name(f".{path.name}.part-{secrets.token_hex(4)}")
    try:
        with open(part, "xb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
        _sync_folder(path.parent)
    finally:
        part.unlink(missing_ok=True)  # a no-op after the rename


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; Windows cannot open a folder to sync it)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
