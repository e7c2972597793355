"""Benchmark 1: what the playground adds on top of the provider, per generation.

Submit to "saved in history with thumbnail and metadata" (`Playground.generate` + `History.add`),
minus the emulator's fixed latency, at 512² and 1024², per provider, sequential. The emulator runs in
its own process. A ticker task on the client's loop records the worst stall while all of this runs.
A second, untimed pass profiles the worker-thread work (verify, PNG, thumbnail, writes) with cProfile.

    python -m bench.added_latency [--quick]
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from flux_playground.history import History
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS as REGISTRY
from flux_playground.service import Playground

from .common import (
    BENCH_KEY,
    PROVIDERS,
    EmulatorProcess,
    LoopProbe,
    main,
    percentile,
    round_ms,
    settings_for,
    summary_ms,
    temp_dir,
)

__all__ = ["run"]

OWNER = "bench:added-latency"
SIZES = (512, 1024)
T = TypeVar("T")


def _request(size: int) -> GenerationRequest:
    # A fresh seed each time: the emulator renders a new image, as a provider would.
    return GenerationRequest(
        prompt="a lighthouse on a cliff at dusk, volumetric light, 35mm photo",
        width=size,
        height=size,
        steps=4,
        seed=secrets.randbelow(2**31),
    )


async def _generation(playground: Playground, history: History, provider: str, size: int) -> dict[str, float]:
    started = time.perf_counter()
    result = await playground.generate(_request(size), provider)
    generated = time.perf_counter()
    items = await history.add(OWNER, result)
    saved = time.perf_counter()
    assert items and items[0].thumb_path.exists() and items[0].image_path.exists()
    return {
        "total": saved - started,
        "provider": result.timings.get("provider_s", 0.0),
        "download": result.timings.get("download_s", 0.0),
        "finish": result.timings.get("save_s", 0.0),
        "history": saved - generated,
    }


async def _bare_call(client: httpx.AsyncClient, emulator: EmulatorProcess, provider: str, size: int) -> float:
    """The emulator's own time beyond its latency, seen by a bare client: for a provider that answers
    the POST with its images, that POST (minus the latency); for Atlas the download of a finished
    job's output (polling is ours)."""
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "x-api-key": BENCH_KEY}
    seed = secrets.randbelow(2**31)
    base = emulator.base_urls[provider]
    if provider == "atlascloud":
        body: dict[str, object] = {
            "model": "black-forest-labs/flux-schnell",
            "prompt": "bare",
            "size": f"{size}*{size}",
            "seed": seed,
        }
        submitted = await client.post(f"{base}/api/v1/model/generateImage", json=body, headers=headers)
        prediction = submitted.raise_for_status().json()["data"]["id"]
        await asyncio.sleep(emulator.latency + 0.05)
        for _ in range(100):  # bounded; normally done at once
            data = (await client.get(f"{base}/api/v1/model/prediction/{prediction}", headers=headers)).json()
            if data["data"]["status"] in ("completed", "succeeded"):
                break
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        (await client.get(data["data"]["outputs"][0])).raise_for_status()
        return time.perf_counter() - started
    # Any other provider: its own request, as its client builds it, sent by a bare client.
    chosen = REGISTRY[provider]
    request = GenerationRequest(prompt="bare", width=size, height=size, seed=seed)
    settings = settings_for(emulator, Path("."))
    call = chosen.build_call(chosen.shape(request, settings), BENCH_KEY, settings)
    started = time.perf_counter()
    sent = await client.post(call.url, json=chosen.request_body(call.json), headers=call.headers)
    sent.raise_for_status()
    return time.perf_counter() - started - emulator.latency


def _profiled(profile: cProfile.Profile, fn: Callable[..., T]) -> Callable[..., T]:
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return profile.runcall(fn, *args, **kwargs)

    return wrapper


def _top(profile: cProfile.Profile, images: int, limit: int = 10) -> list[str]:
    """The functions with the most own time, as 'ms per image  function'."""
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_cc, _nc, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).name}:{line}({name})" if line else name
        rows.append((tottime, cumtime, where))
    rows.sort(reverse=True)
    return [
        f"{t / images * 1000:6.2f} ms own, {c / images * 1000:6.2f} ms cum  {w}" for t, c, w in rows[:limit]
    ]


async def _main(quick: bool) -> dict[str, Any]:
    latency = 0.05 if quick else 1.0
    runs = 2 if quick else 20
    figures: dict[str, Any] = {"latency_s": latency, "runs_per_cell": runs, "cells": {}}
    with EmulatorProcess(latency) as emulator, temp_dir("bench-added-") as data:
        settings = settings_for(emulator, data)
        history = History(data)
        async with Playground(settings) as playground, httpx.AsyncClient(trust_env=False) as bare:
            # Warm-up (not measured): connections, emulator font caches, Atlas's learned job time.
            for provider in PROVIDERS:
                for size in SIZES:
                    await _generation(playground, history, provider, size)
            # As app.py does after launch (ui.freeze_startup_heap): what exists now lives as long as
            # the process, and a full collection walking it paused this loop for ~27 ms.
            gc.collect()
            gc.freeze()
            worst_stall = worst_own = 0.0
            for provider in PROVIDERS:
                for size in SIZES:
                    samples: list[dict[str, float]] = []
                    async with LoopProbe() as probe:
                        for _ in range(runs):
                            samples.append(await _generation(playground, history, provider, size))
                    worst_stall = max(worst_stall, probe.worst)
                    worst_own = max(worst_own, probe.worst_own)
                    added = [s["total"] - latency for s in samples]
                    floors = [await _bare_call(bare, emulator, provider, size) for _ in range(min(runs, 8))]
                    floor_p50 = percentile(floors, 50)
                    cell = {
                        "added": summary_ms(added),
                        "emulator_floor_p50_ms": round_ms(floor_p50),
                        "added_beyond_floor_p50_ms": round_ms(percentile(added, 50) - floor_p50),
                        "loop_stall_max_ms": round_ms(probe.worst),
                        "loop_stall_own_max_ms": round_ms(probe.worst_own),
                        "breakdown_p50_ms": {
                            part: round_ms(sorted(s[part] for s in samples)[len(samples) // 2])
                            for part in ("provider", "download", "finish", "history")
                        },
                    }
                    figures["cells"][f"{provider}@{size}"] = cell
            figures["loop_stall_max_ms"] = round_ms(worst_stall)
            figures["loop_stall_own_max_ms"] = round_ms(worst_own)
            figures["added_1024_p50_ms"] = max(
                figures["cells"][f"{p}@1024"]["added"]["p50_ms"] for p in PROVIDERS
            )
            figures["added_1024_p95_ms"] = max(
                figures["cells"][f"{p}@1024"]["added"]["p95_ms"] for p in PROVIDERS
            )
            # Where the time goes off the loop: profile the worker-thread work at 1024².
            profile = cProfile.Profile()
            playground._finish = _profiled(profile, playground._finish)  # type: ignore[method-assign]
            history._add = _profiled(profile, history._add)  # type: ignore[method-assign]
            images = 0
            for provider in PROVIDERS:
                for _ in range(1 if quick else 3):
                    await _generation(playground, history, provider, 1024)
                    images += 1
            figures["profile_1024"] = _top(profile, images)
        history.close()
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    try:
        return asyncio.run(_main(quick))
    finally:
        gc.unfreeze()  # run_all runs the next benchmarks in this process


if __name__ == "__main__":
    main(run)
