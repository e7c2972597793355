"""Every generated image, kept at once (provider URLs expire), private to the person who made it.

Layout under the data directory:

    history.sqlite3                       the index: one row per image (see _SCHEMA)
    images/<owner_dir>/<id>.png           exactly the bytes of GeneratedImage.png (metadata included)
    images/<owner_dir>/<id>.webp          a thumbnail of at most MAX_THUMBNAIL_BYTES

`owner_dir` is sha256(owner)[:32]; the database stores the same hash, never the owner string (an
"anon:<token>" owner is a bearer secret). Ids are 128 random bits. Paths are built only from the
hash and an id read back from a row already matched on (owner, id), so no input names a file.

Crash safety: files go to a temp name, are fsynced and renamed, and only then are the run's rows
inserted in one transaction; deleting removes the row first, then the files. A crash therefore
leaves either a complete item or unlisted leftovers, which the next `History()` removes: temp files,
rows whose PNG is gone, and files without a row. Leftovers younger than _LEFTOVER_AGE_S are kept, as
they may belong to another process that is writing right now.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import re
import secrets
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .db import migrate, open_db, transaction
from .images import make_thumbnail, take_decoded, thumbnail_of
from .models import GenerationRequest, GenerationResult

__all__ = ["MAX_THUMBNAIL_BYTES", "History", "HistoryItem"]

MAX_THUMBNAIL_BYTES = 40 * 1024
#: Tried in turn until the thumbnail fits; only pure noise ever gets past the first.
_THUMBNAIL_LADDER = ((320, 72), (320, 50), (256, 40), (192, 30), (128, 10))
_LEFTOVER_AGE_S = 600.0
_OWNER_DIR = re.compile(r"[0-9a-f]{32}")
_SCHEMA = [
    [
        "CREATE TABLE history_items (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
        " created_at REAL NOT NULL, provider TEXT NOT NULL, provider_label TEXT NOT NULL,"
        " prompt TEXT NOT NULL, prompt_folded TEXT NOT NULL, width INTEGER NOT NULL,"
        " height INTEGER NOT NULL, steps INTEGER NOT NULL, seed INTEGER, sampler TEXT,"
        " scheduler TEXT, num_images INTEGER NOT NULL, idx INTEGER NOT NULL, run_id TEXT NOT NULL,"
        " estimated_cost_usd TEXT, reported_cost_usd TEXT, latency_s REAL NOT NULL)",
        "CREATE INDEX history_owner_time ON history_items (owner, created_at DESC, run_id, idx)",
        "CREATE INDEX history_owner_provider_time"
        " ON history_items (owner, provider, created_at DESC, run_id, idx)",
    ],
]


class HistoryItem(BaseModel):
    """One saved image and the settings that made it."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: float
    provider: str
    provider_label: str
    prompt: str
    width: int
    height: int
    steps: int
    seed: int | None
    sampler: str | None
    scheduler: str | None
    num_images: int
    index: int
    run_id: str
    estimated_cost_usd: Decimal | None
    reported_cost_usd: Decimal | None
    latency_s: float
    image_path: Path
    thumb_path: Path

    @property
    def request(self) -> GenerationRequest:
        """The settings to run again, seed included (a "reuse" button should not re-roll it)."""
        return GenerationRequest.model_validate(self.model_dump(include={*_REQUEST_FIELDS, "seed"}))


#: HistoryItem fields kept as columns (`index` is `idx` in SQL, where INDEX is a keyword).
_FIELDS = tuple(name for name in HistoryItem.model_fields if not name.endswith("_path"))
_COLUMNS = ", ".join("idx" if name == "index" else name for name in _FIELDS)
_INSERT = (
    f"INSERT INTO history_items (owner, prompt_folded, {_COLUMNS})"
    f" VALUES (:owner, :prompt_folded, {', '.join(':' + name for name in _FIELDS)})"
)
_REQUEST_FIELDS = {"prompt", "width", "height", "steps", "sampler", "scheduler", "num_images"}
_RESULT_FIELDS = {"provider", "provider_label", "estimated_cost_usd", "reported_cost_usd", "latency_s"}


