"""The attack on a public Space, replayed against `python app.py`: what one hostile visitor achieves.

    python -m bench.attack                      # this checkout
    python -m bench.attack --also ../old-checkout   # and another checkout, in the same run (before/after)

Each app runs in its own process as a Space owner would start it (demo mode, 5 runs a minute per
person, Gradio's temp folder in a fresh directory so stored uploads can be counted). The phases are
the findings of docs/reliability.md: memory (fresh sessions carrying big values), disk (uploads),
identity (X-Forwarded-For on the API and over MCP), keys read back (deep links), billable events
run outside the queue, slow clients, and tracebacks in the log. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .common import REPO, bench_env, free_port, temp_dir, wait_http_ok

BIG = "k" * (5 * 1024 * 1024)
MEDIUM = "v" * 20_000
KEY = "sk-attack-PASTED-9c1d"


class App:
    def __init__(self, checkout: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.temp = workdir / "gradio-tmp"
        self.log = workdir / "server.log"
        env = bench_env(
            PYTHONPATH=str(checkout), FLUX_PLAYGROUND_DATA_DIR=str(workdir / "data"),
            GRADIO_SERVER_PORT=str(self.port), GRADIO_TEMP_DIR=str(self.temp),
            FLUX_PLAYGROUND_PER_USER_REQUESTS_PER_MINUTE="5",
        )  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(checkout / "app.py")], cwd=workdir, env=env, stdout=log, stderr=log
            )
        wait_http_ok(self.url + "config", timeout=90, proc=self.proc)
        self.config = httpx.get(self.url + "config").json()
        self.controls = self._fn("providers", "change")
        self.generate = self._fn("generate", "click")

    def _fn(self, elem_id: str, event: str) -> int:
        config = self.config
        ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
        for index, dependency in enumerate(config["dependencies"]):
            if any(t[0] in ids and t[1] == event for t in dependency["targets"]):
                return int(dependency.get("id", index))
        raise LookupError(elem_id)

    def data(self, fn_index: int, values: dict[str, Any]) -> list[Any]:
        """An event's values by elem_id (the same on both sides of a comparison), else the page's."""
        components = {c["id"]: c for c in self.config["components"]}
        dependency = next(d for i, d in enumerate(self.config["dependencies"]) if d.get("id", i) == fn_index)
        out = []
        for component_id in dependency["inputs"]:
            props = components[component_id].get("props", {})
            out.append(values.get(props.get("elem_id", ""), props.get("value")))
        return out

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    def stored_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.temp.rglob("*") if f.is_file()) if self.temp.exists() else 0

    def post(self, http: httpx.Client, path: str, body: dict[str, Any]) -> int:
        try:
            return http.post(
                self.url + path, content=json.dumps(body), headers={"content-type": "application/json"}
            ).status_code
        except httpx.TransportError:
            return 0  # the server closed the connection under the request

    def key_boxes(self, value: str) -> dict[str, str]:
        boxes = [c["props"]["elem_id"] for c in self.config["components"]
                 if str(c.get("props", {}).get("elem_id", "")).startswith("key-")]  # fmt: skip
        return {box: value for box in boxes[:3]}

    def controls_body(self, session: str, filler: str) -> dict[str, Any]:
        data = self.data(self.controls, {"providers": ["deepinfra"], **self.key_boxes(filler)})
        return {"data": data, "fn_index": self.controls, "session_hash": session}

    def generate_body(self, session: str, filler: str, key: str = "") -> dict[str, Any]:
        values = {"prompt": "a fox", "providers": ["deepinfra"], "width": 512, "height": 512}
        boxes = self.key_boxes(filler)
        if key:
            boxes = {box: key for box in boxes}
        data = self.data(self.generate, {**values, **boxes})
        return {"data": data, "fn_index": self.generate, "session_hash": session, "event_data": None}

    def close(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.log.read_text(errors="replace")


def attack(checkout: Path) -> dict[str, str]:
    with temp_dir("attack-") as workdir:
        app = App(checkout, workdir)
        try:
            results = _phases(app)
        finally:
            log = app.close()
    tracebacks = log.count("Traceback (most recent call last)")
    asgi = log.count("Exception in ASGI application")
    results["the server's log after all this"] = (
        f"{tracebacks} tracebacks ({asgi} 'Exception in ASGI application')"
    )
    return results


def _phases(app: App) -> dict[str, str]:
    out: dict[str, str] = {}
    with httpx.Client(timeout=60) as http:
        for name, phase in (
            ("60 price calls with 3 × 5 MB values", _big_values),
            ("1 500 price calls + 300 queued runs, fresh sessions, 60 KB each", _many_sessions),
            ("5 uploads of 50 × 1 MB", _uploads),
            ("deep link of a session with a pasted key", _deep_link),
            ("the page's generate event called directly (run/predict)", _direct),
            ("6 API calls, each claiming another X-Forwarded-For (limit 5/min)", _spoofed_api),
            ("6 MCP calls, each claiming another X-Forwarded-For (limit 5/min)", _spoofed_mcp),
            ("1 200 half-sent requests", _slow),
            ("50 streams for unknown sessions", _unknown_streams),
        ):
            try:
                out[name] = phase(app, http)
            except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                out[name] = f"the phase failed ({type(exc).__name__})"
    return out


def _big_values(app: App, http: httpx.Client) -> str:
    for n in range(50):
        app.post(http, "gradio_api/run/predict", app.controls_body(f"warm{n}", ""))
    start = app.rss_mb()
    statuses = [
        app.post(http, "gradio_api/run/predict", app.controls_body(f"big{n}", BIG)) for n in range(60)
    ]
    return f"{statuses.count(200)} accepted; RSS {start} → {app.rss_mb()} MB"


def _many_sessions(app: App, http: httpx.Client) -> str:
    before = app.rss_mb()
    for n in range(1500):
        app.post(http, "gradio_api/run/predict", app.controls_body(f"s{n}", MEDIUM))
    for n in range(300):
        app.post(http, "gradio_api/queue/join", app.generate_body(f"g{n}", MEDIUM))
    time.sleep(3)
    return f"RSS {before} → {app.rss_mb()} MB"


def _uploads(app: App, http: httpx.Client) -> str:
    stored = app.stored_bytes()
    files = [("files", (f"f{n}.bin", b"\0" * 1_000_000)) for n in range(50)]
    accepted = 0
    for _ in range(5):
        try:
            accepted += http.post(app.url + "gradio_api/upload", files=files).status_code == 200
        except httpx.TransportError:
            pass
    return f"{accepted} accepted; {(app.stored_bytes() - stored) / 1e6:.0f} MB stored"


def _deep_link(app: App, http: httpx.Client) -> str:
    session = "victim1"
    app.post(http, "gradio_api/queue/join", app.generate_body(session, "", key=KEY))
    time.sleep(1)
    link = http.get(app.url + "gradio_api/deep_link", params={"session_hash": session})
    leaked = False
    if link.status_code == 200 and link.text.strip('"'):
        leaked = any(KEY in path.read_text(errors="replace") for path in app.temp.rglob("state.json"))
    return f"HTTP {link.status_code}; key {'written to a readable file' if leaked else 'not exposed'}"


def _direct(app: App, http: httpx.Client) -> str:
    return f"HTTP {app.post(http, 'gradio_api/run/predict', app.generate_body('direct', ''))}"


def _spoofed_api(app: App, http: httpx.Client) -> str:
    time.sleep(61)  # the phases before used this minute's rate
    admitted = 0
    for n in range(6):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        body = {"data": [f"x {n}", ["deepinfra"], 256, 256, 1, -1, 1, "", ""]}
        posted = http.post(app.url + "gradio_api/call/generate", json=body, headers=headers)
        if posted.status_code == 200:
            event = posted.json()["event_id"]
            answer = http.get(f"{app.url}gradio_api/call/generate/{event}", headers=headers).text
            admitted += "event: complete" in answer
    return f"{admitted} admitted"


def _unknown_streams(app: App, http: httpx.Client) -> str:
    unknown = broken = 0
    for n in range(50):
        try:
            with http.stream(
                "GET", app.url + "gradio_api/queue/data", params={"session_hash": f"no{n}"}
            ) as r:
                unknown += "not found" in r.read().decode().lower()
        except httpx.TransportError:
            broken += 1  # the server broke the stream off after starting its answer
    return f"{unknown} answered 'session not found', {broken} broken off"


def _spoofed_mcp(app: App, http: httpx.Client) -> str:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def call(n: int) -> bool:
        headers = {"X-Forwarded-For": f"198.51.100.{n}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(app.url + "gradio_api/mcp/", http_client=http) as (r, w, _):
                async with ClientSession(r, w) as session:
                    await session.initialize()
                    arguments = {
                        "prompt": f"m {n}", "providers": ["deepinfra"], "width": 256, "height": 256,
                        "steps": 1, "seed": n, "num_images": 1, "sampler": "", "scheduler": "",
                    }  # fmt: skip
                    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
                    name = "generate" if "generate" in tools else next(iter(tools))
                    known = tools[name].inputSchema.get("properties", {})
                    result = await session.call_tool(name, {k: v for k, v in arguments.items() if k in known})
                    return not result.isError

    time.sleep(61)  # the API phase used this minute's rate
    try:
        admitted = sum(asyncio.run(call(n)) for n in range(6))
    except Exception as exc:  # noqa: BLE001 - an MCP server that fails is a figure too
        return f"failed: {type(exc).__name__}"
    return f"{admitted} admitted"


def _slow(app: App, http: httpx.Client) -> str:
    opened = []
    for n in range(1200):
        sock = socket.socket()
        sock.bind((f"127.0.{1 + n // 200}.{1 + n % 200}", 0))
        try:
            sock.connect(("127.0.0.1", app.port))
            sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    try:
        ok = httpx.get(app.url + "config", timeout=10).status_code == 200
    except httpx.TransportError:
        ok = False
    time.sleep(15)
    still = 0
    for sock in opened:
        sock.setblocking(False)
        try:
            still += sock.recv(1) != b""
        except BlockingIOError:
            still += 1
        except OSError:
            pass
        sock.close()
    meanwhile = "served" if ok else "failed"
    return f"{still} of {len(opened)} still open after 15 s; a normal request meanwhile: {meanwhile}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--also", type=Path, help="another checkout to attack in the same run (e.g. before the fix)"
    )
    args = parser.parse_args()
    runs = {"this checkout": attack(REPO)}
    if args.also:
        runs[f"{args.also}"] = attack(args.also.resolve())
    names = list(runs)
    rows = list(dict.fromkeys(key for run in runs.values() for key in run))
    print("| attack | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row in rows:
        print(f"| {row} | " + " | ".join(runs[name].get(row, "") for name in names) + " |")


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main()
