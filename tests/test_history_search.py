"""History search (SQLite FTS5): words in any order, prefixes, folding, literal syntax, filters, honest
counts; the substring fallback where FTS5 is missing; the upgrade of a database of the first schema."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from history_helpers import NOON, Clock, result, tiny_png
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flux_playground import history_schema
from flux_playground.db import migrate, open_db
from flux_playground.history import History, _owner_dir, period_start
from flux_playground.history_search import MAX_WORDS, SearchMode, fts_query, search_words

#: Every test here runs on SQLite and on PostgreSQL (conftest.database_backend).
pytestmark = pytest.mark.usefixtures("database_backend")

ALICE, BOB = "hf:alice", "anon:bob-secret"
PROMPTS = [
    "A red tram in Lisbon, rainy evening",
    "Lisboa at night",
    "Café de Flore, morning",
    "Straße im Regen",
    "ｆｕｌｌｗｉｄｔｈ fox",
    "100% cotton",
    "a_b test",
    'say "hello" twice',
    "NOT a fox",
    "cats AND dogs",
    "near the sea",
    "fox-trot (dance)",
    "x*y col:umn ^caret",
    "OR else",
]


async def prompts(store: History, query: str, owner: str = ALICE, **filters: object) -> set[str]:
    items = await store.list(owner, query=query, limit=1000, **filters)  # type: ignore[arg-type]
    assert await store.count(owner, query=query, **filters) == len(items)  # type: ignore[arg-type]
    return {item.prompt for item in items}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[History]:
    history = History(tmp_path)
    for prompt in PROMPTS:
        asyncio.run(history.add(ALICE, result(prompt)))
    yield history
    history.close()


def test_words_in_any_order_as_prefixes_folding_case_width_and_diacritics(store: History) -> None:
    tram = {"A red tram in Lisbon, rainy evening"}
    for query in [
        "lisbon",
        "lisbon rainy",
        "rainy lisbon",
        "lisb rain",
        "  RAINY   lisbon!  ",
        "evening, tram",
    ]:
        assert asyncio.run(prompts(store, query)) == tram, query
    assert asyncio.run(prompts(store, "lisb")) == tram | {"Lisboa at night"}
    assert asyncio.run(prompts(store, "lisboa")) == {"Lisboa at night"}
    assert asyncio.run(prompts(store, "cafe")) == {"Café de Flore, morning"}
    assert asyncio.run(prompts(store, "CAFÉ flore")) == {"Café de Flore, morning"}
    assert asyncio.run(prompts(store, "strasse")) == {"Straße im Regen"}
    assert asyncio.run(prompts(store, "fullwidth")) == {"ｆｕｌｌｗｉｄｔｈ fox"}
    assert asyncio.run(prompts(store, "lisbon rome")) == set()  # every word is required
    assert asyncio.run(prompts(store, "bon")) == set()  # a prefix, not any substring


def test_fts_syntax_in_a_query_is_literal_text(store: History) -> None:
    cases = {
        '"hello': {'say "hello" twice'},
        'hello" twice"': {'say "hello" twice'},
        "NOT fox": {"NOT a fox"},
        "fox NOT": {"NOT a fox"},
        "cats AND": {"cats AND dogs"},
        "fox OR dogs": set(),  # three words, not a disjunction
        "OR": {"OR else"},
        "NEAR(fox sea)": set(),
        "near sea": {"near the sea"},
        "fox*": {"ｆｕｌｌｗｉｄｔｈ fox", "NOT a fox", "fox-trot (dance)"},
        "fox -trot": {"fox-trot (dance)"},  # "-" excludes nothing: it is punctuation
        "prompt_folded:fox": set(),
        "col:umn": {"x*y col:umn ^caret"},
        "^caret": {"x*y col:umn ^caret"},
        "(dance": {"fox-trot (dance)"},
        "a_b": {"a_b test"},
        "100%": {"100% cotton"},
    }
    for query, expected in cases.items():
        assert asyncio.run(prompts(store, query)) == expected, query
    for key in (_owner_dir(ALICE), _owner_dir(ALICE)[:3]):  # words look in the prompt only
        assert asyncio.run(prompts(store, key)) == set()


def test_text_without_words_is_matched_literally_never_as_everything(store: History) -> None:
    assert asyncio.run(prompts(store, "%")) == {"100% cotton"}
    assert asyncio.run(prompts(store, "_")) == {"a_b test"}
    assert asyncio.run(prompts(store, "-")) == {"fox-trot (dance)"}
    assert asyncio.run(prompts(store, '"')) == {'say "hello" twice'}
    assert asyncio.run(prompts(store, "*")) == {"x*y col:umn ^caret"}
    for query in ["\\", "()", '""', "-*-", "🦊"]:
        assert asyncio.run(prompts(store, query)) == set(), query
    assert asyncio.run(prompts(store, "   ")) == set(PROMPTS)  # an empty box filters nothing


def test_the_query_text_sent_to_fts5() -> None:
    assert search_words('Lisb "rain" rain NEAR(x) a_b 100%') == ["lisb", "rain", "near", "x", "a", "b", "100"]
    assert fts_query("0a1b", ["lisb", "rain"]) == 'owner : "0a1b" AND prompt_folded : ("lisb"* "rain"*)'
    assert fts_query("0a1b", ['say"']) == 'owner : "0a1b" AND prompt_folded : ("say"""*)'
    assert search_words("-*:^()\"'") == []


