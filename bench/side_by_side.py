"""Benchmark 4: every registered provider at once. `generate_many` should take about as long as the
slowest one.

Latencies per provider are set through the emulator's control API (a prompt directive would apply to
all of them), spread evenly from 0.5 s to 1.5 s in registry order. In the same run, each provider
alone, so the slowest one's own time is measured, not assumed, and all one after another, the sum a
sequential client would pay.

    python -m bench.side_by_side [--quick]
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from flux_playground.models import GenerationRequest
from flux_playground.service import Playground

from .common import PROVIDERS, EmulatorProcess, main, percentile, settings_for, temp_dir

__all__ = ["run"]

#: 0.5 s for the first provider to 1.5 s for the last.
LATENCY = {name: round(0.5 + index / max(1, len(PROVIDERS) - 1), 3) for index, name in enumerate(PROVIDERS)}


def _request() -> GenerationRequest:
    return GenerationRequest(
        prompt="foxes in the snow", width=1024, height=1024, seed=secrets.randbelow(2**31)
    )


async def _main(quick: bool) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    latency = {name: seconds * scale for name, seconds in LATENCY.items()}
    runs = 1 if quick else 5
    slowest = max(latency, key=lambda name: latency[name])
    with EmulatorProcess(0.05) as emulator, temp_dir("bench-sbs-") as data:
        emulator.configure(latency=dict(latency))
        async with Playground(settings_for(emulator, data)) as playground:
            for name in PROVIDERS:  # warm-up: connections, Atlas's learned job time
                await playground.generate(_request(), name)
            together: list[float] = []
            alone: dict[str, list[float]] = {name: [] for name in PROVIDERS}
            for _ in range(runs):
                started = time.perf_counter()
                outcomes = [outcome async for outcome in playground.generate_many(_request(), PROVIDERS)]
                together.append(time.perf_counter() - started)
                assert all(o.result is not None for o in outcomes), [o.error for o in outcomes]
                for name in PROVIDERS:
                    started = time.perf_counter()
                    await playground.generate(_request(), name)
                    alone[name].append(time.perf_counter() - started)
    together_p50 = percentile(together, 50)
    slowest_p50 = percentile(alone[slowest], 50)
    sequential = sum(percentile(times, 50) for times in alone.values())
    return {
        "latency_s": latency,
        "runs": runs,
        "generate_many_p50_s": round(together_p50, 3),
        "generate_many_max_s": round(max(together), 3),
        "alone_p50_s": {name: round(percentile(times, 50), 3) for name, times in alone.items()},
        "sum_of_alone_s": round(sequential, 3),
        "ratio_to_slowest_latency": round(together_p50 / latency[slowest], 3),
        "ratio_to_slowest_alone": round(together_p50 / slowest_p50, 3),
        "ratio_to_sum": round(together_p50 / sequential, 3),
    }


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_main(quick))


if __name__ == "__main__":
    main(run)
