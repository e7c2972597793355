"""Benchmark 5: one person's history with 10 000 images, in a database shared with other people's.

The newest page is made of real saved items: photo-like 1024² images (smooth structure plus grain,
not flat colour) that went through the real pipeline (verify, PNG with metadata, `History.add`), so
their thumbnails are what a person would download. The other rows are cloned from them (new ids,
older times, varied prompts, runs of three providers; files hard-linked), so the store is consistent
and `History()` keeps them all on open; 40 other people own 40 000 more rows of the same vocabulary,
which the full-text index holds too. Server time of a gallery page = `History.list` + `History.count`,
as the page does; of a page of runs = `History.list_runs` (24) + `History.count_runs`.

Each search is timed twice in the same run, on the same database: with the FTS5 index ("fts", what
searches use) and with the substring matching that came before it and stays as the fallback where
SQLite lacks FTS5 ("like": `prompt_folded LIKE '%word%'`, one per word). `found` is the count each
gives: the same for one word, and prefixes find words LIKE also finds inside others ("ca" in
"volcano").

Where PostgreSQL's binaries are found (tests/pgserver.py), the same searches run a third time on a
PostgreSQL history holding the same rows ("tsvector", what FLUX_PLAYGROUND_DATABASE_URL uses), in the
same run; its counts must equal FTS5's (the same rules), or the benchmark fails.

    python -m bench.history_scale [--quick]
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import secrets
import sys
import time
from decimal import Decimal
from typing import Any

from PIL import Image, ImageFilter

from flux_playground import history as history_module
from flux_playground import history_files, history_rows
from flux_playground.history import MAX_THUMBNAIL_BYTES, History, HistoryItem
from flux_playground.history_search import SearchMode
from flux_playground.images import to_png_with_metadata, verify_image
from flux_playground.models import GeneratedImage, GenerationRequest, GenerationResult

from .common import REPO, main, round_ms, summary_ms, temp_dir

__all__ = ["photo_like", "run"]

OWNER = "bench:history-scale"
PAGE = 48
RUNS_PAGE = 24
RUN_PROVIDERS = ("segmind", "deepinfra", "atlascloud")
WORDS = (
    "fox harbour lighthouse forest portrait city night neon desert mountain river cat dog robot castle "
    "garden ocean storm sunset winter market train bridge temple dragon astronaut library kitchen "
    "cathedral village meadow glacier volcano canyon reef jungle alley rooftop festival carnival"
).split()
RARE_WORD = "xylophone"  # in about 1 % of prompts
ABSENT_WORD = "zeppelin"  # in none: the search must look at every row
SEARCHES = {
    "one_word": "harbour",  # in about 15 % of prompts
    "two_words": "night harbour",  # both, in any order: about 2 %
    "prefix": "ca",  # cat, castle, cathedral, canyon, carnival
    "rare_word": RARE_WORD,
    "no_match": ABSENT_WORD,
}


def photo_like(size: int, seed: int) -> Image.Image:
    """Smooth colour structure with grain and edges, which compresses like a photo (not flat colour)."""
    rng = random.Random(seed)
    channels = []
    for _ in range(3):
        coarse = Image.effect_noise((size // 16, size // 16), rng.uniform(40, 90))
        smooth = coarse.resize((size, size), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(6))
        grain = Image.effect_noise((size, size), rng.uniform(6, 14))
        channels.append(Image.blend(smooth, grain, 0.25))
    image = Image.merge("RGB", channels)
    detail = Image.effect_noise((size // 4, size // 4), 80).resize((size, size), Image.Resampling.NEAREST)
    return Image.composite(
        image, image.filter(ImageFilter.EDGE_ENHANCE_MORE), detail.point(lambda v: 255 * (v > 128))
    )


def _prompt(rng: random.Random) -> str:
    words = rng.sample(WORDS, 6)
    if rng.random() < 0.01:
        words[rng.randrange(6)] = RARE_WORD
    return "a " + " ".join(words) + ", cinematic light, 35mm photo"


def _result(jpeg: bytes, prompt: str, seed: int) -> GenerationResult:
    checked = verify_image(jpeg, max_pixels=4096 * 4096)
    png = to_png_with_metadata(checked, {"parameters": prompt})
    request = GenerationRequest(prompt=prompt, width=checked.width, height=checked.height, seed=seed)
    return GenerationResult(
        provider="segmind",
        provider_label="Segmind",
        request=request,
        images=[GeneratedImage(png=png, width=checked.width, height=checked.height, seed=seed)],
        payload={},
        estimated_cost_usd=Decimal("0.003"),
        latency_s=1.0,
    )


def _clone_rows(store: History, owner: str, real: list[HistoryItem], count: int, rng: random.Random) -> None:
    """Give `owner` `count` older rows cloned from the real items (files hard-linked), in runs of
    three providers, each run with its run and result rows as `History.add` writes them."""
    key = history_module._owner_dir(owner)
    store._paths(key, "x")[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    oldest = min(item.created_at for item in real)
    items: list[HistoryItem] = []
    results: list[tuple[str, float, GenerationResult]] = []
    for n in range(count):
        provider = RUN_PROVIDERS[n % len(RUN_PROVIDERS)]
        if n % len(RUN_PROVIDERS) == 0:
            run_id, created_at, prompt = secrets.token_urlsafe(12), oldest - 1 - n, _prompt(rng)
        source = real[n % len(real)]
        item_id = secrets.token_urlsafe(16)
        png, webp = store._paths(key, item_id)
        os.link(source.image_path, png)
        os.link(source.thumb_path, webp)
        update = {"id": item_id, "created_at": created_at, "run_id": run_id, "prompt": prompt}
        files = {"image_path": png, "thumb_path": webp}
        items.append(source.model_copy(update={**update, "provider": provider, **files}))
        request = GenerationRequest(prompt=prompt, width=source.width, height=source.height, seed=source.seed)
        results.append((run_id, created_at, _result_of(provider, request)))
    with store._db.writing() as sql:
        history_rows.insert_items(sql, store._db.dialect, key, items)
        for run_id, created_at, result in results:
            history_rows.record_run(sql, key, run_id, created_at, result, RUN_PROVIDERS)
            history_rows.record_result(sql, key, run_id, created_at, result)


def _copy_items(store: History, owner: str, items: list[HistoryItem]) -> None:
    """The items as they are (ids, prompts, times), their files hard-linked into `store`."""
    key = history_module._owner_dir(owner)
    store._paths(key, "x")[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    copies = []
    for item in items:
        png, webp = store._paths(key, item.id)
        os.link(item.image_path, png)
        os.link(item.thumb_path, webp)
        copies.append(item.model_copy(update={"image_path": png, "thumb_path": webp}))
    with store._db.writing() as sql:
        history_rows.insert_items(sql, store._db.dialect, key, copies)
        for item in copies:
            request = GenerationRequest(
                prompt=item.prompt, width=item.width, height=item.height, seed=item.seed
            )
            result = _result_of(item.provider, request)
            history_rows.record_run(sql, key, item.run_id, item.created_at, result, (item.provider,))
            history_rows.record_result(sql, key, item.run_id, item.created_at, result)


def _result_of(provider: str, request: GenerationRequest) -> GenerationResult:
    return GenerationResult(
        provider=provider, provider_label=provider.title(), request=request, images=[], payload={},
        estimated_cost_usd=Decimal("0.003"), latency_s=1.0,
    )  # fmt: skip


async def _timed(repeats: int, store: History, query: str, *, runs: bool = False) -> tuple[list[float], int]:
    """A gallery page (the newest 48 matches) or a page of runs (the newest 24, whole), and how many
    there are in all, as the page asks for them."""
    page, count, size = (
        (store.list_runs, store.count_runs, RUNS_PAGE) if runs else (store.list, store.count, PAGE)
    )
    times, found = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        shown = await page(OWNER, query=query, limit=size)
        found = await count(OWNER, query=query)
        times.append(time.perf_counter() - started)
        assert len(shown) == min(size, found)
    return times, found


async def _searches(
    repeats: int, store: History, modes: tuple[SearchMode, ...] = ("fts5", "like")
) -> dict[str, dict[str, Any]]:
    """Every search in each mode (the full-text index, then substring matching), on the same database."""
    figures: dict[str, dict[str, Any]] = {}
    for search in modes:
        mode = {"fts5": "fts"}.get(search, search)
        store._search = search
        figures[mode] = {}
        for name, query in SEARCHES.items():
            times, found = await _timed(repeats, store, query)
            figures[mode][name] = {**summary_ms(times), "found": found}
        times, found = await _timed(repeats, store, SEARCHES["two_words"], runs=True)
        figures[mode]["runs_two_words"] = {**summary_ms(times), "found": found}
    store._search = modes[0]
    return figures


async def _on_postgres(
    repeats: int, real: list[HistoryItem], total: int, others: int, other_rows: int
) -> dict[str, dict[str, Any]] | None:
    """The same store on PostgreSQL (the same real items, clones from the same seed), searched the same
    way; None where PostgreSQL's binaries are not found."""
    sys.path.insert(0, str(REPO / "tests"))
    from pgserver import PostgresServer, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        return None
    with PostgresServer.start(bin_dir) as server, temp_dir("bench-history-pg-") as data:
        store = History(data, database_url=server.new_database())
        try:
            rng = random.Random(7)
            for _ in real:  # the prompts _main drew for the real items: the clones' prompts follow
                _prompt(rng)
            _copy_items(store, OWNER, real)
            _clone_rows(store, OWNER, real, total - len(real), rng)
            for n in range(others):
                _clone_rows(store, f"bench:other-{n}", real, other_rows, rng)
            with store._db.writing() as sql:  # the planner's statistics, as autovacuum keeps them
                sql.execute("ANALYZE")
            return (await _searches(repeats, store, ("tsvector",)))["tsvector"]
        finally:
            store.close()


