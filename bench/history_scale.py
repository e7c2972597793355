"""Benchmark 5: one person's history with 10 000 images.

The newest page is made of real saved items: photo-like 1024² images (smooth structure plus grain,
not flat colour) that went through the real pipeline (verify, PNG with metadata, `History.add`), so
their thumbnails are what a person would download. The other rows are cloned from them (new ids,
older times, varied prompts; files hard-linked), so the store is consistent and `History()` keeps
them all on open. Server time of a gallery page = `History.list` + `History.count`, as the page does.

    python -m bench.history_scale [--quick]
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import secrets
import time
from decimal import Decimal
from typing import Any

from PIL import Image, ImageFilter

from flux_playground import history as history_module
from flux_playground.db import transaction
from flux_playground.history import MAX_THUMBNAIL_BYTES, History
from flux_playground.images import to_png_with_metadata, verify_image
from flux_playground.models import GeneratedImage, GenerationRequest, GenerationResult

from .common import main, percentile, round_ms, summary_ms, temp_dir

__all__ = ["photo_like", "run"]

OWNER = "bench:history-scale"
PAGE = 48
WORDS = (
    "fox harbour lighthouse forest portrait city night neon desert mountain river cat dog robot castle "
    "garden ocean storm sunset winter market train bridge temple dragon astronaut library kitchen "
    "cathedral village meadow glacier volcano canyon reef jungle alley rooftop festival carnival"
).split()
RARE_WORD = "xylophone"  # in about 1 % of prompts
ABSENT_WORD = "zeppelin"  # in none: the search must look at every row


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


def _clone_rows(store: History, real: list[Any], total: int, rng: random.Random) -> None:
    """Fill the history to `total` rows with older clones of the real items (files hard-linked)."""
    key = history_module._owner_dir(OWNER)
    oldest = min(item.created_at for item in real)
    rows = []
    for n in range(total - len(real)):
        source = real[n % len(real)]
        item_id = secrets.token_urlsafe(16)
        png, webp = store._paths(key, item_id)
        os.link(source.image_path, png)
        os.link(source.thumb_path, webp)
        item = source.model_copy(
            update={
                "id": item_id,
                "created_at": oldest - 1 - n,
                "run_id": secrets.token_urlsafe(12),
                "prompt": _prompt(rng),
                "image_path": png,
                "thumb_path": webp,
            }
        )
        rows.append(history_module._row(key, item))
    with store._lock, transaction(store._conn):
        store._conn.executemany(history_module._INSERT, rows)


async def _timed(repeats: int, store: History, query: str) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        items = await store.list(OWNER, query=query, limit=PAGE)
        await store.count(OWNER, query=query)
        times.append(time.perf_counter() - started)
        assert query or len(items) == PAGE
    return times


async def _main(quick: bool) -> dict[str, Any]:
    total = 1_000 if quick else 10_000
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
        _clone_rows(store, real, total, rng)
        page = await _timed(repeats, store, "")
        rare = await _timed(repeats, store, RARE_WORD)
        absent = await _timed(repeats, store, ABSENT_WORD)
        first_page = await store.list(OWNER, limit=PAGE)
        thumb_sizes = [item.thumb_path.stat().st_size for item in first_page]
        store.close()
        # Worst case for the thumbnail ladder: pure noise.
        noise = Image.merge("RGB", [Image.effect_noise((1024, 1024), 128) for _ in range(3)])
        out = io.BytesIO()
        noise.save(out, "PNG", compress_level=1)
        worst = history_module._thumbnail(out.getvalue())
        started = time.perf_counter()
        reopened = History(data)  # start-up recovery over the whole store
        open_s = time.perf_counter() - started
        count = await reopened.count(OWNER)
        reopened.close()
    return {
        "items": count,
        "first_page": summary_ms(page),
        "search_rare_word": summary_ms(rare),
        "search_absent_word": summary_ms(absent),
        "search_p95_ms": round_ms(max(percentile(rare, 95), percentile(absent, 95))),
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
