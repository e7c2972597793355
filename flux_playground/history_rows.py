"""The history's SQL beyond search: rows in, runs and results recorded, the trash, runs read back.

Each function takes the connection the caller holds its lock on, inside the caller's transaction (or
read snapshot), and works on one owner's hash (`key`) unless it says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from .database import Dialect, Statements
from .history_models import REQUEST_FIELDS, HistoryItem, HistoryRun
from .history_search import fold, index_words
from .models import GenerationResult

__all__ = [
    "COLUMNS",
    "FIELDS",
    "delete_rows",
    "insert_items",
    "purge_rows",
    "record_result",
    "record_run",
    "run_of",
    "runs_sql",
    "select_runs",
    "trash",
    "untrash",
]

#: HistoryItem fields kept as columns (`index` is `idx` in SQL, where INDEX is a keyword).
FIELDS = tuple(name for name in HistoryItem.model_fields if not name.endswith("_path"))
COLUMNS = ", ".join("idx" if name == "index" else name for name in FIELDS)
_INSERT = (
    f"INSERT INTO history_items (owner, prompt_folded, {COLUMNS}{{words}})"
    f" VALUES (:owner, :prompt_folded, {', '.join(':' + name for name in FIELDS)}{{words_value}})"
)
_INSERTS = {
    "sqlite": _INSERT.format(words="", words_value=""),  # FTS5 triggers index the prompt
    "postgres": _INSERT.format(words=", words", words_value=", array_to_tsvector(CAST(:words AS text[]))"),
}
_RUN_SETTINGS = {*REQUEST_FIELDS, "seed"}
_RUN_FIELDS = ("id", "created_at", *sorted(_RUN_SETTINGS), "providers")
_RUN_COLUMNS = ", ".join(f"r.{'run_id' if name == 'id' else name}" for name in _RUN_FIELDS)
#: Run ids per `IN (...)`: well under SQLite's limit on bound parameters.
_CHUNK = 500


def insert_items(conn: Statements, dialect: Dialect, key: str, items: Iterable[HistoryItem]) -> None:
    rows = [_item_row(key, item) for item in items]
    if dialect == "postgres":
        rows = [{**row, "words": index_words(str(row["prompt"]))} for row in rows]
    conn.executemany(_INSERTS[dialect], rows)


def record_run(
    conn: Statements,
    key: str,
    run_id: str,
    now: float,
    result: GenerationResult,
    run_providers: Sequence[str],
) -> None:
    """The run's row: made by its first result, which also gives the settings; later results of the
    same run only add their provider when the caller did not name it up front."""
    row = conn.execute(
        "SELECT providers FROM history_runs WHERE owner = ? AND run_id = ?", (key, run_id)
    ).fetchone()
    if row is None:
        providers = list(dict.fromkeys([*run_providers, result.provider]))
        settings = result.request.model_dump(include=_RUN_SETTINGS)
        conn.execute(
            f"INSERT INTO history_runs (owner, run_id, created_at, providers, {', '.join(settings)})"
            f" VALUES (?, ?, ?, ?, {', '.join('?' * len(settings))})",
            (key, run_id, now, json.dumps(providers), *settings.values()),
        )
        return
    providers = json.loads(row[0])
    if result.provider not in providers:
        conn.execute(
            "UPDATE history_runs SET providers = ? WHERE owner = ? AND run_id = ?",
            (json.dumps([*providers, result.provider]), key, run_id),
        )


def record_result(conn: Statements, key: str, run_id: str, now: float, result: GenerationResult) -> None:
    """One row per provider result, for the spend: an item row repeats its result's cost per image."""
    costs = (_money(result.estimated_cost_usd), _money(result.reported_cost_usd))
    conn.execute(
        "INSERT INTO history_results (owner, run_id, provider, created_at, estimated_cost_usd,"
        " reported_cost_usd) VALUES (?, ?, ?, ?, ?, ?)",
        (key, run_id, result.provider, now, *costs),
    )