async def _main(quick: bool) -> dict[str, Any]:
    total = 1_000 if quick else 10_000
    others, other_rows = (4, 100) if quick else (40, 1_000)
    distinct = 4 if quick else 24
    repeats = 5 if quick else 30
    rng = random.Random(7)
    with temp_dir("bench-history-") as data:
        store = History(data)
        real = []
        save_times = []
        for n in range(PAGE):
            if n < distinct:
                out = io.BytesIO()
                photo_like(1024, n).save(out, "JPEG", quality=92)
                jpeg = out.getvalue()
            result = _result(jpeg, _prompt(rng), n)
            started = time.perf_counter()
            real.extend(await store.add(OWNER, result))
            save_times.append(time.perf_counter() - started)
        _clone_rows(store, OWNER, real, total - len(real), rng)
        for n in range(others):
            _clone_rows(store, f"bench:other-{n}", real, other_rows, rng)
        page, _ = await _timed(repeats, store, "")
        runs_page, runs = await _timed(repeats, store, "", runs=True)
        searches = await _searches(repeats, store)
        if (on_postgres := await _on_postgres(repeats, real, total, others, other_rows)) is not None:
            searches["tsvector"] = on_postgres
            counts = {
                mode: {name: f["found"] for name, f in figures.items()} for mode, figures in searches.items()
            }
            if counts["tsvector"] != counts["fts"]:
                raise AssertionError(f"PostgreSQL's search found other counts than FTS5's: {counts}")
        first_page = await store.list(OWNER, limit=PAGE)
        thumb_sizes = [item.thumb_path.stat().st_size for item in first_page]
        store.close()
        # Worst case for the thumbnail ladder: pure noise.
        noise = Image.merge("RGB", [Image.effect_noise((1024, 1024), 128) for _ in range(3)])
        out = io.BytesIO()
        noise.save(out, "PNG", compress_level=1)
        worst = history_files.thumbnail(out.getvalue())
        started = time.perf_counter()
        reopened = History(data)  # start-up recovery over the whole store
        open_s = time.perf_counter() - started
        count = await reopened.count(OWNER)
        reopened.close()
    fts, like = searches["fts"], searches["like"]
    return {
        "items": count,
        "other_owners_rows": others * other_rows,
        "runs": runs,
        "first_page": summary_ms(page),
        "runs_page": summary_ms(runs_page),
        "search": searches,
        "search_rare_word": {k: v for k, v in fts["rare_word"].items() if k != "found"},
        "search_absent_word": {k: v for k, v in fts["no_match"].items() if k != "found"},
        "search_p95_ms": max(figures["p95_ms"] for figures in fts.values()),
        "like_search_p95_ms": max(figures["p95_ms"] for figures in like.values()),
        **(
            {"tsvector_search_p95_ms": max(f["p95_ms"] for f in searches["tsvector"].values())}
            if "tsvector" in searches
            else {}
        ),
        "thumb_max_kb": round(max(thumb_sizes) / 1024, 1),
        "thumb_mean_kb": round(sum(thumb_sizes) / len(thumb_sizes) / 1024, 1),
        "thumb_noise_kb": round(len(worst) / 1024, 1),
        "thumb_limit_kb": MAX_THUMBNAIL_BYTES // 1024,
        "page_bytes_mb": round(sum(thumb_sizes) / 1_000_000, 3),
        "history_add_1024_jpeg": summary_ms(save_times),
        "open_with_items_ms": round_ms(open_s),
    }


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_main(quick))


if __name__ == "__main__":
    main(run)
