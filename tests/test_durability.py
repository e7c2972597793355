"""Nothing is lost and nothing half-written is listed, whatever moment the server dies at.

- The real app (`python app.py`, demo mode) is killed with SIGKILL while people are generating: on
  restart every image a person was shown is listed with its file, and every listed item is whole.
- A writer that saves images and spend from several threads is SIGKILLed at random moments: the same
  invariant holds on the raw database, before any recovery runs.
- SQLite runs in WAL mode with a busy timeout, and many concurrent writers on two connections (two
  History stores and the spend ledger, like two worker processes) all succeed.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from PIL import Image
from ui.appclient import event_data, page_fn_index, run_page_event, running_app
from ui.conftest import make_result

from flux_playground.db import BUSY_TIMEOUT_MS
from flux_playground.history import History
from flux_playground.limits import Guard
from flux_playground.settings import Settings

pytestmark = pytest.mark.slow  # kills processes mid-write

REPO = Path(__file__).resolve().parents[1]
ID_IN_PATH = re.compile(r"/([A-Za-z0-9_-]{22})\.png")


def whole_png(path: Path) -> bool:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()
            return image.format == "PNG"
    except (OSError, ValueError):
        return False


def check_raw_database(data_dir: Path) -> dict[str, str]:
    """Before any recovery: every row's PNG exists and is whole. Returns {item id: owner hash}."""
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        try:
            rows = conn.execute("SELECT id, owner FROM history_items").fetchall()
        except sqlite3.OperationalError:  # killed before the table was ever created
            rows = []
    finally:
        conn.close()
    for item_id, owner in rows:
        png = data_dir / "images" / owner / f"{item_id}.png"
        assert whole_png(png), f"listed but not whole: {png}"
        webp = data_dir / "images" / owner / f"{item_id}.webp"
        assert webp.exists() and webp.stat().st_size > 0, f"listed without its thumbnail: {webp}"
    return {item_id: owner for item_id, owner in rows}


def check_after_restart(data_dir: Path, rows: dict[str, str]) -> None:
    """History opens (recovery included) and lists exactly those rows, each with whole files."""
    history = History(data_dir)
    try:
        listed = history._query("SELECT id FROM history_items", ())
        assert {row[0] for row in listed} == set(rows)
        for item_id, owner in rows.items():
            assert whole_png(data_dir / "images" / owner / f"{item_id}.png")
    finally:
        history.close()
    guard = Guard(Settings(_env_file=None, data_dir=data_dir))
    try:
        guard.spent_today()  # the ledger in the same file opens too
    finally:
        guard.close()


@pytest.mark.sqlite_only(
    "reads the SQLite file of the killed app; tests/test_replicas.py kills one on PostgreSQL"
)
def test_app_killed_mid_generation_loses_nothing_it_showed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_app(tmp_path) as (server, url):
        generate = page_fn_index(url, "generate")

        # Eight people at once, runs ending from 0.2 s to 4 s apart, three providers each.
        sinks: dict[str, list[str]] = {}

        def person(index: int) -> None:
            browser = secrets.token_urlsafe(24)
            sinks[browser] = sink = []
            prompt = f"person {index} [latency:{0.2 + index * 0.5:.1f}]"
            values = {"prompt": prompt, "providers": ["atlascloud", "deepinfra", "segmind"], "width": 512,
                      "height": 512, "num_images": 2, "browser_id": browser}  # fmt: skip
            try:
                run_page_event(url, generate, event_data(url, generate, values), timeout=20, sink=sink)
            except httpx.HTTPError:
                pass  # the server was killed under this person

        threads = [threading.Thread(target=person, args=(i,), daemon=True) for i in range(8)]
        for thread in threads:
            thread.start()
        # Kill once some people have been shown images and others are still waiting.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shown = {b for b, sink in sinks.items() if any(ID_IN_PATH.search(line) for line in list(sink))}
            if len(shown) >= 2:
                break
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        for thread in threads:
            thread.join(10)

    shown_ids = {m for sink in sinks.values() for line in sink for m in ID_IN_PATH.findall(line)}
    assert len(shown_ids) >= 2
    rows = check_raw_database(data_dir)
    assert shown_ids <= set(rows), "an image a person was shown is not in their history after the crash"
    assert len(rows) < 8 * 5, "every run had finished: the kill did not land mid-generation"
    check_after_restart(data_dir, rows)


