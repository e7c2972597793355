"""The history tables and their migrations (database.Step: SQLite and PostgreSQL), and the full-text
index kept beside them.

Component "history" (numbered steps, append-only):

1. history_items: one row per image.
2. history_items rebuilt with `seq INTEGER PRIMARY KEY` (a rowid that VACUUM cannot renumber, which
   the full-text index points at), `deleted_at` (the trash: set by a delete, cleared by an undo, the
   row purged once the undo window has passed) and `prompt_folded` recomputed with
   history_search.fold; history_runs (one row per run: its settings and every provider it was sent
   to, in order); history_results (one row per provider result: its costs, kept after its images are
   deleted, because money spent stays spent). Both are backfilled from the existing rows.
   PostgreSQL support began here: its step 1 is empty and its step 2 makes the same tables, plus
   `words`, the prompt's search words as a tsvector (computed by history_search.index_words, as no
   PostgreSQL text-search configuration splits and folds words the way FTS5's unicode61 does), and
   history_volume, the id of the images folder this database's rows point into (`images_root`).

Component "history_search" (only where SQLite has FTS5): history_fts, an external-content FTS5 index
of owner and prompt_folded (tokenizer `unicode61 remove_diacritics 2`, prefix indexes), kept in sync
by triggers inside the writing transaction, and built from the existing rows. It is separate from
"history" because it depends on the platform's SQLite: where FTS5 is missing, the triggers are
dropped (so writes keep working) and the component forgotten, and the next start with FTS5 creates
and fills it again. On PostgreSQL it is a GIN index of `words`, always available.
"""

from __future__ import annotations

import functools
import logging
import secrets
import sqlite3
from pathlib import Path

from .database import Database, Step
from .errors import ConfigurationError
from .history_search import SearchMode

__all__ = ["HISTORY_STEPS", "SEARCH_STEPS", "fts5_available", "images_root", "prepare"]

log = logging.getLogger(__name__)

