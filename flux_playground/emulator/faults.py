"""Fault catalogue, the queue fed by the control API, and the shared fault responses.

Every fault has a *stage* (which kind of request it hits) per provider; the first
stage listed by :func:`fault_stages` is its natural stage, used when neither the
control API nor the ``[fault:NAME@STAGE]`` directive names one. Which faults apply
where is declared by each provider (``EmulatedProvider.stages``/``faults``).

Job faults (``EmulatedProvider.job_faults``, e.g. an async job that fails or never
completes) show at a later stage but belong to a job, so a queued one is consumed
by the next request at the provider's first stage (the job it creates carries it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..compat.uvicorn import abort_connection
from .emulated import EmulatedProvider

__all__ = [
    "FAULTS",
    "JSON_FAULTS",
    "RAW_SEND_KEY",
    "REQUEST_FAULTS",
    "RESET_KEY",
    "Dialect",
    "FaultError",
    "FaultQueue",
    "check_directive_faults",
    "check_fault",
    "fault_stages",
    "reset_connection",
    "respond_with_fault",
]

# The catalogue; the README's fault table gives each provider's wording.
FAULTS: dict[str, str] = {
    "401": "401 with the provider's documented unauthorized body",
    "credits": "out of credits, with the provider's documented status and body",
    "429": "429 rate limited, with Retry-After: 1",
    "429_no_retry_after": "429 without Retry-After (or with the provider's own reset header)",
    "500": "500 with the provider's error body",
    "502": "502 with an HTML body, as a proxy in front of the provider sends",
    "reset": "connection closed without any response",
    "hang": "no answer until the client disconnects (bounded at 600 s, then 504)",
    "malformed": "200 application/json whose body is not valid JSON",
    "missing_fields": "200 valid JSON without the fields a client needs",
    "not_image": "200 whose image bytes / base64 are not an image",
    "truncated": "200 with a PNG/JPEG cut in half",
    "failed_job": "the inference fails: an async job ends 'failed', a sync call answers 500",
    "never_completes": "an async job stays 'processing' forever",
    "404_fresh": "polls answer 404 for the first 1.5 s after submit",
    "slow_download": "an output file served at a few bytes per second",
    "huge_download": "an output file of 1 GiB, chunked, no Content-Length",
}

# Faults every provider has at every stage (answered by respond_with_fault).
REQUEST_FAULTS = (
    "401", "credits", "429", "429_no_retry_after", "500", "502", "reset", "hang",
    "malformed", "missing_fields",
)  # fmt: skip
JSON_FAULTS = ("malformed", "missing_fields")  # not at a provider's binary stages

RAW_SEND_KEY = "flux_emulator.raw_send"  # scope key: the server's own ``send`` (see app.py)
RESET_KEY = "flux_emulator.reset"  # scope key set once the connection was aborted
HANG_LIMIT = 600.0


class FaultError(ValueError):
    """An unknown fault, or one that does not apply to that provider or stage."""


def fault_stages(provider: EmulatedProvider, fault: str) -> tuple[str, ...]:
    """Stages at which ``fault`` can hit ``provider``; the first is its natural stage."""
    if fault in provider.faults:
        return provider.faults[fault]
    if fault in JSON_FAULTS:
        return tuple(s for s in provider.stages if s not in provider.binary_stages)
    if fault in REQUEST_FAULTS:
        return provider.stages
    return ()


def check_fault(provider: EmulatedProvider, fault: str, stage: str | None) -> str:
    """Validate and return the effective stage (natural stage when ``stage`` is None)."""
    if fault not in FAULTS:
        raise FaultError(f"unknown fault {fault!r}; valid: {', '.join(FAULTS)}")
    stages = fault_stages(provider, fault)
    if not stages:
        raise FaultError(f"fault {fault!r} does not apply to {provider.name}")
    if stage is None:
        return stages[0]
    if stage != "any" and stage not in stages:
        raise FaultError(f"fault {fault!r} on {provider.name} applies at: {', '.join(stages)} or any")
    return stage


def check_directive_faults(
    provider: EmulatedProvider, faults: Sequence[tuple[str, str | None]], stages: Sequence[str]
) -> list[tuple[str, str]]:
    """Validate ``[fault:NAME@STAGE]`` directives: a prompt only reaches some stages."""
    checked = [(fault, check_fault(provider, fault, stage)) for fault, stage in faults]
    for fault, stage in checked:
        if stage != "any" and stage not in stages:
            raise FaultError(f"[fault:{fault}@{stage}]: a prompt directive reaches {', '.join(stages)}")
    return checked


def _consumed_at(provider: EmulatedProvider, fault: str, stage: str) -> frozenset[str]:
    if fault in provider.job_faults:
        return frozenset(provider.stages[:1])  # the fault belongs to the job that request creates
    return frozenset(fault_stages(provider, fault) if stage == "any" else (stage,))


@dataclass
class QueuedFault:
    provider: str
    fault: str
    stage: str
    remaining: int
    consumed_at: frozenset[str]

    def as_dict(self) -> dict[str, object]:
        return {"provider": self.provider, "fault": self.fault, "stage": self.stage,
                "remaining": self.remaining}  # fmt: skip


class FaultQueue:
    """FIFO of faults for the next matching requests; only touched on the event loop."""

    def __init__(self, providers: Mapping[str, EmulatedProvider]) -> None:
        self._providers = providers
        self._items: list[QueuedFault] = []

    def add(self, provider: str, fault: str, stage: str | None = None, count: int = 1) -> QueuedFault:
        spec = self._providers.get(provider)
        if spec is None:
            raise FaultError(f"unknown provider {provider!r}; valid: {', '.join(self._providers)}")
        stage = check_fault(spec, fault, stage)
        if count < 1:
            raise FaultError("count must be >= 1")
        item = QueuedFault(provider, fault, stage, count, _consumed_at(spec, fault, stage))
        self._items.append(item)
        return item

    def take(self, provider: str, stage: str, accept: Callable[[str], bool] | None = None) -> str | None:
        for item in self._items:
            if item.provider != provider or stage not in item.consumed_at:
                continue
            if accept is None or accept(item.fault):
                item.remaining -= 1
                if item.remaining <= 0:
                    self._items.remove(item)
                return item.fault
        return None

    def clear(self) -> None:
        self._items.clear()

    def snapshot(self) -> list[dict[str, object]]:
        return [item.as_dict() for item in self._items]


def _no_fields() -> dict[str, object]:
    return {}


@dataclass(frozen=True)
class Dialect:
    """How one provider endpoint words its errors; each provider module sets its own
    from its docs (the defaults are only a neutral start for a new provider)."""

    provider: str
    error: Callable[[int, str], Response]
    unauthorized_message: str = "Unauthorized"
    credits_status: int = 402
    credits_message: str = "Insufficient credits"
    rate_limit_message: str = "Too many requests"
    missing_fields: Callable[[], dict[str, object]] = _no_fields  # a 200 body without the payload
    reset_at_header: bool = False  # a 429 with x-rate-limit-reset-at-utc instead of Retry-After


_PROXY_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_MALFORMED = b'{"code": 200, "data": {"id": "emulator-malformed", "status": "compl'


async def respond_with_fault(
    fault: str, request: Request, dialect: Dialect, closing: Callable[[], bool]
) -> Response:
    """The response (or the non-response) for a request-level fault."""
    response: Response
    if fault == "reset":
        return await reset_connection(request)
    if fault == "hang":
        response = await _hang(request, dialect, closing)
    elif fault == "401":
        response = dialect.error(401, dialect.unauthorized_message)
    elif fault == "credits":
        response = dialect.error(dialect.credits_status, dialect.credits_message)
    elif fault in ("429", "429_no_retry_after"):
        response = dialect.error(429, dialect.rate_limit_message)
        if fault == "429":
            response.headers["Retry-After"] = "1"
        elif dialect.reset_at_header:
            reset_at = datetime.now(UTC) + timedelta(seconds=1)
            response.headers["x-rate-limit-reset-at-utc"] = reset_at.isoformat()
    elif fault == "500":
        response = dialect.error(500, "Internal server error")
    elif fault == "failed_job":  # sync providers: the inference itself failed
        response = dialect.error(500, "Inference failed (emulated failed_job fault)")
    elif fault == "502":
        response = Response(_PROXY_502, 502, media_type="text/html")
    elif fault == "malformed":
        response = Response(_MALFORMED, 200, media_type="application/json")
    elif fault == "missing_fields":
        response = JSONResponse(dialect.missing_fields())
    else:
        raise FaultError(f"{fault!r} is not a request-level fault")
    response.headers["x-emulator-fault"] = fault
    return response


async def reset_connection(request: Request) -> Response:
    """Close the TCP connection with no response, so the client sees a transport error.

    ASGI has no "abort" message, so this reaches the server's transport through the
    raw ``send`` stored in the scope by the app wrapper (compat/uvicorn.py). uvicorn
    then sees the connection as lost and drops whatever the app returns, without
    logging an error.
    """
    if not await abort_connection(request.scope.get(RAW_SEND_KEY)):  # not under uvicorn
        raise ConnectionResetError("emulated connection reset")
    request.scope[RESET_KEY] = True
    return Response(status_code=499)  # never sent: the connection is gone


async def _hang(request: Request, dialect: Dialect, closing: Callable[[], bool]) -> Response:
    deadline = time.monotonic() + HANG_LIMIT
    while time.monotonic() < deadline and not closing():
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.2)
    return dialect.error(504, "emulator: hang fault gave up")