class History:
    """The history store. Construct it once at startup (it opens the database and recovers).

    One SQLite connection guarded by a `threading.Lock`: SQLite admits one writer at a time anyway
    and every statement here is an indexed lookup of well under a millisecond, so serialising them
    costs nothing, while the slow part (thumbnails, file writes) runs outside the lock in parallel
    worker threads. Other processes on the same file are handled by WAL and the busy timeout.
    """

    def __init__(self, data_dir: Path) -> None:
        self._images = data_dir.resolve() / "images"
        self._lock = threading.Lock()
        self._conn = open_db(data_dir / "history.sqlite3")
        migrate(self._conn, "history", _SCHEMA)
        self._recover()

    async def add(self, owner: str, result: GenerationResult) -> builtins.list[HistoryItem]:
        """Save every image of `result` now; returns them in run order."""
        return await asyncio.to_thread(self._add, owner, result)

    async def list(
        self,
        owner: str,
        *,
        query: str = "",
        provider: str | None = None,
        limit: int = 48,
        offset: int = 0,
    ) -> builtins.list[HistoryItem]:
        """Newest first; `query` matches any part of the prompt, ignoring case (Unicode-aware)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = self._where(owner, query, provider)
        sql = (
            f"SELECT {_COLUMNS} FROM history_items WHERE {where}"
            " ORDER BY created_at DESC, run_id, idx LIMIT ? OFFSET ?"
        )
        rows = await asyncio.to_thread(self._query, sql, (*params, limit, offset))
        return [self._item(_owner_dir(owner), row) for row in rows]

    async def count(self, owner: str, *, query: str = "", provider: str | None = None) -> int:
        where, params = self._where(owner, query, provider)
        rows = await asyncio.to_thread(
            self._query, f"SELECT count(*) FROM history_items WHERE {where}", params
        )
        return int(rows[0][0])

    async def get(self, owner: str, item_id: str) -> HistoryItem | None:
        """The item, or None when it does not exist or belongs to someone else (the same answer)."""
        key = _owner_dir(owner)
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_COLUMNS} FROM history_items WHERE id = ? AND owner = ?",
            (item_id, key),
        )
        return self._item(key, rows[0]) if rows else None

    async def delete(self, owner: str, item_id: str) -> bool:
        """Remove the row, then both files. False if there is no such item of this owner."""
        return await asyncio.to_thread(self._delete, _owner_dir(owner), item_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- worker-thread side ------------------------------------------------------------------------

    def _add(self, owner: str, result: GenerationResult) -> builtins.list[HistoryItem]:
        key, request, run_id, now = _owner_dir(owner), result.request, secrets.token_urlsafe(12), time.time()
        folder = self._images / key
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        items: builtins.list[HistoryItem] = []
        try:
            for index, image in enumerate(result.images):
                item_id = secrets.token_urlsafe(16)
                png, webp = self._paths(key, item_id)
                # Appended before its files are written, so a failure removes whatever was written.
                items.append(
                    HistoryItem.model_validate(
                        {
                            **request.model_dump(include=_REQUEST_FIELDS),
                            **result.model_dump(include=_RESULT_FIELDS),
                            "id": item_id,
                            "created_at": now,
                            "index": index,
                            "run_id": run_id,
                            "seed": image.seed if image.seed is not None else request.seed,
                            "image_path": png,
                            "thumb_path": webp,
                        }
                    )
                )
                _write_atomic(png, image.png)
                # The Playground keeps the pixels it decoded: no need to decode the PNG again.
                decoded = take_decoded(image)
                thumb = thumbnail_of(decoded) if decoded is not None else None
                if thumb is None or len(thumb) > MAX_THUMBNAIL_BYTES:
                    thumb = _thumbnail(image.png)
                _write_atomic(webp, thumb)
            _fsync_dir(folder)  # the renames must be durable before a row points at them
            with self._lock, transaction(self._conn):
                self._conn.executemany(_INSERT, [_row(key, item) for item in items])
        except BaseException:
            for item in items:
                item.image_path.unlink(missing_ok=True)
                item.thumb_path.unlink(missing_ok=True)
            raise
        return items

    def _delete(self, key: str, item_id: str) -> bool:
        with self._lock, transaction(self._conn):
            gone = self._conn.execute(
                "DELETE FROM history_items WHERE id = ? AND owner = ?", (item_id, key)
            ).rowcount
        if gone:
            for path in self._paths(key, item_id):
                path.unlink(missing_ok=True)
        return bool(gone)

    def _query(self, sql: str, params: tuple[object, ...]) -> builtins.list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _recover(self) -> None:
        rows = self._query("SELECT id, owner FROM history_items", ())
        kept: set[tuple[str, str]] = set()
        dropped: builtins.list[tuple[str, str]] = []
        for item_id, key in rows:
            png, webp = self._paths(str(key), str(item_id))
            if not png.exists():
                dropped.append((item_id, key))
                webp.unlink(missing_ok=True)
                continue
            kept.add((key, item_id))
            if not webp.exists():  # only by hand; the PNG is what matters, the preview is cheap
                with contextlib.suppress(OSError, ValueError):  # a damaged PNG must not stop startup
                    _write_atomic(webp, _thumbnail(png.read_bytes()))
        if dropped:
            with self._lock, transaction(self._conn):
                self._conn.executemany("DELETE FROM history_items WHERE id = ? AND owner = ?", dropped)
        if not self._images.is_dir():
            return
        cutoff = time.time() - _LEFTOVER_AGE_S
        for folder in self._images.iterdir():
            if folder.is_symlink() or not folder.is_dir() or not _OWNER_DIR.fullmatch(folder.name):
                continue
            for path in folder.iterdir():
                leftover = path.suffix == ".tmp" or (
                    path.suffix in (".png", ".webp") and (folder.name, path.stem) not in kept
                )
                if leftover and not path.is_dir() and path.lstat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)

    # --- helpers -----------------------------------------------------------------------------------

    def _paths(self, key: str, item_id: str) -> tuple[Path, Path]:
        folder = self._images / key
        return folder / f"{item_id}.png", folder / f"{item_id}.webp"

    def _item(self, key: str, row: tuple[object, ...]) -> HistoryItem:
        fields = dict(zip(_FIELDS, row, strict=True))
        image_path, thumb_path = self._paths(key, str(fields["id"]))
        return HistoryItem.model_validate({**fields, "image_path": image_path, "thumb_path": thumb_path})

    @staticmethod
    def _where(owner: str, query: str, provider: str | None) -> tuple[str, tuple[object, ...]]:
        where, params = "owner = ?", [_owner_dir(owner)]
        if query:
            # Match against a casefolded copy (SQLite's own LIKE folds ASCII only); escape the
            # wildcards so "100%" and "a_b" mean what they say.
            needle = re.sub(r"([\\%_])", r"\\\1", query.casefold())
            where += " AND prompt_folded LIKE ? ESCAPE '\\'"
            params.append(f"%{needle}%")
        if provider is not None:
            where += " AND provider = ?"
            params.append(provider)
        return where, tuple(params)


def _owner_dir(owner: str) -> str:
    if not owner:
        raise ValueError("a history owner is required")
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


def _thumbnail(png: bytes) -> bytes:
    for size, quality in _THUMBNAIL_LADDER:
        thumb = make_thumbnail(png, size=size, quality=quality)
        if len(thumb) <= MAX_THUMBNAIL_BYTES:
            break
    return thumb


def _write_atomic(path: Path, data: bytes) -> None:
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


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its renames are journaled by NTFS
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _row(key: str, item: HistoryItem) -> dict[str, object]:
    """The SQL parameters for `item`; costs as TEXT so no cent is lost to a float."""
    row = item.model_dump(include=set(_FIELDS))
    for name in ("estimated_cost_usd", "reported_cost_usd"):
        row[name] = None if row[name] is None else str(row[name])
    return {**row, "owner": key, "prompt_folded": item.prompt.casefold()}