_ITEM_COLUMNS = (
    "id, owner, created_at, provider, provider_label, prompt, prompt_folded, width, height, steps, seed,"
    " sampler, scheduler, num_images, idx, run_id, estimated_cost_usd, reported_cost_usd, latency_s"
)
_REQUEST_COLUMNS = "prompt, width, height, steps, seed, sampler, scheduler, num_images"
#: The v2 item indexes, the same text in both dialects.
_ITEM_INDEXES = (
    # Trashed rows are in no listing index: every listing says `deleted_at IS NULL`.
    "CREATE INDEX history_owner_time ON history_items (owner, created_at DESC, run_id, idx)"
    " WHERE deleted_at IS NULL",
    "CREATE INDEX history_owner_provider_time"
    " ON history_items (owner, provider, created_at DESC, run_id, idx) WHERE deleted_at IS NULL",
    "CREATE INDEX history_owner_run ON history_items (owner, run_id, idx)",
    "CREATE INDEX history_trash ON history_items (deleted_at) WHERE deleted_at IS NOT NULL",
)
HISTORY_STEPS = [
    Step(
        sqlite=(
            "CREATE TABLE history_items (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " created_at REAL NOT NULL, provider TEXT NOT NULL, provider_label TEXT NOT NULL,"
            " prompt TEXT NOT NULL, prompt_folded TEXT NOT NULL, width INTEGER NOT NULL,"
            " height INTEGER NOT NULL, steps INTEGER NOT NULL, seed INTEGER, sampler TEXT,"
            " scheduler TEXT, num_images INTEGER NOT NULL, idx INTEGER NOT NULL, run_id TEXT NOT NULL,"
            " estimated_cost_usd TEXT, reported_cost_usd TEXT, latency_s REAL NOT NULL)",
            "CREATE INDEX history_owner_time ON history_items (owner, created_at DESC, run_id, idx)",
            "CREATE INDEX history_owner_provider_time"
            " ON history_items (owner, provider, created_at DESC, run_id, idx)",
        ),
        postgres=(),
    ),
    Step(
        sqlite=(
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
            *_ITEM_INDEXES,
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
        ),
        postgres=(
            "CREATE TABLE history_items (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
            " provider TEXT NOT NULL, provider_label TEXT NOT NULL, prompt TEXT NOT NULL,"
            " prompt_folded TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,"
            " steps INTEGER NOT NULL, seed BIGINT, sampler TEXT, scheduler TEXT, num_images INTEGER NOT NULL,"
            " idx INTEGER NOT NULL, run_id TEXT NOT NULL, estimated_cost_usd TEXT, reported_cost_usd TEXT,"
            " latency_s DOUBLE PRECISION NOT NULL, deleted_at DOUBLE PRECISION, words TSVECTOR NOT NULL)",
            *_ITEM_INDEXES,
            "CREATE TABLE history_runs (owner TEXT NOT NULL, run_id TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, prompt TEXT NOT NULL, width INTEGER NOT NULL,"
            " height INTEGER NOT NULL, steps INTEGER NOT NULL, seed BIGINT, sampler TEXT, scheduler TEXT,"
            " num_images INTEGER NOT NULL, providers TEXT NOT NULL, PRIMARY KEY (owner, run_id))",
            "CREATE INDEX history_runs_owner_time ON history_runs (owner, created_at DESC, run_id)",
            "CREATE TABLE history_results (owner TEXT NOT NULL, run_id TEXT NOT NULL, provider TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, estimated_cost_usd TEXT, reported_cost_usd TEXT)",
            "CREATE INDEX history_results_owner_time ON history_results (owner, created_at)",
            # One row: replicas agree on the images folder, and one on another volume is refused.
            "CREATE TABLE history_volume (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)",
        ),
    ),
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
    Step(
        sqlite=(
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
        ),
        postgres=(
            # Only the words; the owner condition uses its own index and the planner ANDs the two.
            "CREATE INDEX history_words ON history_items USING GIN (words)",
        ),
    ),
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


def prepare(db: Database) -> SearchMode:
    """Migrate the history tables; how searches match words here (history_search.py)."""
    db.migrate("history", HISTORY_STEPS)
    if db.dialect == "postgres":
        db.migrate("history_search", SEARCH_STEPS)
        return "tsvector"
    if fts5_available():
        db.migrate("history_search", SEARCH_STEPS)
        return "fts5"
    log.warning("SQLite here has no FTS5: history search falls back to substring matching")
    with db.writing() as sql:
        for trigger in _TRIGGERS:  # they would fail every write without the fts5 module
            sql.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        sql.execute("DELETE FROM schema_versions WHERE component = 'history_search'")
    return "like"


def images_root(db: Database, images: Path) -> Path:
    """The folder the rows of `db` point into, under the data directory's `images`.

    SQLite: `images` itself, as always. PostgreSQL: `images/pg-<token>`, the token kept in the
    database, so rows never point into a folder another database's recovery sweeps (a SQLite history
    in the same data directory, another PostgreSQL database), and a replica whose data directory is
    not the shared volume is refused at start instead of finding every image "missing" and dropping
    rows other replicas wrote.
    """
    if db.dialect == "sqlite":
        return images
    with db.writing() as sql:
        # The first replica ever makes the token and its folder before it commits; one starting at
        # the same moment waits at the conflicting insert, then reads that token.
        made = sql.execute(
            "INSERT INTO history_volume (id, token) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
            (secrets.token_hex(8),),
        ).rowcount
        token = str(sql.execute("SELECT token FROM history_volume").fetchone()[0])
        root = images / f"pg-{token}"
        if made:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not root.is_dir():
        raise ConfigurationError(
            f"The history in FLUX_PLAYGROUND_DATABASE_URL keeps its images in {root}, which this "
            "replica does not have: every replica must mount the same data directory "
            "(FLUX_PLAYGROUND_DATA_DIR on a shared volume; docs/deploying.md)."
        )
    return root
