"""Everything an emulator instance remembers: config, queues, counters, jobs, images.

All of it is touched only from the server's event loop (the control API is HTTP on
the same loop), so nothing here needs a lock.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from .drift import Drift
from .emulated import EmulatedProvider, ProviderState
from .faults import Dialect, FaultQueue, respond_with_fault
from .images import ImageCache
from .jobs import JobStore

__all__ = ["EmulatorState"]

_RECENT_REQUESTS = 500
_REDACTED_HEADERS = ("authorization", "x-api-key")

S = TypeVar("S", bound=ProviderState)


@dataclass
class EmulatorState:
    """``providers`` is the set this instance serves, fixed at creation (a snapshot of
    the registry), so that counters, queues and mounts always agree."""

    providers: Mapping[str, EmulatedProvider]
    base_latency: float = 0.3  # constructor/CLI value; reset() returns to it
    latency: float = 0.3
    provider_latency: dict[str, float] = field(default_factory=dict)
    default_variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    queued_variants: dict[str, deque[tuple[tuple[str, ...], int]]] = field(default_factory=dict)
    drift: dict[str, Drift] = field(default_factory=dict)  # provider -> how its answers drift (drift.py)
    jobs: JobStore = field(default_factory=JobStore)  # async providers' jobs (GET /_emulator/jobs)
    images: ImageCache = field(default_factory=ImageCache)
    closing: bool = False  # set by EmulatorServer.stop(): ends hangs and slow streams
    recent: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=_RECENT_REQUESTS))
    started: float = field(default_factory=time.monotonic)
    faults: FaultQueue = field(init=False)
    own: dict[str, ProviderState] = field(init=False)  # each provider's own state
    requests: dict[str, Counter[str]] = field(init=False)
    statuses: dict[str, Counter[str]] = field(init=False)
    faults_fired: dict[str, Counter[str]] = field(init=False)
    user_agents: dict[str, Counter[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.providers = dict(self.providers)
        self.faults = FaultQueue(self.providers)
        self.own = {name: p.make_state() for name, p in self.providers.items()}
        self.requests = self._counters()
        self.statuses = self._counters()
        self.faults_fired = self._counters()
        self.user_agents = self._counters()

    def _counters(self) -> dict[str, Counter[str]]:
        return {name: Counter() for name in self.providers}

    def provider_state(self, provider: str, kind: type[S]) -> S:
        """A provider's own state, typed: ``state.provider_state(NAME, SegmindState)``."""
        own = self.own[provider]
        if not isinstance(own, kind):
            raise TypeError(f"{provider} state is {type(own).__name__}, not {kind.__name__}")
        return own

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

    async def queued_fault(
        self, provider: str, stage: str, request: Request, dialect: Dialect
    ) -> Response | None:
        """The response for the next queued fault at this stage, if there is one."""
        fault = self.take_fault(provider, stage)
        if fault is None:
            return None
        return await respond_with_fault(fault, request, dialect, self.is_closing)

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
        self.drift.clear()
        self.faults.clear()
        self.jobs.clear()
        for own in self.own.values():
            own.reset()
        for table in (self.requests, self.statuses, self.faults_fired, self.user_agents):
            for counter in table.values():
                counter.clear()
        self.recent.clear()

    def config(self) -> dict[str, object]:
        return {
            "latency": self.latency,
            "provider_latency": dict(self.provider_latency),
            "variants": {k: list(v) for k, v in self.default_variants.items()},
            "drift": dict(self.drift),
            "providers": {name: own.config() for name, own in self.own.items()},
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
            "providers": {name: own.stats() for name, own in self.own.items()},
            "uptime": now - self.started,
        }
