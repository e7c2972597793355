"""History by runs (a comparison reopens as it was), delete with undo, and what a person spent today.
Every one of them private to its owner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from history_helpers import NOON, Clock, result, stored_bytes, stored_tables

from flux_playground.history import History, HistoryItem, Spend

#: Every test here runs on SQLite and on PostgreSQL (conftest.database_backend).
pytestmark = pytest.mark.usefixtures("database_backend")

ALICE, BOB = "hf:alice", "anon:bob-secret"
THREE = ["atlascloud", "deepinfra", "segmind"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[History]:
    history = History(tmp_path, undo_seconds=30, clock=clock)
    yield history
    history.close()


async def comparison(store: History, owner: str = ALICE, prompt: str = "a lighthouse") -> list[HistoryItem]:
    """One run at three providers, as the page saves it: results in arrival order, Atlas failed."""
    run_id = History.new_run_id()
    settings = {
        "width": 832,
        "height": 1216,
        "steps": 3,
        "seed": 99,
        "sampler": "euler",
        "scheduler": "karras",
    }
    segmind = await store.add(
        owner, result(prompt, "segmind", n=2, **settings), run_id=run_id, run_providers=THREE
    )
    deepinfra = await store.add(
        owner, result(prompt, "deepinfra", **settings), run_id=run_id, run_providers=THREE
    )
    return [*deepinfra, *segmind]  # the order shown: providers in run order, then image index


async def test_a_comparison_reopens_as_it_was_shown(store: History) -> None:
    shown = await comparison(store)
    run = await store.get_run(ALICE, shown[0].run_id)
    assert run is not None
    assert run.items == tuple(shown)
    assert [(i.provider, i.index) for i in run.items] == [("deepinfra", 0), ("segmind", 0), ("segmind", 1)]
    assert run.providers == tuple(THREE)  # Atlas failed, but reuse gets the whole run back
    assert run.request.model_dump() == {
        "prompt": "a lighthouse", "width": 832, "height": 1216, "steps": 3, "seed": 99, "num_images": 2,
        "sampler": "euler", "scheduler": "karras",
    }  # fmt: skip
    assert (run.id, run.created_at) == (shown[0].run_id, shown[0].created_at)
    assert await store.list_runs(ALICE) == [run]


async def test_each_add_without_a_run_id_is_a_run_and_providers_join_in_arrival_order(store: History) -> None:
    [alone] = await store.add(ALICE, result("alone"))
    [other] = await store.add(ALICE, result("alone"))
    assert alone.run_id != other.run_id
    run_id = History.new_run_id()
    await store.add(ALICE, result("joined", "segmind"), run_id=run_id)
    await store.add(ALICE, result("joined", "deepinfra"), run_id=run_id)
    await store.add(ALICE, result("joined", "segmind", n=2), run_id=run_id)  # a provider already in it
    run = await store.get_run(ALICE, run_id)
    assert run is not None and run.providers == ("segmind", "deepinfra")
    assert [(i.provider, i.index) for i in run.items] == [
        ("segmind", 0), ("segmind", 0), ("segmind", 1), ("deepinfra", 0)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="run id"):
        await store.add(ALICE, result(), run_id="../x")


async def test_runs_newest_first_paged_filtered_and_counted(store: History, clock: Clock) -> None:
    for n in range(5):
        await comparison(store, prompt=f"harbour {n}" if n % 2 else f"forest {n}")
        clock.now += 60
    await comparison(store, owner=BOB, prompt="harbour of bob")
    runs = await store.list_runs(ALICE)
    assert [r.prompt for r in runs] == ["forest 4", "harbour 3", "forest 2", "harbour 1", "forest 0"]
    pages = [await store.list_runs(ALICE, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [r for page in pages for r in page] == runs and [len(p) for p in pages] == [2, 2, 1]
    assert [r.prompt for r in await store.list_runs(ALICE, query="harb")] == ["harbour 3", "harbour 1"]
    assert await store.count_runs(ALICE) == 5 and await store.count_runs(ALICE, query="harb") == 2
    assert await store.count_runs(ALICE, query="harbour", provider="atlascloud") == 0
    # A provider filter picks the runs; each is still shown whole.
    [whole] = await store.list_runs(ALICE, query="harbour 3", provider="deepinfra")
    assert [i.provider for i in whole.items] == ["deepinfra", "segmind", "segmind"]
    with pytest.raises(ValueError):
        await store.list_runs(ALICE, offset=-1)


async def test_runs_are_private(store: History) -> None:
    mine = await comparison(store)
    run_id = mine[0].run_id
    assert await store.get_run(BOB, run_id) is None
    assert await store.list_runs(BOB) == [] and await store.count_runs(BOB) == 0
    assert await store.list_runs(BOB, query="lighthouse") == []
    # Bob naming Alice's run id saves into a run of his own: her run is untouched.
    await store.add(BOB, result("intruder", "atlascloud"), run_id=run_id, run_providers=["atlascloud"])
    run = await store.get_run(ALICE, run_id)
    assert run is not None and run.items == tuple(mine) and run.providers == tuple(THREE)
    theirs = await store.get_run(BOB, run_id)
    assert theirs is not None and [i.prompt for i in theirs.items] == ["intruder"]
    assert theirs.providers == ("atlascloud",)


async def test_delete_hides_everywhere_and_undo_brings_back_the_same(store: History, clock: Clock) -> None:
    shown = await comparison(store)
    [other] = await store.add(ALICE, result("a lighthouse far away"))
    gone = shown[1]
    assert await store.delete(BOB, gone.id) is False  # not his
    assert await store.delete(ALICE, gone.id) is True
    assert await store.get(ALICE, gone.id) is None
    assert gone.id not in {i.id for i in await store.list(ALICE)}
    assert gone.id not in {i.id for i in await store.list(ALICE, query="lighthouse")}
    counts = [
        await store.count(ALICE),
        await store.count(ALICE, query="lighthouse"),
        await store.total(ALICE),
    ]
    assert counts == [3, 3, 3]
    run = await store.get_run(ALICE, gone.run_id)
    assert run is not None and run.items == (shown[0], shown[2])
    assert await store.restore(BOB, gone.id) is False  # not his either
    clock.now += 29
    assert await store.restore(ALICE, gone.id) is True
    assert await store.restore(ALICE, gone.id) is False  # nothing left to undo
    assert await store.get(ALICE, gone.id) == gone
    assert {i.id for i in await store.list(ALICE)} == {other.id, *(i.id for i in shown)}


async def test_after_the_undo_window_the_item_is_purged(store: History, clock: Clock) -> None:
    [item] = await store.add(ALICE, result("only image of its run"))
    await store.delete(ALICE, item.id)
    clock.now += 30
    assert await store.restore(ALICE, item.id) is False  # too late, even before the sweep ran
    assert await store.purge_expired() == 1
    assert not item.image_path.exists() and not item.thumb_path.exists()
    with store._db.reading() as sql:
        rows = sql.execute("SELECT count(*) FROM history_runs").fetchone()[0]
    assert rows == 0  # the run's row, with its prompt, goes with its last image
    assert await store.get_run(ALICE, item.run_id) is None


async def test_a_delete_sweeps_expired_trash_and_opening_does_too(tmp_path: Path, clock: Clock) -> None:
    store = History(tmp_path, undo_seconds=30, clock=clock)
    first, second, third = [(await store.add(ALICE, result(f"n {n}")))[0] for n in range(3)]
    await store.delete(ALICE, first.id)
    clock.now += 31
    await store.delete(ALICE, second.id)  # sweeps `first`
    assert not first.image_path.exists() and second.image_path.exists()
    store.close()
    clock.now += 31
    store = History(tmp_path, undo_seconds=30, clock=clock)  # sweeps `second`
    assert not second.image_path.exists() and [i.id for i in await store.list(ALICE)] == [third.id]
    store.close()


async def test_delete_and_restore_a_whole_run(store: History, clock: Clock) -> None:
    shown = await comparison(store)
    run_id = shown[0].run_id
    await store.delete(ALICE, shown[0].id)  # one image first
    clock.now += 5
    assert await store.delete_run(BOB, run_id) == 0
    assert await store.delete_run(ALICE, run_id) == 2
    assert await store.get_run(ALICE, run_id) is None and await store.list_runs(ALICE) == []
    assert await store.restore_run(BOB, run_id) == 0
    assert await store.restore_run(ALICE, run_id) == 2  # the run's latest delete, not the earlier one
    run = await store.get_run(ALICE, run_id)
    assert run is not None and run.items == tuple(shown[1:])


async def test_a_crash_between_purging_rows_and_files_leaves_nothing_listed(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = History(tmp_path, undo_seconds=30, clock=clock)
    [item] = await store.add(ALICE, result())
    await store.delete(ALICE, item.id)
    clock.now += 31
    monkeypatch.setattr(History, "_remove_files", lambda self, items: None)  # "crash" after the commit
    assert await store.purge_expired() == 1
    store.close()
    monkeypatch.undo()
    assert item.image_path.exists()
    old = clock.now - 3600
    for path in (item.image_path, item.thumb_path):
        os.utime(path, (old, old))
    store = History(tmp_path, undo_seconds=30, clock=clock)
    assert await store.list(ALICE) == [] and not item.image_path.exists()
    store.close()


def _spend(
    estimated: str, reported: str, results: int, estimated_results: int, reported_results: int
) -> Spend:
    return Spend(
        estimated_usd=Decimal(estimated),
        reported_usd=Decimal(reported),
        results=results,
        estimated_results=estimated_results,
        reported_results=reported_results,
    )


async def test_spent_today_is_exact_per_result_and_private(store: History, clock: Clock) -> None:
    clock.now = NOON - 86400  # yesterday
    await store.add(ALICE, result(estimated="5"))
    clock.now = NOON - 12 * 3600 + 1  # 00:00:01 UTC today
    await store.add(ALICE, result(n=3, estimated="0.1"))  # three images, one result: counted once
    clock.now = NOON
    [deleted] = await store.add(ALICE, result(estimated="0.2", reported="0.15"))
    await store.add(ALICE, result(provider="deepinfra", estimated=None, reported="0.0000001"))
    await store.add(BOB, result(estimated="7", reported="7"))
    await store.delete(ALICE, deleted.id)
    clock.now += 60
    await store.purge_expired()  # deleted images still cost what they cost
    assert await store.spent_today(ALICE) == _spend("0.3", "0.1500001", 3, 2, 2)
    assert await store.spent_today(BOB) == _spend("7", "7", 1, 1, 1)
    assert await store.spent_today("hf:nobody") == _spend("0", "0", 0, 0, 0)


def test_nothing_in_the_database_names_an_owner(tmp_path: Path) -> None:
    import asyncio

    store = History(tmp_path)
    asyncio.run(comparison(store, owner="anon:very-secret-token"))
    stored, tables = stored_bytes(store), stored_tables(store)
    store.close()
    assert b"a lighthouse" in stored  # the dump can see the rows
    assert b"very-secret-token" not in stored
    assert {"history_items", "history_runs", "history_results"} <= tables
