"""Load: N people at once through the public HTTP API, against the demo emulator at a fixed 1 s latency.

    python bench/load.py                 # N = 10, 50, 200; two identical rounds each
    python bench/load.py --quick         # N = 5, two rounds (the CI smoke test runs this)
    python bench/load.py --people 200 --rounds 3 --json out.json

The server is the real app, `python app.py`, in demo mode (no provider key: the built-in emulator
answers every provider after DEMO_LATENCY_S = 1 s) in its own process, on loopback, with a throwaway
data directory. This process is the load generator: one httpx.AsyncClient, each person one
`POST /gradio_api/call/generate` with their own prompt, then its SSE stream read until `complete`
or `error`. Reported per N and round: requests completed, errors, latency over the emulator's own
1 s (p50, p95, max), wall time, the server's CPU time per request, and its RSS (VmRSS of the process;
the demo emulator runs inside it, so both include it) before the first round and after each round.
Every wait is bounded.

The target: zero errors at N = 200, and RSS flat from one identical round to the next.
Linux only (RSS is read from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `python bench/load.py` runs from anywhere

from flux_playground.providers import all_variables  # noqa: E402

PROVIDER_LATENCY_S = 1.0  # flux_playground.demo.DEMO_LATENCY_S, what `python app.py` uses in demo mode
#: Never passed to the server: keys (demo mode needs none), limits, OAuth, proxies (loopback only).
_SCRUBBED = (
    "FLUX_PLAYGROUND_", "OAUTH_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
    "all_proxy",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class Server:
    """`python app.py` in demo mode on a free loopback port; only its own pid is ever signalled.
    `extra_env` is added last (bench/replicas.py: a key, the emulator, a database)."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        provider_variables = set(all_variables())  # every registered provider's keys and origins
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED) and k not in provider_variables
        }
        env |= {
            "PYTHONPATH": str(REPO), "FLUX_PLAYGROUND_DATA_DIR": str(workdir / "data"),
            "GRADIO_SERVER_PORT": str(self.port), "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
        }  # fmt: skip
        env |= extra_env or {}
        self._log = (workdir / "server.log").open("wb")
        self.log_path = workdir / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py")], cwd=workdir, env=env, stdout=self._log, stderr=self._log
        )

    def wait_ready(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("the app exited:\n" + self.log_path.read_text()[-3000:])
            try:
                if httpx.get(f"{self.url}/config", timeout=2, trust_env=False).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the app did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log.close()


def failed_providers(complete: str) -> list[str]:
    """The providers that failed, from the data of a `/call/generate` stream's `complete` event."""
    summary = json.loads(complete)[1]
    return [name for name, outcome in summary["providers"].items() if not outcome["ok"]]


async def one_person(
    client: httpx.AsyncClient, url: str, prompt: str, providers: list[str], timeout: float
) -> tuple[float | None, str | None]:
    """(seconds from POST to `complete`, None) or (None, what went wrong)."""
    data = [prompt, providers, 512, 512, 4, -1, 1, "", ""]
    started = time.perf_counter()
    phase = "POST"
    try:
        async with asyncio.timeout(timeout):
            posted = await client.post(f"{url}/gradio_api/call/generate", json={"data": data})
            if posted.status_code != 200:
                return None, f"POST {posted.status_code}: {posted.text[:120]}"
            event_id = posted.json()["event_id"]
            phase, event = "GET", None
            async with client.stream("GET", f"{url}/gradio_api/call/generate/{event_id}") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line.partition(":")[2].strip()
                    elif line.startswith("data:") and event in ("complete", "error"):
                        if event == "error":
                            return None, f"error event: {line[5:].strip()[:160]}"
                        failed = failed_providers(line[5:])
                        if failed:
                            return None, f"provider failed: {failed}"
                        return time.perf_counter() - started, None
            return None, "stream ended without a result"
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        return None, f"{phase}: {type(exc).__name__} {exc!r}"[:160]


async def round_of(url: str, people: int, providers: list[str], tag: str, timeout: float) -> dict[str, Any]:
    # Idle connections are dropped after 1 s, well inside uvicorn's 5 s keep-alive: reusing one the server
    # is closing at that moment fails the next request (ReadError), which browsers retry but httpx not.
    limits = httpx.Limits(
        max_connections=people * 2 + 20, max_keepalive_connections=people * 2 + 20, keepalive_expiry=1.0
    )
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(one_person(client, url, f"load {tag} person {i}", providers, timeout) for i in range(people))
        )
        wall = time.perf_counter() - started
    latencies = [t for t, _ in outcomes if t is not None]
    errors = [e for _, e in outcomes if e is not None]
    over = [t - PROVIDER_LATENCY_S for t in latencies]

    def ms(value: float | None) -> int | None:
        return None if value is None else round(value * 1000)

    return {
        "people": people,
        "completed": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "over_latency_ms": {
            "p50": ms(percentile(over, 50)),
            "p95": ms(percentile(over, 95)),
            "max": ms(max(over) if over else None),
        },  # fmt: skip
        "wall_s": round(wall, 2),
    }


