"""A job's output files, served as the provider's storage CDN would (no auth), with the download
faults: a request-level fault, a fault aimed at the job's download, or its bad stored output
(``not_image``, ``truncated``, ``slow_download``, ``huge_download``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .faults import Dialect, respond_with_fault
from .images import corrupt
from .jobs import CONTENT_FAULTS, Job
from .state import EmulatorState

__all__ = ["serve_output"]

_SLOW_CHUNK, _SLOW_INTERVAL = 8, 0.25  # slow_download: 32 bytes/s
_HUGE_TOTAL, _HUGE_CHUNK = 1 << 30, 1 << 16  # huge_download: 1 GiB in 64 KiB chunks
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def serve_output(
    request: Request,
    state: EmulatorState,
    dialect: Dialect,
    job: Job | None,
    available: Callable[[Job], bool],
    image: Callable[[Job], Awaitable[bytes]],
    headers: dict[str, str],
) -> Response:
    """The PNG `image(job)`, or 404 unless `available(job)`; the hit is counted by the caller."""
    provider = dialect.provider
    fault = state.take_fault(provider, "download")
    if fault is not None and fault not in CONTENT_FAULTS:
        return await respond_with_fault(fault, request, dialect, state.is_closing)
    if job is None or not available(job):
        return Response("Not Found", 404, media_type="text/plain")
    job.downloads += 1
    if (pending := job.pending.pop("download", None)) is not None:
        state.fired(provider, pending)
        return await respond_with_fault(pending, request, dialect, state.is_closing)
    fault = fault or job.content_fault
    data = await image(job)
    if fault == "huge_download":
        headers = {**headers, "x-emulator-fault": fault}
        return StreamingResponse(_huge(request, state), media_type="image/png", headers=headers)
    if fault == "slow_download":
        headers = {**headers, "x-emulator-fault": fault, "content-length": str(len(data))}
        return StreamingResponse(_slow(data, state), media_type="image/png", headers=headers)
    return Response(corrupt(data, fault), media_type="image/png", headers=headers)


async def _slow(data: bytes, state: EmulatorState) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _SLOW_CHUNK):
        if state.closing:
            return
        yield data[start : start + _SLOW_CHUNK]
        await asyncio.sleep(_SLOW_INTERVAL)


async def _huge(request: Request, state: EmulatorState) -> AsyncIterator[bytes]:
    # Starts like a PNG so a client sniffing the first bytes is not warned early.
    chunk = _PNG_SIGNATURE + bytes(_HUGE_CHUNK - len(_PNG_SIGNATURE))
    zeros = bytes(_HUGE_CHUNK)
    for n in range(_HUGE_TOTAL // _HUGE_CHUNK):
        # Stop once the client hangs up (as a real server would), and let other requests run
        # between chunks: otherwise the rest of the gigabyte is pumped into a closed socket
        # and starves every other request this emulator serves.
        if state.closing or (n % 16 == 15 and await request.is_disconnected()):
            return
        await asyncio.sleep(0)
        yield chunk if n == 0 else zeros
