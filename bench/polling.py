"""Benchmark 3: how soon the playground notices that an Atlas Cloud job is done, and at what cost in polls.

The emulator records, per job, when it became done (`ready`) and when a poll first saw it done;
`notice_delay` is the difference. Jobs run one after another through one Playground, so from the
second job on the learned job time shapes the schedule; the first job is reported on its own.
Beside it, in the same run and against the same emulator, the loop from Atlas's sample code:
`while True: GET; if done: break; sleep(2)`.

Cold start (`cold_start`): the first job of a fresh process (a restart, every CLI call), before and
after the statistics. "Before": a Playground over an empty data directory, so nothing is known and
polling starts at 0.25 s growing to 1 s. It then runs a few more jobs, which are recorded
(evidence.py); "after": a new Playground over the same directory, whose first job's polling starts
from the recorded job times. Both in every round, against the same emulator.

    python -m bench.polling [--quick]
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from flux_playground.models import GenerationRequest
from flux_playground.service import Playground

from .common import BENCH_KEY, EmulatorProcess, main, percentile, round_ms, settings_for, summary_ms, temp_dir

__all__ = ["run"]

SAMPLE_SLEEP_S = 2.0
_DONE = ("completed", "succeeded")


def _prompt(side: str, label: str, n: int, job_s: float) -> str:
    # The directive sets this job's latency; the tag tells the two sides' jobs apart afterwards.
    return f"bench-{side}-{label}-{n} harbour at dawn [latency:{job_s:g}]"


async def _ours(playground: Playground, label: str, job_s: float, count: int) -> None:
    for n in range(count):
        request = GenerationRequest(
            prompt=_prompt("ours", label, n, job_s), width=512, height=512, seed=secrets.randbelow(2**31)
        )
        await playground.generate(request, "atlascloud")


async def _sample_code(client: httpx.AsyncClient, base: str, label: str, job_s: float, count: int) -> None:
    """Atlas's sample polling loop, verbatim in behaviour: GET, stop if done, else sleep 2 s."""
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    for n in range(count):
        body = {
            "model": "black-forest-labs/flux-schnell",
            "prompt": _prompt("sample", label, n, job_s),
            "size": "512*512",
            "seed": secrets.randbelow(2**31),
        }
        submitted = (
            await client.post(f"{base}/api/v1/model/generateImage", json=body, headers=headers)
        ).json()
        prediction = submitted["data"]["id"]
        for _ in range(int(job_s / SAMPLE_SLEEP_S) + 20):  # bounded
            answer = await client.get(f"{base}/api/v1/model/prediction/{prediction}", headers=headers)
            if answer.json()["data"]["status"] in _DONE:
                break
            await asyncio.sleep(SAMPLE_SLEEP_S)


def _figures(jobs: list[dict[str, Any]], side: str, label: str, job_s: float) -> dict[str, Any]:
    mine = [j for j in jobs if j["prompt"].startswith(f"bench-{side}-{label}-")]
    mine.sort(key=lambda j: j["created"])
    delays = [float(j["notice_delay"]) for j in mine if j["notice_delay"] is not None]
    polls = [int(j["polls"]) for j in mine]
    first, rest = mine[0], mine[1:]
    rest_delays = [float(j["notice_delay"]) for j in rest if j["notice_delay"] is not None]
    return {
        "job_s": job_s,
        "jobs": len(mine),
        "first_job": {"notice_ms": round_ms(float(first["notice_delay"] or 0.0)), "polls": first["polls"]},
        "later_jobs": {
            **summary_ms(rest_delays),
            "polls_p50": percentile([float(j["polls"]) for j in rest], 50) if rest else None,
            "polls_max": max((int(j["polls"]) for j in rest), default=None),
        },
        "all_jobs": {**summary_ms(delays), "polls_max": max(polls)},
    }


def _cold_start(jobs: list[dict[str, Any]], job_s: float, rounds: int) -> dict[str, Any]:
    def side(label: str) -> dict[str, Any]:
        mine = [j for j in jobs if j["prompt"].startswith(f"bench-ours-{label}-")]
        delays = [float(j["notice_delay"]) for j in mine if j["notice_delay"] is not None]
        return {**summary_ms(delays), "polls_max": max((int(j["polls"]) for j in mine), default=None)}

    return {"job_s": job_s, "rounds": rounds, "before": side("cold"), "after": side("seeded")}


async def _cold_rounds(emulator: EmulatorProcess, job_s: float, rounds: int) -> None:
    """Each round: a fresh data directory; a process's first job (nothing recorded), two more jobs
    (recorded), then a new process's first job (the recorded job times read as it starts)."""
    for n in range(rounds):
        with temp_dir(f"bench-cold-{n}-") as data:
            settings = settings_for(emulator, data)
            async with Playground(settings) as playground:
                await _ours(playground, f"cold-r{n}", job_s, 1)
                await _ours(playground, f"warm-r{n}", job_s, 2)
            async with Playground(settings) as playground:  # the one above is closed: its rows written
                await _ours(playground, f"seeded-r{n}", job_s, 1)


async def _main(quick: bool) -> dict[str, Any]:
    # (label, job seconds, jobs through the Playground, jobs with the sample loop)
    cases = (
        [("short", 0.2, 3, 1), ("long", 0.5, 3, 1)] if quick else [("short", 1.0, 9, 4), ("long", 10.0, 5, 3)]
    )
    cold_job_s, rounds = (0.5, 1) if quick else (1.0, 5)
    figures: dict[str, Any] = {"ours": {}, "sample_code": {}}
    with EmulatorProcess(0.05) as emulator:
        base = emulator.base_urls["atlascloud"]
        async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
            for label, job_s, ours, sample in cases:
                # A fresh Playground over a fresh data directory per case: its first job has no
                # learned or recorded expectation (the cold start with statistics is measured below).
                with temp_dir("bench-poll-") as data:
                    async with Playground(settings_for(emulator, data)) as playground:
                        # Both sides at once: they share nothing but the emulator; the run is shorter.
                        await asyncio.gather(
                            _ours(playground, label, job_s, ours),
                            _sample_code(client, base, label, job_s, sample),
                        )
        await _cold_rounds(emulator, cold_job_s, rounds)
        jobs = emulator.jobs()
    for label, job_s, _ours_n, _sample_n in cases:
        figures["ours"][label] = _figures(jobs, "ours", label, job_s)
        figures["sample_code"][label] = _figures(jobs, "sample", label, job_s)
    figures["cold_start"] = _cold_start(jobs, cold_job_s, rounds)
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_main(quick))


if __name__ == "__main__":
    main(run)