async def test_filters_combine_and_counts_are_honest(tmp_path: Path) -> None:
    clock = Clock(NOON - 3 * 86400)
    store = History(tmp_path, clock=clock)
    for day in range(4):  # 3 days ago … today, one run a day at two providers
        await store.add(ALICE, result(f"lisbon tram day {day}", "segmind"))
        await store.add(ALICE, result(f"lisbon tram day {day}", "deepinfra", n=2))
        clock.now += 86400
    await store.add(BOB, result("lisbon tram of bob", "segmind"))
    now = datetime.fromtimestamp(NOON, UTC)
    today = period_start("today", now)
    assert today == datetime(2026, 3, 14, tzinfo=UTC)
    assert (await store.total(ALICE), await store.count(ALICE, query="lisbon")) == (12, 12)
    assert await store.count(ALICE, query="lisbon", provider="deepinfra") == 8
    assert await store.count(ALICE, query="lisbon", provider="deepinfra", since=today) == 2
    week = period_start("7 days", now)
    assert await store.count(ALICE, since=week, until=today) == 9
    assert await prompts(store, "tram", since=now - timedelta(days=2), until=today) == {
        "lisbon tram day 1",
        "lisbon tram day 2",
    }
    assert await store.count(ALICE, query="day 3", provider="segmind", since=today) == 1
    assert await store.count(ALICE, query="rome") == 0 and await store.total(ALICE) == 12
    assert await store.count(ALICE, query="bob") == 0 and await store.total(BOB) == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.count(ALICE, since=datetime(2026, 3, 14))
    store.close()


def test_period_start() -> None:
    now = datetime(2026, 3, 14, 1, 30, tzinfo=UTC)
    assert period_start("today", now) == datetime(2026, 3, 14, tzinfo=UTC)
    assert period_start("7 days", now) == datetime(2026, 3, 7, 1, 30, tzinfo=UTC)
    assert period_start("30 days", now) == datetime(2026, 2, 12, 1, 30, tzinfo=UTC)


def _fts_in_sync(data_dir: Path) -> None:
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    try:  # FTS5 compares its index with every row of the content table; raises if they differ
        conn.execute("INSERT INTO history_fts (history_fts, rank) VALUES ('integrity-check', 1)")
        indexed = conn.execute("SELECT count(*) FROM history_fts").fetchone()[0]
        assert indexed == conn.execute("SELECT count(*) FROM history_items").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.single_pass("about SQLite's FTS5 index and its own file")
async def test_the_index_follows_adds_deletes_purges_and_recovery(tmp_path: Path) -> None:
    clock = Clock()
    store = History(tmp_path, undo_seconds=10, clock=clock)
    [tram] = await store.add(ALICE, result("lisbon tram"))
    [gone] = await store.add(ALICE, result("lisbon ferry"))
    [lost] = await store.add(ALICE, result("lisbon castle"))
    await store.delete(ALICE, gone.id)
    assert {i.id for i in await store.list(ALICE, query="lisb")} == {tram.id, lost.id}
    clock.now += 11
    assert await store.purge_expired() == 1
    store.close()
    _fts_in_sync(tmp_path)
    lost.image_path.unlink()  # recovery drops its row
    store = History(tmp_path, clock=clock)
    assert [i.id for i in await store.list(ALICE, query="lisbon")] == [tram.id]
    store.close()
    _fts_in_sync(tmp_path)