async def run(people_list: list[int], rounds: int, providers: list[str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flux-load-") as tmp:
        server = Server(Path(tmp))
        try:
            startup = server.wait_ready()
            warm = await round_of(server.url, 3, providers, "warm-up", timeout)
            if warm["errors"]:
                raise RuntimeError(f"warm-up failed: {warm['error_samples']}")
            await asyncio.sleep(1.0)
            report: dict[str, Any] = {
                "server": "python app.py (demo mode, emulator in-process, provider latency 1 s)",
                "providers": providers,
                "startup_s": round(startup, 1),
                "rss_mb_start": rss_mb(server.proc.pid),
                "runs": [],
            }
            for people in people_list:
                for index in range(rounds):
                    cpu_before = cpu_s(server.proc.pid)
                    result = await round_of(server.url, people, providers, f"n{people}-r{index}", timeout)
                    cpu_ms = (cpu_s(server.proc.pid) - cpu_before) * 1000 / people
                    await asyncio.sleep(1.0)  # let responses close before reading memory
                    result |= {"round": index + 1, "rss_mb_after": rss_mb(server.proc.pid),
                               "server_cpu_ms_per_request": round(cpu_ms)}  # fmt: skip
                    report["runs"].append(result)
                    print(_line(result), file=sys.stderr, flush=True)
            report["errors"] = sum(r["errors"] for r in report["runs"])
            report["rss_mb_end"] = rss_mb(server.proc.pid)
            return report
        finally:
            server.stop()


def _line(r: dict[str, Any]) -> str:
    o = r["over_latency_ms"]
    return (
        f"N={r['people']:>4} round {r['round']}: {r['completed']:>4} ok, {r['errors']} errors, "
        f"over 1 s p50 {o['p50']} ms, p95 {o['p95']} ms, max {o['max']} ms; wall {r['wall_s']} s; "
        f"server CPU {r['server_cpu_ms_per_request']} ms/request; RSS after {r['rss_mb_after']} MB"
        + (f"; e.g. {r['error_samples'][0]}" if r["errors"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument(
        "--rounds", type=int, default=2, help="identical rounds per N (memory must stay flat)"
    )
    parser.add_argument("--providers", nargs="+", default=["deepinfra"])
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--quick", action="store_true", help="N = 5 only (CI smoke)")
    parser.add_argument("--json", help="write the report here ('-' for stdout)")
    args = parser.parse_args()
    people = [5] if args.quick else args.people
    report = asyncio.run(run(people, max(1, args.rounds), args.providers, args.timeout))
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
    print(f"start RSS {report['rss_mb_start']} MB, end RSS {report['rss_mb_end']} MB; "
          f"{report['errors']} errors in total", file=sys.stderr)  # fmt: skip
    sys.exit(1 if report["errors"] else 0)


if __name__ == "__main__":
    main()