WRITER = textwrap.dedent(
    """
    import asyncio, io, os, pathlib, threading
    from decimal import Decimal
    from PIL import Image
    from flux_playground.history import History
    from flux_playground.limits import Guard
    from flux_playground.models import GeneratedImage, GenerationRequest, GenerationResult
    from flux_playground.settings import Settings

    data_dir = pathlib.Path({data!r})
    out = io.BytesIO()
    Image.frombytes("RGB", (384, 384), os.urandom(384 * 384 * 3)).save(out, format="PNG")  # ~440 KB
    image = GeneratedImage(png=out.getvalue(), width=384, height=384, seed=1)
    history = History(data_dir)
    guard = Guard(Settings(_env_file=None, data_dir=data_dir, daily_budget_usd=Decimal("1000")))

    def result(n):
        request = GenerationRequest(prompt=f"writer {{n}}", seed=1, num_images=3)
        return GenerationResult(provider="deepinfra", provider_label="DeepInfra", request=request,
                                images=[image] * 3, payload={{}}, estimated_cost_usd=Decimal("0.001"),
                                latency_s=1.0)

    async def spend(n):
        request = GenerationRequest(prompt=f"spend {{n}}")
        charges = {{"deepinfra": Decimal("0.001")}}
        async with guard.admit(f"p{{n}}", request, ["deepinfra"], charges) as admission:
            admission.settle("deepinfra", cost=Decimal("0.0005"), billed=True)

    def worker(w):
        n = 0
        while True:
            n += 1
            asyncio.run(history.add(f"anon:writer-{{w}}", result(n)))
            asyncio.run(spend(w * 1_000_000 + n))

    for w in range(4):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    print("writing", flush=True)
    threading.Event().wait()
    """
)


@pytest.mark.parametrize("kill_after", [0.05, 0.37, 0.81])
def test_writer_killed_at_any_moment_leaves_only_whole_items(tmp_path: Path, kill_after: float) -> None:
    data_dir = tmp_path / "data"
    script = WRITER.format(data=str(data_dir))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"writing"
        deadline = time.monotonic() + 20
        while not list((data_dir / "images").rglob("*.png")):  # writing for real now
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.01)
        time.sleep(kill_after)
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
    rows = check_raw_database(data_dir)
    check_after_restart(data_dir, rows)
    assert len(rows) % 3 == 0  # a run's images are listed all together or not at all


@pytest.mark.sqlite_only("WAL and the busy timeout are SQLite's")
def test_wal_busy_timeout_and_many_concurrent_writers(tmp_path: Path) -> None:
    first, second = History(tmp_path), History(tmp_path)  # two connections, like two worker processes
    guard = Guard(Settings(_env_file=None, data_dir=tmp_path, daily_budget_usd=Decimal("100")))
    errors: list[BaseException] = []
    try:
        for conn in (first._db._conn, second._db._conn, guard._ledger._database._conn):  # SQLite ledger
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS

        async def spend(n: int) -> None:
            request = make_result().request.model_copy(update={"prompt": f"spend {n}"})
            async with guard.admit(f"p{n}", request, ["segmind"], {"segmind": Decimal("0.01")}) as admission:
                admission.settle("segmind", cost=Decimal("0.008"), billed=True)

        def writer(store: History, who: int) -> None:
            try:
                for n in range(15):
                    asyncio.run(store.add(f"anon:{who}", make_result(prompt=f"{who} {n}")))
                    asyncio.run(spend(who * 100 + n))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(first if i % 2 else second, i)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sum(asyncio.run(first.count(f"anon:{i}")) for i in range(8)) == 8 * 15
        assert guard.spent_today() == Decimal("0.008") * 8 * 15
    finally:
        first.close()
        second.close()
        guard.close()