def trash(conn: Statements, key: str, condition: str, params: tuple[object, ...], now: float) -> int:
    """Mark the owner's live items matching `condition` deleted at `now`; how many."""
    return conn.execute(
        f"UPDATE history_items SET deleted_at = ? WHERE owner = ? AND deleted_at IS NULL AND {condition}",
        (now, key, *params),
    ).rowcount


def untrash(conn: Statements, key: str, condition: str, params: tuple[object, ...], cutoff: float) -> int:
    """Bring back the owner's items matching `condition` deleted after `cutoff`; how many."""
    return conn.execute(
        f"UPDATE history_items SET deleted_at = NULL WHERE owner = ? AND deleted_at > ? AND {condition}",
        (key, cutoff, *params),
    ).rowcount


def purge_rows(conn: Statements, cutoff: float) -> list[tuple[str, str]]:
    """Every owner's items deleted at `cutoff` or before: rows deleted; their (key, id) to unlink."""
    rows = conn.execute(
        "SELECT owner, id, run_id FROM history_items WHERE deleted_at IS NOT NULL AND deleted_at <= ?",
        (cutoff,),
    ).fetchall()
    delete_rows(conn, [(key, item_id) for key, item_id, _ in rows], {(key, run) for key, _, run in rows})
    return [(str(key), str(item_id)) for key, item_id, _ in rows]


def delete_rows(conn: Statements, items: Iterable[tuple[str, str]], runs: Iterable[tuple[str, str]]) -> None:
    """Delete items by (key, id); of `runs` (key, run id), those with no item left go too: a run's
    row holds the prompt, which must not outlive the person's images."""
    conn.executemany("DELETE FROM history_items WHERE owner = ? AND id = ?", items)
    conn.executemany(
        "DELETE FROM history_runs WHERE owner = ? AND run_id = ? AND NOT EXISTS (SELECT 1 FROM"
        " history_items AS i WHERE i.owner = history_runs.owner AND i.run_id = history_runs.run_id)",
        runs,
    )


def runs_sql(where: str) -> str:
    """Runs of the owner (first parameter) with a live item matching `where` (its parameters next).

    Unqualified columns in `where` name the inner history_items, the innermost table.
    """
    return (
        f"SELECT {_RUN_COLUMNS} FROM history_runs AS r WHERE r.owner = ? AND EXISTS"
        f" (SELECT 1 FROM history_items WHERE run_id = r.run_id AND {where})"
    )


def select_runs(
    conn: Statements, key: str, sql: str, params: tuple[object, ...]
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The runs `sql` (from runs_sql) selects as fields, and the live item rows (COLUMNS) of them."""
    runs = [dict(zip(_RUN_FIELDS, row, strict=True)) for row in conn.execute(sql, params)]
    run_ids = [run["id"] for run in runs]
    item_rows: list[tuple[Any, ...]] = []
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        item_rows += conn.execute(
            f"SELECT {COLUMNS} FROM history_items WHERE owner = ? AND deleted_at IS NULL"
            f" AND run_id IN ({', '.join('?' * len(chunk))})",
            (key, *chunk),
        ).fetchall()
    return runs, item_rows


def run_of(fields: dict[str, Any], items: list[HistoryItem]) -> HistoryRun:
    """Cards in run order: by the provider's place in the run, then the image's index."""
    providers: list[str] = json.loads(fields["providers"])
    place = {name: n for n, name in enumerate(providers)}
    items.sort(key=lambda item: (place.get(item.provider, len(place)), item.provider, item.index))
    return HistoryRun.model_validate({**fields, "providers": providers, "items": items})


def _money(value: Decimal | None) -> str | None:
    """Costs as TEXT, so no cent is lost to a float."""
    return None if value is None else str(value)


def _item_row(key: str, item: HistoryItem) -> dict[str, object]:
    row = item.model_dump(include=set(FIELDS))
    for name in ("estimated_cost_usd", "reported_cost_usd"):
        row[name] = _money(row[name])
    return {**row, "owner": key, "prompt_folded": fold(item.prompt)}
