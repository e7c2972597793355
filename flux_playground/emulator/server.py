"""Run the emulator: in a background thread (tests, benchmarks) or in the foreground (CLI).

with EmulatorServer(latency=0.05) as emu:    # serves every provider in registry.EMULATED
    emu.inject(name, "429")                     # name: a key of emu.base_urls
    httpx.post(emu.base_urls[name] + "<a documented path>", ...)
    emu.stats()["requests"][name]["submit"]
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .app import create_app

__all__ = ["EmulatorServer", "bind_socket", "make_config"]


def _require_loopback(host: str) -> None:
    # The emulator accepts any API key and has an unauthenticated control API.
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulator binds to loopback only (127.0.0.1, ::1), not {host!r}")


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind first so that port 0 resolves to a real port before the server starts."""
    _require_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Like the providers' own front ends: no Nagle delay, or each small answer waits ~40 ms for an ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def make_config(app: Any) -> uvicorn.Config:
    """Quiet, and sized for benchmarks with ~200 concurrent connections."""
    return uvicorn.Config(
        app,
        log_config=None,  # leave the host process's logging setup alone
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        proxy_headers=False,
        server_header=False,
        backlog=2048,
        limit_concurrency=None,
        timeout_keep_alive=30,  # longer than client pools keep idle connections
        timeout_graceful_shutdown=1,  # a request still in its latency sleep must not hold up stop()
    )


class EmulatorServer:
    """Serves the providers registered when it is created (``registry.register`` later
    does not reach a server that already exists)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.3) -> None:
        _require_loopback(host)
        self.host = host
        self.port = port
        self.app = create_app(latency)
        self.state = self.app.state
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._client: httpx.Client | None = None
        self._error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("EmulatorServer already started")
        self._sock = bind_socket(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self.state.closing = False
        self._server = uvicorn.Server(make_config(self.app))
        self._thread = threading.Thread(target=self._run, name=f"flux-emulator-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the emulator failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the emulator did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start(); a daemon thread has no one else
            self._error = exc

    def stop(self, timeout: float = 10.0) -> None:
        self.state.closing = True  # ends hangs, slow downloads and sync waits promptly
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._client = self._sock = None

    def __enter__(self) -> EmulatorServer:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_urls(self) -> dict[str, str]:
        return {provider: f"{self.url}/{provider}" for provider in self.state.providers}

    # -- control API helpers (sync, over HTTP) -------------------------------------

    def _control(self, method: str, path: str, body: object = None) -> Any:
        if self._client is None:
            # trust_env=False: a proxy from the environment must not see loopback traffic.
            self._client = httpx.Client(base_url=f"{self.url}/_emulator", timeout=10.0, trust_env=False)
        response = self._client.request(method, path, json=body)
        if response.status_code == 400:
            raise ValueError(response.json().get("error", response.text))
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return dict(self._control("GET", "/stats"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/jobs")["jobs"])

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        path = "/requests" if provider is None else f"/requests?provider={provider}"
        return list(self._control("GET", path)["requests"])

    def reset(self) -> None:
        self._control("POST", "/reset")

    def inject(self, provider: str, fault: str, stage: str | None = None, count: int = 1) -> list[Any]:
        body = {"provider": provider, "fault": fault, "stage": stage, "count": count}
        return list(self._control("POST", "/faults", body)["queued"])

    def clear_faults(self) -> None:
        self._control("DELETE", "/faults")

    def queue_variants(self, provider: str, variants: list[str] | str, count: int = 1) -> None:
        self._control("POST", "/variants", {"provider": provider, "variants": variants, "count": count})

    def configure(
        self,
        latency: float | dict[str, float | None] | None = None,
        variants: dict[str, list[str]] | None = None,
        **extra: object,
    ) -> dict[str, Any]:
        """``providers={name: {key: value}}`` sets a provider's own keys (its ProviderState)."""
        body: dict[str, object] = dict(extra)
        if latency is not None:
            body["latency"] = latency
        if variants is not None:
            body["variants"] = variants
        return dict(self._control("PUT", "/config", body))
