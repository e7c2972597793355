"""The history tables and their migrations (db.migrate), and the full-text index kept beside them.

Component "history" (numbered steps, append-only):

1. history_items: one row per image.
2. history_items rebuilt with `seq INTEGER PRIMARY KEY` (a rowid that VACUUM cannot renumber, which
   the full-text index points at), `deleted_at` (the trash: set by a delete, cleared by an undo, the
   row purged once the undo window has passed) and `prompt_folded` recomputed with
   history_search.fold; history_runs (one row per run: its settings and every provider it was sent
   to, in order); history_results (one row per provider result: its costs, kept after its images are
   deleted, because money spent stays spent). Both are backfilled from the existing rows.

Component "history_search" (only where SQLite has FTS5): history_fts, an external-content FTS5 index
of owner and prompt_folded (tokenizer `unicode61 remove_diacritics 2`, prefix indexes), kept in sync
by triggers inside the writing transaction, and built from the existing rows. It is separate from
"history" because it depends on the platform's SQLite: where FTS5 is missing, the triggers are
dropped (so writes keep working) and the component forgotten, and the next start with FTS5 creates
and fills it again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3

from .db import migrate, transaction
from .history_search import fold

__all__ = ["fts5_available", "prepare"]

log = logging.getLogger(__name__)

_ITEM_COLUMNS = (
    "id, owner, created_at, provider, provider_label, prompt, prompt_folded, width, height, steps, seed,"
    " sampler, scheduler, num_images, idx, run_id, estimated_cost_usd, reported_cost_usd, latency_s"
)
_REQUEST_COLUMNS = "prompt, width, height, steps, seed, sampler, scheduler, num_images"
HISTORY_STEPS = [
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
    [
        "CREATE TABLE history_items_v2 (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " owner TEXT NOT NULL, created_at REAL NOT NULL, provider TEXT NOT NULL,"
        " provider_label TEXT NOT NULL, prompt TEXT NOT NULL, prompt_folded TEXT NOT NULL,"
        " width INTEGER NOT NULL, height INTEGER NOT NULL, steps INTEGER NOT NULL, seed INTEGER,"
        " sampler TEXT, scheduler TEXT, num_images INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " run_id TEXT NOT NULL, estimated_cost_usd TEXT, reported_cost_usd TEXT,"
        " latency_s REAL NOT NULL, deleted_at REAL)",
        f"INSERT INTO history_items_v2 ({_ITEM_COLUMNS})"
        f" SELECT {_ITEM_COLUMNS.replace('prompt_folded', 'history_fold(prompt)')}"
        " FROM history_items ORDER BY created_at, run_id, idx",
        "DROP TABLE history_items",
        "ALTER TABLE history_items_v2 RENAME TO history_items",
        # Trashed rows are in no listing index: every listing says `deleted_at IS NULL`.
        "CREATE INDEX history_owner_time ON history_items (owner, created_at DESC, run_id, idx)"
        " WHERE deleted_at IS NULL",
        "CREATE INDEX history_owner_provider_time"
        " ON history_items (owner, provider, created_at DESC, run_id, idx) WHERE deleted_at IS NULL",
        "CREATE INDEX history_owner_run ON history_items (owner, run_id, idx)",
        "CREATE INDEX history_trash ON history_items (deleted_at) WHERE deleted_at IS NOT NULL",
        "CREATE TABLE history_runs (owner TEXT NOT NULL, run_id TEXT NOT NULL, created_at REAL NOT NULL,"
        " prompt TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, steps INTEGER NOT NULL,"
        " seed INTEGER, sampler TEXT, scheduler TEXT, num_images INTEGER NOT NULL,"
        " providers TEXT NOT NULL, PRIMARY KEY (owner, run_id))",
        "CREATE INDEX history_runs_owner_time ON history_runs (owner, created_at DESC, run_id)",
        # Until now every result got a run id of its own: a run is one provider, its seed the images'.
        f"INSERT INTO history_runs (owner, run_id, created_at, {_REQUEST_COLUMNS}, providers)"
        f" SELECT owner, run_id, min(created_at), {_REQUEST_COLUMNS}, json_array(provider)"
        " FROM history_items GROUP BY owner, run_id",
        "CREATE TABLE history_results (owner TEXT NOT NULL, run_id TEXT NOT NULL, provider TEXT NOT NULL,"
        " created_at REAL NOT NULL, estimated_cost_usd TEXT, reported_cost_usd TEXT)",
        "CREATE INDEX history_results_owner_time ON history_results (owner, created_at)",
        # Each image row repeats its result's cost: one row per result, not per image.
        "INSERT INTO history_results"
        " (owner, run_id, provider, created_at, estimated_cost_usd, reported_cost_usd)"
        " SELECT owner, run_id, provider, min(created_at), estimated_cost_usd, reported_cost_usd"
        " FROM history_items GROUP BY owner, run_id, provider",
    ],
]
_TRIGGERS = ("history_fts_insert", "history_fts_delete", "history_fts_update")
_FTS_DELETE = (
    "INSERT INTO history_fts (history_fts, rowid, owner, prompt_folded)"
    " VALUES ('delete', old.seq, old.owner, old.prompt_folded);"
)
_FTS_INSERT = (
    "INSERT INTO history_fts (rowid, owner, prompt_folded) VALUES (new.seq, new.owner, new.prompt_folded);"
)
_AFTER = "CREATE TRIGGER IF NOT EXISTS history_fts_{0} AFTER {1} ON history_items BEGIN {2} END"
SEARCH_STEPS = [
    [
        # IF NOT EXISTS: after a stay on a platform without FTS5 the table is there, only stale.
        # The owner hash is indexed too, so a search reads only that person's matches; prefix
        # indexes of 1 to 3 characters keep short prefixes ("l", "ca": search as you type) cheap.
        "CREATE VIRTUAL TABLE IF NOT EXISTS history_fts USING fts5(owner, prompt_folded,"
        " content='history_items', content_rowid='seq', tokenize='unicode61 remove_diacritics 2',"
        " prefix='1 2 3')",
        _AFTER.format("insert", "INSERT", _FTS_INSERT),
        _AFTER.format("delete", "DELETE", _FTS_DELETE),
        _AFTER.format("update", "UPDATE OF owner, prompt_folded", f"{_FTS_DELETE} {_FTS_INSERT}"),
        "INSERT INTO history_fts (history_fts) VALUES ('rebuild')",
    ],
]


@functools.cache
def fts5_available() -> bool:
    """Whether this platform's SQLite has FTS5 with the tokenizer options the index uses."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def prepare(conn: sqlite3.Connection) -> bool:
    """Migrate the history tables; True when searches can use the full-text index."""
    conn.create_function("history_fold", 1, fold, deterministic=True)
    migrate(conn, "history", HISTORY_STEPS)
    if fts5_available():
        migrate(conn, "history_search", SEARCH_STEPS)
        return True
    log.warning("SQLite here has no FTS5: history search falls back to substring matching")
    with transaction(conn):
        for trigger in _TRIGGERS:  # they would fail every write without the fts5 module
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DELETE FROM schema_versions WHERE component = 'history_search'")
    return False
