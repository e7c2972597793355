"""The history's files: whole-or-nothing writes, thumbnails that fit, and sweeping up leftovers."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from .images import make_thumbnail

__all__ = [
    "MAX_THUMBNAIL_BYTES", "download_copy", "download_name", "download_zip", "fsync_dir", "remove_leftovers",
    "thumbnail", "write_atomic",
]  # fmt: skip

MAX_THUMBNAIL_BYTES = 40 * 1024
#: Tried in turn until the thumbnail fits; only pure noise ever gets past the first.
_THUMBNAIL_LADDER = ((320, 72), (320, 50), (256, 40), (192, 30), (128, 10))
_OWNER_DIR = re.compile(r"[0-9a-f]{32}")
_WORD = re.compile(r"[a-z0-9]+")
#: Descriptive copies kept for downloads (the newest; each is a hard link where the disk allows).
MAX_DOWNLOAD_COPIES = 64
#: Zips of whole runs kept for downloading: each is a real copy (up to a run's images), so few.
MAX_DOWNLOAD_ZIPS = 8


def download_name(*, created_at: float, provider: str, seed: int | None, prompt: str, index: int) -> str:
    """A file name that says what the image is: `flux-20261201-1432-deepinfra-seed42-red-tram-in.png`.

    Only [a-z0-9-], at most six prompt words: safe on every file system and in a Content-Disposition.
    """
    stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%d-%H%M")
    words = "-".join(_WORD.findall(prompt.lower())[:6])[:60].strip("-")
    parts = ["flux", stamp, "-".join(_WORD.findall(provider.lower()))]
    parts.append(f"seed{seed}" if seed is not None else "noseed")
    parts += [words] if words else []
    parts += [str(index + 1)] if index else []
    return "-".join(part for part in parts if part) + ".png"


def download_copy(image: Path, name: str, folder: Path) -> Path:
    """`image` under `name`, in a fresh subfolder of `folder` (a browser downloads a file under its
    own name). Keeps the newest MAX_DOWNLOAD_COPIES; a hard link costs no space where possible."""
    target = _fresh(folder, name, keep=MAX_DOWNLOAD_COPIES)
    try:
        os.link(image, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(image, target)
    return target


def download_zip(images: Sequence[tuple[Path, str]], name: str, folder: Path) -> Path:
    """The (image, name in the archive) pairs in one zip named `name`, stored as they are (PNGs
    do not compress further). Keeps the newest MAX_DOWNLOAD_ZIPS."""
    target = _fresh(folder, name, keep=MAX_DOWNLOAD_ZIPS)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for image, inner in images:
            archive.write(image, inner)
    return target


def _fresh(folder: Path, name: str, *, keep: int) -> Path:
    """A path for `name` in a new subfolder of `folder`, after removing all but the newest keep - 1."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - keep + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    target = folder / secrets.token_hex(8) / name
    target.parent.mkdir(mode=0o700)
    return target


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