@pytest.mark.single_pass("about SQLite's FTS5 index and its own file")
async def test_without_fts5_words_match_as_substrings_and_the_index_is_rebuilt_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = History(tmp_path)
    [tram] = await store.add(ALICE, result("A red tram in Lisbon, rainy evening"))
    store.close()

    monkeypatch.setattr(history_schema, "fts5_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="flux_playground.history_schema"):
        store = History(tmp_path)
    assert [r.getMessage() for r in caplog.records] == [
        "SQLite here has no FTS5: history search falls back to substring matching"
    ]
    [cafe] = await store.add(ALICE, result("Café in Lisboa"))  # works without the fts5 module's triggers
    assert await prompts(store, "lisb rain") == {tram.prompt}
    assert await prompts(store, "rainy LISBON") == {tram.prompt}
    assert await prompts(store, "isbo") == {tram.prompt, cafe.prompt}  # substrings, a superset
    assert await prompts(store, "%") == set() and await prompts(store, "lisbon rome") == set()
    assert await prompts(store, "lisb", owner=BOB) == set()
    conn = store._db._conn
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []
    store.close()

    monkeypatch.undo()
    store = History(tmp_path)  # FTS5 again: the index is rebuilt, the item added meanwhile included
    assert await prompts(store, "cafe lisboa") == {cafe.prompt}
    store.close()
    _fts_in_sync(tmp_path)


@pytest.mark.single_pass("about SQLite's FTS5 index and its own file")
async def test_a_database_of_the_first_schema_upgrades_in_place(tmp_path: Path) -> None:
    """Rows written by the previous release: listed, searchable, grouped in runs, counted in spend."""
    owner = "hf:alice"
    alice, bob = _owner_dir(owner), _owner_dir(BOB)
    conn = open_db(tmp_path / "history.sqlite3")
    migrate(conn, "history", [step.sqlite for step in history_schema.HISTORY_STEPS[:1]])
    old_rows = [  # (owner, id, run_id, idx, provider, prompt, estimated, reported)
        (alice, "item-one-aaaaaaaaaaaaa", "run-1", 0, "segmind", "Lisbon tram at night", "0.004", None),
        (alice, "item-two-aaaaaaaaaaaaa", "run-1", 1, "segmind", "Lisbon tram at night", "0.004", None),
        (alice, "item-three-aaaaaaaaaaa", "run-2", 0, "deepinfra", "Café sur la Seine", "0.001", "0.0009"),
        (bob, "item-bob-bbbbbbbbbbbbb", "run-3", 0, "segmind", "Lisbon ferry", "0.002", None),
    ]
    for n, (key, item_id, run_id, idx, provider, prompt, estimated, reported) in enumerate(old_rows):
        conn.execute(
            "INSERT INTO history_items (id, owner, created_at, provider, provider_label, prompt,"
            " prompt_folded, width, height, steps, seed, sampler, scheduler, num_images, idx, run_id,"
            " estimated_cost_usd, reported_cost_usd, latency_s)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 512, 768, 4, 42, NULL, NULL, ?, ?, ?, ?, ?, 1.5)",
            (item_id, key, NOON + int(run_id[-1]), provider, provider.title(), prompt, prompt.casefold(),
             2 if run_id == "run-1" else 1, idx, run_id, estimated, reported),
        )  # fmt: skip
        folder = tmp_path / "images" / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{item_id}.png").write_bytes(tiny_png(n))
        (folder / f"{item_id}.webp").write_bytes(b"webp")
    conn.close()

    store = History(tmp_path, clock=Clock(NOON + 10))
    listed = await store.list(owner)
    assert [(i.id, i.run_id, i.index) for i in listed] == [
        ("item-three-aaaaaaaaaaa", "run-2", 0),
        ("item-one-aaaaaaaaaaaaa", "run-1", 0),
        ("item-two-aaaaaaaaaaaaa", "run-1", 1),
    ]
    assert listed[0].reported_cost_usd == Decimal("0.0009")
    assert await prompts(store, "cafe seine", owner=owner) == {"Café sur la Seine"}
    assert await prompts(store, "lisb tram", owner=owner) == {"Lisbon tram at night"}
    runs = await store.list_runs(owner)
    assert [(r.id, r.providers, [i.id for i in r.items]) for r in runs] == [
        ("run-2", ("deepinfra",), ["item-three-aaaaaaaaaaa"]),
        ("run-1", ("segmind",), ["item-one-aaaaaaaaaaaaa", "item-two-aaaaaaaaaaaaa"]),
    ]
    assert (runs[1].prompt, runs[1].width, runs[1].height, runs[1].seed, runs[1].num_images) == (
        "Lisbon tram at night", 512, 768, 42, 2,
    )  # fmt: skip
    spend = await store.spent_today(owner)
    assert (spend.estimated_usd, spend.reported_usd, spend.results) == (
        Decimal("0.005"),
        Decimal("0.0009"),
        2,
    )
    assert await prompts(store, "ferry", owner=owner) == set() and await prompts(store, "ferry", BOB) == {
        "Lisbon ferry"
    }
    assert [r.id for r in await store.list_runs(BOB)] == ["run-3"]
    assert (await store.spent_today(BOB)).estimated_usd == Decimal("0.002")
    versions = dict(store._db._conn.execute("SELECT component, version FROM schema_versions").fetchall())
    assert versions == {"history": 2, "history_search": 1}
    store.close()
    _fts_in_sync(tmp_path)


# --- generated queries ---------------------------------------------------------------------------------

SYNTAX = [
    '"',
    "*",
    ":",
    "^",
    "(",
    ")",
    "NEAR",
    "NEAR(",
    "AND",
    "OR",
    "NOT",
    "-",
    "+",
    "{",
    "}",
    "prompt_folded:",
]
PIECES = st.one_of(
    st.sampled_from([*SYNTAX, "fox", "fo", "lisb", "rain", "cats", "a", "100", "%", "_", "hello", "x"]),
    st.text(alphabet=string.printable, max_size=6),
)
ASCII_QUERIES = st.one_of(
    st.lists(PIECES, max_size=6).map(" ".join),
    st.lists(PIECES, max_size=6).map("".join),
    st.text(alphabet=string.printable, max_size=20),
)
ASCII_PROMPTS = [p for p in PROMPTS if p.isascii()]
TOKEN = re.compile(r"[a-z0-9]+")


def expected_prompts(query: str, full_text: bool) -> set[str]:
    """What the rules say, for ASCII: every word a prefix of a word (FTS) or a substring (fallback);
    no word at all: the literal text; only spaces: everything."""
    text = query.strip()
    if not text:
        return set(ASCII_PROMPTS)
    words = TOKEN.findall(text.casefold())
    if not words:
        return {p for p in ASCII_PROMPTS if text.casefold() in p.casefold()}
    if full_text:
        return {
            p
            for p in ASCII_PROMPTS
            if all(any(t.startswith(w) for t in TOKEN.findall(p.casefold())) for w in words)
        }
    return {p for p in ASCII_PROMPTS if all(w in p.casefold() for w in words)}


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Any
) -> Iterator[dict[SearchMode, History]]:
    """The ASCII prompts for Alice (and the same for Bob), in each way of matching words: FTS5, the
    substring fallback, and PostgreSQL's tsvector."""
    made: dict[SearchMode, History] = {}
    for mode in get_args(SearchMode):
        with pytest.MonkeyPatch.context() as patch:
            if mode == "like":
                patch.setattr(history_schema, "fts5_available", lambda: False)
            url = postgres_server.new_database() if mode == "tsvector" else None
            made[mode] = History(tmp_path_factory.mktemp(mode), database_url=url)
        assert made[mode]._search == mode
        for prompt in ASCII_PROMPTS:
            for owner in (ALICE, BOB):
                asyncio.run(made[mode].add(owner, result(prompt)))
    yield made
    for store in made.values():
        store.close()


