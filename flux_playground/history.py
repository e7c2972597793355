"""Every generated image, kept at once (provider URLs expire), private to the person who made it.

Layout under the data directory:

    history.sqlite3                       the index: one row per image (history_schema.py), or the
                                          PostgreSQL database of FLUX_PLAYGROUND_DATABASE_URL
    images/<owner_dir>/<id>.png           exactly the bytes of GeneratedImage.png (metadata included)
    images/<owner_dir>/<id>.webp          a thumbnail of at most MAX_THUMBNAIL_BYTES

With PostgreSQL, every replica shares the database and the data directory (a mounted volume), and the
images are under `images/pg-<token>/` (history_schema.images_root).

`owner_dir` is sha256(owner)[:32]; the database stores the same hash, never the owner string (an
"anon:<token>" owner is a bearer secret). Ids are 128 random bits. Paths are built only from the
hash and an id read back from a row already matched on (owner, id), so no input names a file. Every
query filters on that hash: another person's item, run or spend is never read.

Images are grouped by the run that made them (`run_id`, one per Generate at any number of providers:
see `add`), so a past comparison reopens as it was (`list_runs`, `get_run`). Search, filters and
counts are history_search.py. A delete moves the item to the trash for `undo_seconds` (`restore`
brings it back); after that it is purged: row first, then files.

Crash safety: files go to a temp name, are fsynced and renamed, and only then are the run's rows
inserted in one transaction (search index, run and spend rows included); a delete or an undo is one
UPDATE; a purge removes the rows, then the files. A crash therefore leaves either a complete item or
unlisted leftovers, which the next `History()` removes: temp files, rows whose PNG is gone, and files
without a row. Leftovers younger than _LEFTOVER_AGE_S are kept, as they may belong to another
process that is writing right now.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from pydantic import SecretStr

from . import history_rows as rows
from .database import open_database
from .history_files import MAX_THUMBNAIL_BYTES, fsync_dir, remove_leftovers, write_atomic
from .history_files import thumbnail as _thumbnail  # looked up here, so a test can replace it
from .history_models import REQUEST_FIELDS, HistoryItem, HistoryRun, Spend
from .history_schema import images_root, prepare
from .history_search import Filters, Period, fold, period_start
from .images import take_decoded, thumbnail_of
from .models import GenerationResult

__all__ = [
    "MAX_THUMBNAIL_BYTES",
    "UNDO_SECONDS",
    "FilterArgs",
    "Filters",
    "History",
    "HistoryItem",
    "HistoryRun",
    "Period",
    "Spend",
    "period_start",
]

#: How long a deleted item can be brought back; then its row and files are purged.
UNDO_SECONDS = 30.0
_LEFTOVER_AGE_S = 600.0
#: What an item or run id can be (ours are token_urlsafe); anything else names nothing, and is not
#: sent to the database at all (PostgreSQL refuses a NUL byte in text outright).
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RESULT_FIELDS = {"provider", "provider_label", "estimated_cost_usd", "reported_cost_usd", "latency_s"}
_ITEMS = f"SELECT {rows.COLUMNS} FROM history_items"


class FilterArgs(TypedDict, total=False):
    """The search box and filters, as keywords of list, count, list_runs and count_runs."""

    query: str
    provider: str | None
    since: datetime | None
    until: datetime | None


class History:
    """The history store. Construct it once at startup (it opens the database and recovers).

    `database_url` (Settings.database_url): PostgreSQL shared by every replica; None, the SQLite file
    in `data_dir` (database.py). Statements are indexed lookups of well under a millisecond; the slow
    part (thumbnails, file writes) runs outside any transaction, in parallel worker threads.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: SecretStr | str | None = None,
        undo_seconds: float = UNDO_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._undo_seconds, self._clock = undo_seconds, clock
        self._db = open_database(
            data_dir / "history.sqlite3", database_url, name="history", functions={"history_fold": fold}
        )
        try:
            #: How words are matched: FTS5, PostgreSQL's tsvector, or substrings (history_search.py).
            self._search = prepare(self._db)
            self._images = images_root(self._db, data_dir.resolve() / "images")
            self._recover()
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def new_run_id() -> str:
        """An id for one run: pass the same one to `add` for each of its providers' results."""
        return secrets.token_urlsafe(12)

    async def add(
        self,
        owner: str,
        result: GenerationResult,
        *,
        run_id: str | None = None,
        run_providers: Sequence[str] = (),
    ) -> builtins.list[HistoryItem]:
        """Save every image of `result` now; returns them in run order.

        One run at several providers: the caller passes one `run_id` (`new_run_id()`) for all of
        them, and `run_providers`, every provider the run was sent to in the order shown, so the run
        reopens with its cards in that order and "reuse" gets them all, the failed ones included.
        Without a run id each call is a run of its own.
        """
        if run_id is not None and not _ID.fullmatch(run_id):
            raise ValueError("a run id is 1 to 64 letters, digits, '-' or '_'")
        return await asyncio.to_thread(self._add, owner, result, run_id or self.new_run_id(), run_providers)

    async def list(
        self, owner: str, *, limit: int = 48, offset: int = 0, **filters: Unpack[FilterArgs]
    ) -> builtins.list[HistoryItem]:
        """Newest first, matching the search and filters (history_search.py)."""
        _check_page(limit, offset)
        where, params = self._where(owner, Filters(**filters))
        sql = f"{_ITEMS} WHERE {where} ORDER BY created_at DESC, run_id, idx LIMIT ? OFFSET ?"
        found = await asyncio.to_thread(self._query, sql, (*params, limit, offset))
        return [self._item(_owner_dir(owner), row) for row in found]

    async def count(self, owner: str, **filters: Unpack[FilterArgs]) -> int:
        """How many items `list` with the same filters has in all ("3 of 30 images": the 3)."""
        where, params = self._where(owner, Filters(**filters))
        return await self._count(f"SELECT count(*) FROM history_items WHERE {where}", params)

    async def total(self, owner: str) -> int:
        """How many items the person has, whatever the filters ("3 of 30 images": the 30)."""
        return await self.count(owner)

    async def get(self, owner: str, item_id: str) -> HistoryItem | None:
        """The item, or None when it does not exist, is deleted or belongs to someone else (alike)."""
        key = _owner_dir(owner)
        if not _ID.fullmatch(item_id):
            return None
        sql = f"{_ITEMS} WHERE id = ? AND owner = ? AND deleted_at IS NULL"
        found = await asyncio.to_thread(self._query, sql, (item_id, key))
        return self._item(key, found[0]) if found else None

    async def list_runs(
        self, owner: str, *, limit: int = 24, offset: int = 0, **filters: Unpack[FilterArgs]
    ) -> builtins.list[HistoryRun]:
        """Runs newest first, each whole: every image of it left, providers in run order, then index.

        A run is listed when any of its images matches the filters; it is shown whole all the same,
        as the comparison it was.
        """
        _check_page(limit, offset)
        where, params = self._where(owner, Filters(**filters))
        sql = f"{rows.runs_sql(where)} ORDER BY r.created_at DESC, r.run_id LIMIT ? OFFSET ?"
        return await asyncio.to_thread(self._runs, owner, sql, (*params, limit, offset))

    async def count_runs(self, owner: str, **filters: Unpack[FilterArgs]) -> int:
        """How many runs `list_runs` with the same filters has in all."""
        where, params = self._where(owner, Filters(**filters))
        # Every item's run has its row (written and removed with its items): counting the items'
        # run ids answers the same as counting runs, and reads only the matching items.
        return await self._count(f"SELECT count(DISTINCT run_id) FROM history_items WHERE {where}", params)

    async def get_run(self, owner: str, run_id: str) -> HistoryRun | None:
        """The whole run, or None when it has no image left or belongs to someone else (alike)."""
        where, params = self._where(owner, Filters())
        if not _ID.fullmatch(run_id):
            return None
        sql = f"{rows.runs_sql(where)} AND r.run_id = ?"
        found = await asyncio.to_thread(self._runs, owner, sql, (*params, run_id))
        return found[0] if found else None

    async def delete(self, owner: str, item_id: str) -> bool:
        """Move the item to the trash (`restore` within undo_seconds). False if no such live item."""
        if not _ID.fullmatch(item_id):
            return False
        return bool(await asyncio.to_thread(self._trash, _owner_dir(owner), "id = ?", item_id))

    async def restore(self, owner: str, item_id: str) -> bool:
        """Undo `delete`; False when there is nothing to undo (never deleted, too late, not theirs)."""
        if not _ID.fullmatch(item_id):
            return False
        return bool(await asyncio.to_thread(self._untrash, _owner_dir(owner), "id = ?", (item_id,)))

    async def delete_run(self, owner: str, run_id: str) -> int:
        """Move every image of the run to the trash; how many (0: no such run of this owner)."""
        if not _ID.fullmatch(run_id):
            return 0
        return await asyncio.to_thread(self._trash, _owner_dir(owner), "run_id = ?", run_id)

    async def restore_run(self, owner: str, run_id: str) -> int:
        """Undo the run's latest delete (`delete_run` or one image's); how many came back."""
        key = _owner_dir(owner)
        if not _ID.fullmatch(run_id):
            return 0
        latest = "(SELECT max(deleted_at) FROM history_items WHERE owner = ? AND run_id = ?)"
        condition = f"run_id = ? AND deleted_at = {latest}"
        return await asyncio.to_thread(self._untrash, key, condition, (run_id, key, run_id))

    async def purge_expired(self) -> int:
        """Purge every item deleted more than undo_seconds ago (deletes and start-up also do)."""
        return len(await asyncio.to_thread(self._purge))

    async def spent_today(self, owner: str) -> Spend:
        """This person's results since 00:00 UTC: estimated and reported totals, exact.

        Deleted images still count: their results are kept (without the prompt) as money spent.
        """
        since = period_start("today", datetime.fromtimestamp(self._clock(), UTC)).timestamp()
        sql = (
            "SELECT estimated_cost_usd, reported_cost_usd FROM history_results"
            " WHERE owner = ? AND created_at >= ?"
        )
        return Spend.of(await asyncio.to_thread(self._query, sql, (_owner_dir(owner), since)))

    def close(self) -> None:
        self._db.close()

    # --- worker-thread side ------------------------------------------------------------------------

    def _add(
        self, owner: str, result: GenerationResult, run_id: str, run_providers: Sequence[str]
    ) -> builtins.list[HistoryItem]:
        key, request, now = _owner_dir(owner), result.request, self._clock()
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
                            **request.model_dump(include=REQUEST_FIELDS),
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
                write_atomic(png, image.png)
                # The Playground keeps the pixels it decoded: no need to decode the PNG again.
                decoded = take_decoded(image)
                thumb = thumbnail_of(decoded) if decoded is not None else None
                if thumb is None or len(thumb) > MAX_THUMBNAIL_BYTES:
                    thumb = _thumbnail(image.png)
                write_atomic(webp, thumb)
            fsync_dir(folder)  # the renames must be durable before a row points at them
            with self._db.writing() as sql:  # items, search index, run and spend at once
                rows.insert_items(sql, self._db.dialect, key, items)
                if items:
                    rows.record_run(sql, key, run_id, now, result, run_providers)
                rows.record_result(sql, key, run_id, now, result)
        except BaseException:
            for item in items:
                item.image_path.unlink(missing_ok=True)
                item.thumb_path.unlink(missing_ok=True)
            raise
        return items

    def _trash(self, key: str, condition: str, value: str) -> int:
        now = self._clock()
        with self._db.writing() as sql:
            trashed = rows.trash(sql, key, condition, (value,), now)
            # A good moment to sweep the expired trash: a write transaction is open anyway.
            expired = rows.purge_rows(sql, now - self._undo_seconds)
        self._remove_files(expired)
        return trashed

    def _untrash(self, key: str, condition: str, params: tuple[object, ...]) -> int:
        with self._db.writing() as sql:
            return rows.untrash(sql, key, condition, params, self._clock() - self._undo_seconds)

    def _purge(self) -> builtins.list[tuple[str, str]]:
        with self._db.writing() as sql:
            expired = rows.purge_rows(sql, self._clock() - self._undo_seconds)
        self._remove_files(expired)  # rows first: a crash here leaves files that _recover removes
        return expired

    def _remove_files(self, items: builtins.list[tuple[str, str]]) -> None:
        for key, item_id in items:
            for path in self._paths(key, item_id):
                path.unlink(missing_ok=True)

    def _query(self, sql: str, params: tuple[object, ...]) -> builtins.list[tuple[Any, ...]]:
        return self._db.fetch(sql, params)

    async def _count(self, sql: str, params: tuple[object, ...]) -> int:
        found = await asyncio.to_thread(self._query, sql, params)
        return int(found[0][0])

    def _runs(self, owner: str, sql: str, params: tuple[object, ...]) -> builtins.list[HistoryRun]:
        """The runs `sql` selects (the owner is its first parameter), whole, from one snapshot."""
        key = _owner_dir(owner)
        with self._db.reading() as conn:
            runs, item_rows = rows.select_runs(conn, key, sql, (key, *params))
        items: dict[str, builtins.list[HistoryItem]] = {}
        for item in (self._item(key, row) for row in item_rows):
            items.setdefault(item.run_id, []).append(item)
        return [rows.run_of(run, items.get(run["id"], [])) for run in runs]

    def _recover(self) -> None:
        self._purge()
        kept: set[tuple[str, str]] = set()
        dropped: builtins.list[tuple[str, str]] = []
        runs: set[tuple[str, str]] = set()
        for item_id, key, run_id in self._query("SELECT id, owner, run_id FROM history_items", ()):
            png, webp = self._paths(str(key), str(item_id))
            if not png.exists():
                dropped.append((key, item_id))
                runs.add((key, run_id))
                webp.unlink(missing_ok=True)
                continue
            kept.add((key, item_id))
            if not webp.exists():  # only by hand; the PNG is what matters, the preview is cheap
                with contextlib.suppress(OSError, ValueError):  # a damaged PNG must not stop startup
                    write_atomic(webp, _thumbnail(png.read_bytes()))
        if dropped:
            with self._db.writing() as sql:
                rows.delete_rows(sql, dropped, runs)
        remove_leftovers(self._images, kept, older_than=time.time() - _LEFTOVER_AGE_S)

    # --- helpers -----------------------------------------------------------------------------------

    def _paths(self, key: str, item_id: str) -> tuple[Path, Path]:
        folder = self._images / key
        return folder / f"{item_id}.png", folder / f"{item_id}.webp"

    def _item(self, key: str, row: tuple[object, ...]) -> HistoryItem:
        fields = dict(zip(rows.FIELDS, row, strict=True))
        image_path, thumb_path = self._paths(key, str(fields["id"]))
        return HistoryItem.model_validate({**fields, "image_path": image_path, "thumb_path": thumb_path})

    def _where(self, owner: str, filters: Filters) -> tuple[str, tuple[object, ...]]:
        return filters.where(_owner_dir(owner), search=self._search)


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")


def _owner_dir(owner: str) -> str:
    if not owner:
        raise ValueError("a history owner is required")
    return hashlib.sha256(owner.encode()).hexdigest()[:32]
