"""The history's files: whole-or-nothing writes, thumbnails that fit, and sweeping up leftovers."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from .images import make_thumbnail

__all__ = ["MAX_THUMBNAIL_BYTES", "fsync_dir", "remove_leftovers", "thumbnail", "write_atomic"]

MAX_THUMBNAIL_BYTES = 40 * 1024
#: Tried in turn until the thumbnail fits; only pure noise ever gets past the first.
_THUMBNAIL_LADDER = ((320, 72), (320, 50), (256, 40), (192, 30), (128, 10))
_OWNER_DIR = re.compile(r"[0-9a-f]{32}")


def thumbnail(png: bytes) -> bytes:
    for size, quality in _THUMBNAIL_LADDER:
        thumb = make_thumbnail(png, size=size, quality=quality)
        if len(thumb) <= MAX_THUMBNAIL_BYTES:
            break
    return thumb


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: the final name only ever holds whole files."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its renames are journaled by NTFS
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(images: Path, kept: set[tuple[str, str]], *, older_than: float) -> None:
    """Delete temp files, and images whose (owner dir, id) is not in `kept`, last changed before
    `older_than` (younger ones may be another process's, between its rename and its insert).
    Only in owner folders: anything else under `images` was not written by us."""
    if not images.is_dir():
        return
    for folder in images.iterdir():
        if folder.is_symlink() or not folder.is_dir() or not _OWNER_DIR.fullmatch(folder.name):
            continue
        for path in folder.iterdir():
            leftover = path.suffix == ".tmp" or (
                path.suffix in (".png", ".webp") and (folder.name, path.stem) not in kept
            )
            if leftover and not path.is_dir() and path.lstat().st_mtime < older_than:
                path.unlink(missing_ok=True)