@pytest.mark.single_pass("its `stores` are on every back end already")
@settings(max_examples=300, deadline=None, database=None)
@given(query=ASCII_QUERIES)
@example(query='" OR "')
@example(query="NEAR(a b)")
@example(query="-fox")
@example(query="*")
@example(query="a:b")
@example(query="^")
def test_any_ascii_query_means_exactly_the_rules(stores: dict[SearchMode, History], query: str) -> None:
    for mode, store in stores.items():
        assert asyncio.run(prompts(store, query)) == expected_prompts(query, mode != "like"), (mode, query)


@pytest.mark.single_pass("its `stores` are on every back end already")
@settings(max_examples=300, deadline=None, database=None)
@given(query=st.text(max_size=40))
@example(query="\u0301")
@example(query="ꭰ")
@example(query="\x00")
@example(query="🦊 " * 200)
def test_any_text_is_a_safe_query_of_ones_own_items(stores: dict[SearchMode, History], query: str) -> None:
    for store in stores.values():
        items = asyncio.run(store.list(ALICE, query=query, limit=1000))
        assert asyncio.run(store.count(ALICE, query=query)) == len(items)
        assert {item.prompt for item in items} <= set(ASCII_PROMPTS)
        mine = {i.id for i in asyncio.run(store.list(ALICE, limit=1000))}
        assert {item.id for item in items} <= mine


@pytest.mark.single_pass("its `stores` are on every back end already")
def test_a_query_of_thousands_of_words_is_safe_and_bounded(stores: dict[SearchMode, History]) -> None:
    query = " ".join(os.urandom(4).hex() for _ in range(2000))
    assert search_words(query) == query.split()[:MAX_WORDS] and MAX_WORDS == 64
    for store in stores.values():
        assert asyncio.run(prompts(store, query)) == set()
