"""Everything an emulator instance remembers: config, queues, counters, jobs, images.

All of it is touched only from the server's event loop (the control API is HTTP on
the same loop), so nothing here needs a lock.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from .faults import PROVIDERS, FaultQueue
from .images import ImageCache
from .jobs import JobStore

__all__ = ["SEGMIND_START_CREDITS", "EmulatorState"]

SEGMIND_START_CREDITS = 100.0  # x-remaining-credits starts here after each reset
DEEPINFRA_MAX_CONCURRENCY = 200  # "200 concurrent requests" per model (PROVIDERS.md 3.3)
_RECENT_REQUESTS = 500
_REDACTED_HEADERS = ("authorization", "x-api-key")


def _counters() -> dict[str, Counter[str]]:
    return {name: Counter() for name in PROVIDERS}


@dataclass
class EmulatorState:
    base_latency: float = 0.3  # constructor/CLI value; reset() returns to it
    latency: float = 0.3
    provider_latency: dict[str, float] = field(default_factory=dict)
    default_variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    queued_variants: dict[str, deque[tuple[tuple[str, ...], int]]] = field(default_factory=dict)
    faults: FaultQueue = field(default_factory=FaultQueue)
    jobs: JobStore = field(default_factory=JobStore)
    images: ImageCache = field(default_factory=ImageCache)
    uploads: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    segmind_credits: float = SEGMIND_START_CREDITS
    deepinfra_max_concurrency: int = DEEPINFRA_MAX_CONCURRENCY
    deepinfra_inflight: int = 0
    closing: bool = False  # set by EmulatorServer.stop(): ends hangs and slow streams
    requests: dict[str, Counter[str]] = field(default_factory=_counters)
    statuses: dict[str, Counter[str]] = field(default_factory=_counters)
    faults_fired: dict[str, Counter[str]] = field(default_factory=_counters)
    user_agents: dict[str, Counter[str]] = field(default_factory=_counters)
    recent: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=_RECENT_REQUESTS))
    started: float = field(default_factory=time.monotonic)

    def latency_for(self, provider: str, override: float | None = None) -> float:
        if override is not None:
            return override
        return self.provider_latency.get(provider, self.latency)

    def is_closing(self) -> bool:
        return self.closing

    def hit(self, request: Request, provider: str, kind: str, route: str) -> None:
        """Count a request that reached a route, whatever happens to it next."""
        counter = self.requests[provider]
        counter[kind] += 1
        counter[f"{request.method} {route}"] += 1
        counter["total"] += 1
        self.user_agents[provider][request.headers.get("user-agent", "")] += 1

    def log_request(self, request: Request, provider: str, kind: str, body: object) -> None:
        """Keep the last requests (secrets redacted) so tests can assert what a client sent."""
        headers = {k: ("[redacted]" if k in _REDACTED_HEADERS else v) for k, v in request.headers.items()}
        scheme = request.headers.get("authorization", "").partition(" ")[0]
        if scheme:
            headers["authorization"] = f"{scheme} [redacted]"
        self.recent.append({
            "time": time.monotonic(), "provider": provider, "kind": kind,
            "method": request.method, "path": request.url.path, "query": request.url.query,
            "headers": headers, "body": body,
        })  # fmt: skip

    def take_fault(
        self, provider: str, stage: str, accept: Callable[[str], bool] | None = None
    ) -> str | None:
        fault = self.faults.take(provider, stage, accept)
        if fault is not None:
            self.fired(provider, fault)
        return fault

    def fired(self, provider: str, fault: str) -> None:
        self.faults_fired[provider][fault] += 1

    def take_variants(self, provider: str) -> tuple[str, ...]:
        names = self.default_variants.get(provider, ())
        queue = self.queued_variants.get(provider)
        if queue:
            queued, remaining = queue[0]
            names = (*names, *queued)
            if remaining <= 1:
                queue.popleft()
            else:
                queue[0] = (queued, remaining - 1)
        return names

    def reset(self) -> None:
        self.latency = self.base_latency
        self.provider_latency.clear()
        self.default_variants.clear()
        self.queued_variants.clear()
        self.faults.clear()
        self.jobs.clear()
        self.uploads.clear()
        self.segmind_credits = SEGMIND_START_CREDITS
        self.deepinfra_max_concurrency = DEEPINFRA_MAX_CONCURRENCY
        for table in (self.requests, self.statuses, self.faults_fired, self.user_agents):
            for counter in table.values():
                counter.clear()
        self.recent.clear()

    def config(self) -> dict[str, object]:
        return {
            "latency": self.latency,
            "provider_latency": dict(self.provider_latency),
            "variants": {k: list(v) for k, v in self.default_variants.items()},
            "segmind_credits": self.segmind_credits,
            "deepinfra_max_concurrency": self.deepinfra_max_concurrency,
        }

    def stats(self) -> dict[str, object]:
        now = time.monotonic()
        return {
            "requests": {p: dict(c) for p, c in self.requests.items()},
            "statuses": {p: dict(c) for p, c in self.statuses.items()},
            "faults_fired": {p: dict(c) for p, c in self.faults_fired.items()},
            "user_agents": {p: dict(c) for p, c in self.user_agents.items()},
            "jobs": self.jobs.summary(now),
            "queued_faults": self.faults.snapshot(),
            "images": self.images.stats(),
            "deepinfra_inflight": self.deepinfra_inflight,
            "segmind_credits": self.segmind_credits,
            "uptime": now - self.started,
        }
