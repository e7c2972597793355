"""Benchmark 2: N simultaneous generations through the real HTTP API (Gradio's queue).

Three processes: the emulator (DeepInfra at 1 s), the app (`bench._serve`), and this load generator,
which sends N `POST /gradio_api/call/generate` at once and reads each event's SSE stream until
`complete`. Wall time from the first POST to the last `complete`, as a ratio to the 1 s latency:
the median of 5 rounds, each from N new sessions (all 5 ratios are kept), then one round from the
same N sessions again ("open sessions").
Beside it, in the same run: the same app with Gradio's default concurrency (`--mode naive`), and
Gradio's own floor (`--mode floor`: an endpoint that only sleeps 1 s).

    python -m bench.concurrency [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import REPO, EmulatorProcess, bench_env, free_port, main, temp_dir, wait_http_ok

__all__ = ["AppProcess", "call_generate", "run"]

PROVIDER = "deepinfra"


class AppProcess:
    """`python -m bench._serve` on a free port; stopped (its own pid only) on exit."""

    def __init__(self, emulator: EmulatorProcess, data: Path, mode: str, latency: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = data / ".bench-ready"
        self._cmd = [
            sys.executable, "-m", "bench._serve", "--port", str(self.port), "--emulator", emulator.url,
            "--data", str(data), "--mode", mode, "--latency", str(latency), "--ready", str(self._ready),
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()
        self.startup_s = 0.0

    def __enter__(self) -> AppProcess:
        env = bench_env(GRADIO_SERVER_PORT=str(self.port))
        self._proc = subprocess.Popen(
            self._cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self.startup_s = wait_http_ok(f"{self.url}/", timeout=120.0, proc=self._proc)
            deadline = time.monotonic() + 120.0
            while not self._ready.exists():
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not finish launching")
                time.sleep(0.02)
        except BaseException:
            self._log.seek(0)
            sys.stderr.write(self._log.read().decode(errors="replace")[-4000:])
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        self._log.close()


def _payload(mode: str, n: int, latency: float, session: str | None) -> dict[str, Any]:
    if mode == "floor":
        return {"data": [f"a lighthouse at dusk, run {n}"], "session_hash": session}
    # (prompt, providers, width, height, steps, seed, num_images, sampler, scheduler). Every request
    # differs (the app refuses an identical request while one runs: a double click), but only in a
    # latency directive the emulator strips before drawing, so it renders one image and serves it
    # from its cache: its CPU stays out of the measurement.
    prompt = f"a lighthouse at dusk [latency:{latency + n * 1e-9:.9f}]"
    return {"data": [prompt, [PROVIDER], 1024, 1024, 4, 1234, 1, None, None], "session_hash": session}


class _Connection:
    """Just enough HTTP/1.1 over asyncio streams for POST + SSE on loopback.

    httpx spent ~29 ms of CPU per generation in the load generator at N=200 (its pool and
    line iteration), more than the server under test, so the client would have been what was
    measured. This costs well under 1 ms per generation.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> _Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    async def request(
        self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (extra or {}).items())
        self.writer.write(head.encode() + b"\r\n" + body)
        status = (await self.reader.readline()).decode()
        if not status.startswith("HTTP/1.1 200"):
            raise RuntimeError(f"{method} {path}: {status.strip()}")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    async def body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                return
            yield await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


