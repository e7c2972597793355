"""The control API under ``/_emulator``: faults, variants, latency, stats, reset.

No auth: the server binds to loopback only. Errors are ``400 {"error": "..."}``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .directives import MAX_LATENCY, DirectiveError, resolve_variants
from .drift import DRIFTS, drift_named
from .emulated import ConfigError
from .faults import FAULTS, FaultError, fault_stages
from .state import EmulatorState

__all__ = ["routes"]

_CONFIG_KEYS = ("latency", "variants", "providers", "drift")


class ControlError(ValueError):
    pass


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ControlError("body is not valid JSON") from exc


def _latency(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_LATENCY:
        raise ControlError(f"latency must be a number of seconds in [0, {MAX_LATENCY:g}]")
    return float(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ControlError("count must be an integer >= 1")
    return value


class Control:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.providers = state.providers

    def _provider(self, value: object) -> str:
        if not isinstance(value, str) or value not in self.providers:
            raise ControlError(f"provider must be one of: {', '.join(self.providers)}; got {value!r}")
        return value

    def _variant_names(self, provider: str, value: object) -> tuple[str, ...]:
        names = (value,) if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ControlError("variants must be a name or a list of names")
        resolve_variants(self.providers[provider].variants, tuple(names))  # raises on unknown names
        return tuple(names)

    async def index(self, request: Request) -> Response:
        providers = self.providers.values()
        return JSONResponse({
            "providers": {p.name: f"{request.base_url}{p.name}" for p in providers},
            "faults": FAULTS,
            "fault_stages": {p.name: {f: list(fault_stages(p, f)) for f in FAULTS if fault_stages(p, f)}
                             for p in providers},
            "stages": {p.name: list(p.stages) for p in providers},
            "variants": {p.name: p.variants for p in providers},
            "drifts": DRIFTS,
            "config": self.state.config(),
            "directives": ["[fault:NAME]", "[fault:NAME@STAGE]", "[latency:SECONDS]",
                           "[variant:NAME,NAME]"],
            "keys": "any non-empty key works, except keys starting with 'invalid' (401)",
        })  # fmt: skip

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def jobs(self, request: Request) -> Response:
        now = time.monotonic()
        return JSONResponse({"now": now, "jobs": [job.record(now) for job in self.state.jobs.all()]})

    async def job(self, request: Request) -> Response:
        job = self.state.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(job.record(time.monotonic()))

    async def requests(self, request: Request) -> Response:
        provider = request.query_params.get("provider")
        items = [r for r in self.state.recent if provider in (None, r["provider"])]
        return JSONResponse({"requests": items})

    async def faults(self, request: Request) -> Response:
        try:
            if request.method == "DELETE":
                self.state.faults.clear()
            elif request.method == "POST":
                body = await _body(request)
                for item in body if isinstance(body, list) else [body]:
                    if not isinstance(item, dict):
                        raise ControlError("each fault must be a JSON object")
                    stage = item.get("stage")
                    self.state.faults.add(
                        self._provider(item.get("provider")),
                        str(item.get("fault")),
                        None if stage is None else str(stage),
                        _count(item.get("count", 1)),
                    )
        except (ControlError, FaultError) as exc:
            return _bad(str(exc))
        return JSONResponse({"queued": self.state.faults.snapshot()})

    async def variants(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.queued_variants.clear()
            return JSONResponse({"queued": {}})
        try:
            body = await _body(request)
            provider = self._provider(body.get("provider") if isinstance(body, dict) else None)
            names = self._variant_names(provider, body.get("variants", body.get("variant")))
            count = _count(body.get("count", 1))
        except (ControlError, DirectiveError) as exc:
            return _bad(str(exc))
        self.state.queued_variants.setdefault(provider, deque()).append((names, count))
        return JSONResponse({"queued": {p: list(q) for p, q in self.state.queued_variants.items()}})

    async def config(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self._apply_config(await _body(request))
            except (ControlError, ConfigError, DirectiveError) as exc:
                return _bad(str(exc))
        return JSONResponse(self.state.config())

    def _apply_config(self, body: object) -> None:
        if not isinstance(body, dict):
            raise ControlError("config must be a JSON object")
        if unknown := set(body) - set(_CONFIG_KEYS):
            raise ControlError(f"unknown config keys {sorted(unknown)}; valid: {', '.join(_CONFIG_KEYS)}")
        latency = body.get("latency")
        if isinstance(latency, dict):  # {"default": 0.3, "<provider>": 0.5, "<other>": null}
            for name, value in latency.items():
                if name == "default":
                    self.state.latency = _latency(value)
                elif value is None:
                    self.state.provider_latency.pop(self._provider(name), None)
                else:
                    self.state.provider_latency[self._provider(name)] = _latency(value)
        elif latency is not None:
            self.state.latency = _latency(latency)
        variants = body.get("variants", {})
        if not isinstance(variants, dict):
            raise ControlError('variants must be {"provider": [names]}')
        for name, value in variants.items():
            provider = self._provider(name)
            self.state.default_variants[provider] = self._variant_names(provider, value)
        self._apply_drift(body.get("drift", {}))
        # Each provider's own keys, applied by its ProviderState: {"<provider>": {"key": value}}.
        providers = body.get("providers", {})
        if not isinstance(providers, dict) or not all(isinstance(v, dict) for v in providers.values()):
            raise ControlError('providers must be {"provider": {"key": value}}')
        for name, values in providers.items():
            own = self.state.own[self._provider(name)]
            for key, value in values.items():
                try:
                    own.configure(key, value)
                except ConfigError as exc:
                    raise ConfigError(f"{name}: {exc}") from exc

    def _apply_drift(self, drift: object) -> None:
        """{"<provider>": "rename" | "status" | null}: how its answers drift from now on (drift.py)."""
        if not isinstance(drift, dict):
            raise ControlError('drift must be {"provider": "rename" | "status" | null}')
        for name, value in drift.items():
            provider = self._provider(name)
            if value is None:
                self.state.drift.pop(provider, None)
            else:
                try:
                    self.state.drift[provider] = drift_named(value)
                except ValueError as exc:
                    raise ControlError(str(exc)) from exc

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"ok": True})


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Control(state)
    return [
        Route("/", api.index, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/stats", api.stats, methods=["GET"]),
        Route("/jobs", api.jobs, methods=["GET"]),
        Route("/jobs/{job_id}", api.job, methods=["GET"]),
        Route("/requests", api.requests, methods=["GET"]),
        Route("/faults", api.faults, methods=["GET", "POST", "DELETE"]),
        Route("/variants", api.variants, methods=["POST", "DELETE"]),
        Route("/config", api.config, methods=["GET", "PUT"]),
        Route("/reset", api.reset, methods=["POST"]),
    ]
