"""Fault catalogue, the queue fed by the control API, and the shared fault responses.

Every fault has a *stage* (which kind of request it hits) per provider; the first
stage listed by :func:`fault_stages` is its natural stage, used when neither the
control API nor the ``[fault:NAME@STAGE]`` directive names one.

Atlas lifecycle faults (``failed_job``, ``never_completes``, ``404_fresh``) show at
the poll stage but belong to a job, so a queued one is consumed by the next submit
(the job it creates carries the fault).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "FAULTS",
    "PROVIDERS",
    "RAW_SEND_KEY",
    "RESET_KEY",
    "STAGES",
    "Dialect",
    "FaultError",
    "FaultQueue",
    "check_directive_faults",
    "check_fault",
    "fault_stages",
    "reset_connection",
    "respond_with_fault",
]

PROVIDERS = ("atlascloud", "deepinfra", "segmind")

# Request kinds per provider; "any" in the control API matches all of them.
STAGES: dict[str, tuple[str, ...]] = {
    "atlascloud": ("submit", "poll", "download", "upload", "models"),
    "deepinfra": ("submit",),
    "segmind": ("submit", "credits"),
}

FAULTS: dict[str, str] = {
    "401": "401 with the provider's documented unauthorized body",
    "credits": "out of credits: Atlas 402, Segmind 406, DeepInfra 402",
    "429": "429 rate limited, with Retry-After: 1",
    "429_no_retry_after": "429 without Retry-After (Segmind: x-rate-limit-reset-at-utc)",
    "500": "500 with the provider's error body",
    "502": "502 with an HTML body, as a proxy in front of the provider sends",
    "reset": "connection closed without any response",
    "hang": "no answer until the client disconnects (bounded at 600 s, then 504)",
    "malformed": "200 application/json whose body is not valid JSON",
    "missing_fields": "200 valid JSON without the fields a client needs",
    "not_image": "200 whose image bytes / base64 are not an image",
    "truncated": "200 with a PNG/JPEG cut in half",
    "failed_job": "Atlas: job ends 'failed' with data.error; others: 500 'inference failed'",
    "never_completes": "Atlas: job stays 'processing' forever",
    "404_fresh": "Atlas: poll answers 404 for the first 1.5 s after submit",
    "slow_download": "Atlas: output file served at a few bytes per second",
    "huge_download": "Atlas: output file of 1 GiB, chunked, no Content-Length",
}

_RESPONSE_FAULTS = (
    "401", "credits", "429", "429_no_retry_after", "500", "502", "reset", "hang",
    "malformed", "missing_fields",
)  # fmt: skip
_ATLAS_LIFECYCLE = ("failed_job", "never_completes", "404_fresh")

RAW_SEND_KEY = "flux_emulator.raw_send"  # scope key: the server's own ``send`` (see app.py)
RESET_KEY = "flux_emulator.reset"  # scope key set once the connection was aborted
HANG_LIMIT = 600.0


class FaultError(ValueError):
    """An unknown fault, or one that does not apply to that provider or stage."""


def fault_stages(provider: str, fault: str) -> tuple[str, ...]:
    """Stages at which ``fault`` can hit ``provider``; the first is its natural stage."""
    stages = STAGES[provider]
    if fault in ("malformed", "missing_fields"):
        return tuple(s for s in stages if s != "download")  # a download is not JSON
    if fault in _RESPONSE_FAULTS:
        return stages
    if provider == "atlascloud":
        if fault in _ATLAS_LIFECYCLE:
            return ("poll",)
        if fault in ("not_image", "truncated", "slow_download", "huge_download"):
            return ("download",)
    elif fault in ("failed_job", "not_image", "truncated"):
        return ("submit",)
    return ()


def check_fault(provider: str, fault: str, stage: str | None) -> str:
    """Validate and return the effective stage (natural stage when ``stage`` is None)."""
    if provider not in STAGES:
        raise FaultError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDERS)}")
    if fault not in FAULTS:
        raise FaultError(f"unknown fault {fault!r}; valid: {', '.join(FAULTS)}")
    stages = fault_stages(provider, fault)
    if not stages:
        raise FaultError(f"fault {fault!r} does not apply to {provider}")
    if stage is None:
        return stages[0]
    if stage != "any" and stage not in stages:
        raise FaultError(f"fault {fault!r} on {provider} applies at: {', '.join(stages)} or any")
    return stage


def check_directive_faults(
    provider: str, faults: Sequence[tuple[str, str | None]], stages: Sequence[str]
) -> list[tuple[str, str]]:
    """Validate ``[fault:NAME@STAGE]`` directives: a prompt only reaches some stages."""
    checked = [(fault, check_fault(provider, fault, stage)) for fault, stage in faults]
    for fault, stage in checked:
        if stage != "any" and stage not in stages:
            raise FaultError(f"[fault:{fault}@{stage}]: a prompt directive reaches {', '.join(stages)}")
    return checked


def _consumed_at(provider: str, fault: str, stage: str) -> frozenset[str]:
    stages = fault_stages(provider, fault) if stage == "any" else (stage,)
    if provider == "atlascloud" and fault in _ATLAS_LIFECYCLE:
        return frozenset({"submit"})  # the fault belongs to the job the submit creates
    return frozenset(stages)


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

    def __init__(self) -> None:
        self._items: list[QueuedFault] = []

    def add(self, provider: str, fault: str, stage: str | None = None, count: int = 1) -> QueuedFault:
        stage = check_fault(provider, fault, stage)
        if count < 1:
            raise FaultError("count must be >= 1")
        item = QueuedFault(provider, fault, stage, count, _consumed_at(provider, fault, stage))
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


@dataclass(frozen=True)
class Dialect:
    """How one provider endpoint words its errors (PROVIDERS.md 1.4, 2.2, 3.3)."""

    provider: str
    error: Callable[[int, str], Response]
    unauthorized_message: str
    credits_status: int
    credits_message: str
    rate_limit_message: str
    missing_fields: Callable[[], dict[str, object]]
    reset_at_header: bool = False  # Segmind's 429 carries x-rate-limit-reset-at-utc


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
    raw ``send`` stored in the scope by the app wrapper (uvicorn's request cycle
    object keeps it as ``.transport``). uvicorn then sees the connection as lost and
    drops whatever the app returns, without logging an error.
    """
    send = request.scope.get(RAW_SEND_KEY)
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not under uvicorn (e.g. httpx.ASGITransport)
        raise ConnectionResetError("emulated connection reset")
    transport.abort()
    request.scope[RESET_KEY] = True
    for _ in range(20):  # connection_lost runs on a later loop iteration
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    return Response(status_code=499)  # never sent: the connection is gone


async def _hang(request: Request, dialect: Dialect, closing: Callable[[], bool]) -> Response:
    deadline = time.monotonic() + HANG_LIMIT
    while time.monotonic() < deadline and not closing():
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.2)
    return dialect.error(504, "emulator: hang fault gave up")