async def call_generate(
    url: str, payload: dict[str, Any], headers: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """One `POST /gradio_api/call/generate`, its SSE stream read to `complete` or `error`:
    (that event, its data line), or ("", what went wrong). `headers` go with both requests."""
    connection = await _Connection.open(url)
    try:
        answer = await connection.request(
            "POST", "/gradio_api/call/generate", json.dumps(payload).encode(), headers
        )
        event_id = json.loads(await connection.body(answer))["event_id"]
        answer = await connection.request("GET", f"/gradio_api/call/generate/{event_id}", extra=headers)
        if "content-length" in answer:  # not a stream: an error page
            return "", (await connection.body(answer)).decode(errors="replace")[:200]
        buffer, event = b"", ""
        async for chunk in connection.chunks():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode().rstrip("\r")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    return event, line[5:].strip()
        return "", f"stream ended after {event!r}"
    finally:
        connection.close()


async def page_event(
    url: str, fn_index: int, data: list[Any], headers: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """One of the page's events as a browser runs it: `POST /gradio_api/queue/join`, then the
    session's `/gradio_api/queue/data` stream read to `process_completed`: (its success, its data
    line), or (False, what went wrong)."""
    session = secrets.token_hex(8)
    connection = await _Connection.open(url)
    try:
        join = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None}
        await connection.body(
            await connection.request("POST", "/gradio_api/queue/join", json.dumps(join).encode(), headers)
        )
        await connection.request("GET", f"/gradio_api/queue/data?session_hash={session}", extra=headers)
        buffer = b""
        async for chunk in connection.chunks():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                if raw.startswith(b"data:") and b'"process_completed"' in raw:
                    message = json.loads(raw[5:])
                    return bool(message.get("success")), raw[5:].decode(errors="replace")[:300]
        return False, "the stream ended before process_completed"
    finally:
        connection.close()


async def _one(url: str, mode: str, n: int, latency: float, session: str | None) -> tuple[bool, str]:
    event, data = await call_generate(url, _payload(mode, n, latency, session))
    return event == "complete", f"{event}: {data[:200]}" if event else data


async def _round(url: str, mode: str, latency: float, sessions: list[str], offset: int) -> dict[str, Any]:
    started = time.perf_counter()
    calls = (_one(url, mode, offset + i, latency, session) for i, session in enumerate(sessions))
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=900)
    wall = time.perf_counter() - started
    failures = [
        repr(o) if isinstance(o, BaseException) else o[1]
        for o in outcomes
        if not (isinstance(o, tuple) and o[0])
    ]
    return {
        "wall_s": round(wall, 3),
        "ratio": round(wall / latency, 2),
        "failed": len(failures),
        "first_failure": failures[0][:200] if failures else None,
    }


async def _load(
    url: str, mode: str, n: int, latency: float, open_sessions: bool, rounds: int = 1
) -> dict[str, Any]:
    """N calls at once from N new sessions (what raw `/call/` clients are: Gradio builds a session
    state for each), `rounds` times (the figure is the median round; a 2-core machine is noisy), then,
    if asked, the last round's N sessions again (N people whose page is already open)."""
    await _one(url, mode, 10_000 + n, latency, None)  # warm-up: first-call imports and caches
    done = []
    for index in range(rounds):
        sessions = [secrets.token_hex(8) for _ in range(n)]
        done.append(await _round(url, mode, latency, sessions, index * n))
    ordered = sorted(done, key=lambda figures: figures["wall_s"])
    figures = {"n": n, **ordered[len(ordered) // 2]}
    if rounds > 1:
        figures |= {"rounds": rounds, "ratios": [r["ratio"] for r in done]}
        figures["failed"] = sum(r["failed"] for r in done)
    if open_sessions:
        again = await _round(url, mode, latency, sessions, rounds * n)
        figures |= {f"open_{key}": value for key, value in again.items()}
    return figures


@contextlib.contextmanager
def _app(emulator: EmulatorProcess, mode: str, latency: float) -> Iterator[AppProcess]:
    with temp_dir(f"bench-app-{mode}-") as data, AppProcess(emulator, data, mode, latency) as app:
        yield app


async def _series(url: str, mode: str, sizes: tuple[int, ...], latency: float, rounds: int) -> dict[str, Any]:
    # The naive app is serial: more rounds would add minutes of waiting and show nothing new.
    if mode == "naive":
        return {f"n{n}": await _load(url, mode, n, latency, open_sessions=False) for n in sizes}
    return {f"n{n}": await _load(url, mode, n, latency, True, rounds) for n in sizes}


def run(quick: bool = False) -> dict[str, Any]:
    latency = 0.2 if quick else 1.0
    sizes = (1, 5) if quick else (1, 50, 200)
    naive_sizes = (1, 5) if quick else (1, 50)  # serial: 200 would take over 200 s
    rounds = 1 if quick else 5
    figures: dict[str, Any] = {
        "latency_s": latency, "provider": PROVIDER, "size": "1024x1024", "rounds": rounds,
    }  # fmt: skip
    with EmulatorProcess(latency) as emulator:
        for mode, ns in (("tuned", sizes), ("naive", naive_sizes), ("floor", sizes)):
            with _app(emulator, mode, latency) as app:
                figures[mode] = asyncio.run(_series(app.url, mode, ns, latency, rounds))
                figures[mode]["startup_s"] = round(app.startup_s, 2)
    return figures


if __name__ == "__main__":
    main(run)
