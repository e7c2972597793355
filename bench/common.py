"""Shared benchmark helpers: the emulator in its own process, percentiles, a loop-stall probe, the machine.

Everything stays on loopback. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from flux_playground.demo import point_at
from flux_playground.providers import PROVIDERS as REGISTRY
from flux_playground.providers import all_variables
from flux_playground.settings import Settings

__all__ = [
    "BENCH_KEY",
    "PROVIDERS",
    "REPO",
    "EmulatorProcess",
    "LoopProbe",
    "bench_env",
    "free_port",
    "machine_info",
    "percentile",
    "round_ms",
    "settings_for",
    "summary_ms",
    "temp_dir",
    "wait_http_ok",
]

REPO = Path(__file__).resolve().parent.parent
#: Every registered provider (the benchmarks measure them all).
PROVIDERS: tuple[str, ...] = tuple(REGISTRY)
BENCH_KEY = "bench-key"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no provider keys or proxies leak in, nothing phones home."""
    scrubbed = {*all_variables(), "OAUTH_CLIENT_ID", "SPACE_ID", "HF_TOKEN"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in scrubbed and not k.startswith("FLUX_PLAYGROUND_") and not k.lower().endswith("_proxy")
    }
    env.update(
        PYTHONPATH=str(REPO),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


def wait_http_ok(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll GET `url` every 20 ms until it answers 200; returns the seconds it took."""
    started = time.perf_counter()
    deadline = started + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.perf_counter() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the process for {url} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


class EmulatorProcess:
    """`python -m flux_playground.emulator` in a separate process, so its CPU work stays off our loop."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()
        self._client = httpx.Client(base_url=f"{self.url}/_emulator", timeout=10.0, trust_env=False)

    def __enter__(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "flux_playground.emulator", "--port", str(self.port)]
        self._proc = subprocess.Popen(
            [*cmd, "--latency", str(self.latency)],
            cwd=REPO,
            env=bench_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http_ok(f"{self.url}/_emulator/health", timeout=30.0, proc=self._proc)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        self._log.close()

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: f"{self.url}/{name}" for name in PROVIDERS}

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._client.get("/jobs").raise_for_status().json()["jobs"])

    def stats(self) -> dict[str, Any]:
        return dict(self._client.get("/stats").raise_for_status().json())

    def reset(self) -> None:
        self._client.post("/reset").raise_for_status()

    def configure(self, latency: float | dict[str, float | None]) -> None:
        self._client.put("/config", json={"latency": latency}).raise_for_status()


def settings_for(emulator: EmulatorProcess, data_dir: Path, **extra: object) -> Settings:
    """Settings pointing every provider at the emulator; no .env or environment is read for keys."""
    values: dict[str, object] = {"data_dir": data_dir, "demo": False, **extra}
    return point_at(Settings(_env_file=None, **values), emulator.base_urls, BENCH_KEY)  # type: ignore[arg-type]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def round_ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / max of durations given in seconds, in milliseconds (None when there are none)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "n": 0}
    return {
        "p50_ms": round_ms(percentile(values, 50)),
        "p95_ms": round_ms(percentile(values, 95)),
        "max_ms": round_ms(max(values)),
        "n": len(values),
    }


def _runqueue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat), else 0."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class LoopProbe:
    """A ticker task that sleeps 5 ms at a time and records the worst overshoot: how long the loop
    was blocked beyond the requested sleep.

    `worst` is the raw wall-clock overshoot. `worst_own` subtracts the time the loop thread was
    runnable but had no CPU (from /proc/thread-self/schedstat): on a shared 2-core machine another
    process (a browser, a test run) can take the CPU for tens of milliseconds, which is not the loop
    being blocked by our code. Waiting for the GIL is not subtracted (the thread sleeps then).
    """

    interval: float = 0.005
    worst: float = 0.0
    worst_own: float = 0.0
    ticks: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, waited = loop.time(), _runqueue_wait()
            await asyncio.sleep(self.interval)
            gap = loop.time() - before - self.interval
            self.ticks += 1
            self.worst = max(self.worst, gap)
            self.worst_own = max(self.worst_own, gap - (_runqueue_wait() - waited))

    def reset(self) -> None:
        self.worst, self.worst_own, self.ticks = 0.0, 0.0, 0

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def machine_info() -> dict[str, str]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "ram": ram,
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
    }


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def main(run: Callable[[bool], dict[str, Any]]) -> None:
    """`python -m bench.<name> [--quick]`: run one benchmark and print its figures as JSON."""
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
