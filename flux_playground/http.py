"""One shared httpx.AsyncClient, retries for idempotent requests only, and safe downloads.

Billable POSTs are sent exactly once (Atlas: "Never retry POST generate", docs/providers/atlascloud.md).
Polls and downloads are GETs: retried on network errors, 429 and 5xx with exponential backoff,
honouring `Retry-After`. Output URLs are untrusted (docs/reliability.md): https only, public
addresses only unless the URL is on the provider's own configured origin, redirects re-checked hop
by hop, size and time capped.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import math
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from .compat.httpcore import ShardedTransport
from .settings import Settings

__all__ = [
    "RETRYABLE_STATUS",
    "TooLarge",
    "UnsafeURL",
    "answer_cap",
    "file_cap",
    "check_output_url",
    "download",
    "get_with_retries",
    "make_client",
    "parse_retry_after",
    "read_capped",
    "same_origin",
]

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_REDIRECTS = 3
_MAX_RETRY_AFTER = 10.0


class UnsafeURL(ValueError):
    """An output URL we refuse to fetch. The message names the reason, never a key."""


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The one client every provider call goes through (connection reuse, explicit limits)."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.request_timeout,
        write=settings.connect_timeout,
        pool=settings.request_timeout,
    )
    # Atlas's starter app sets a UA: Cloudflare rejects some default ones (docs/providers/atlascloud.md).
    options: dict[str, Any] = {
        "timeout": timeout,
        "headers": {"User-Agent": settings.user_agent},
        "follow_redirects": False,
    }
    if any(scheme != "no" for scheme in urllib.request.getproxies()):
        # httpx only reads proxy settings from the environment for its own default transport.
        limits = httpx.Limits(
            max_connections=1000, max_keepalive_connections=200, keepalive_expiry=_KEEPALIVE_S
        )
        return httpx.AsyncClient(limits=limits, **options)
    return httpx.AsyncClient(transport=ShardedTransport(_POOL_SHARDS, 1024, 256, _KEEPALIVE_S), **options)


#: Connections are spread over this many pools: see compat/httpcore.py for why and how it was measured.
_POOL_SHARDS = 128
#: Idle connections are dropped well before a server's own keep-alive timeout would close them: a
#: request sent on a connection the server is closing at that moment fails, and a billable POST is
#: never retried, so the person would see an error for nothing.
_KEEPALIVE_S = 15.0


class TooLarge(ValueError):
    """An answer or file above its byte cap; reading stopped there."""


def file_cap(pixels: int, ceiling: int) -> int:
    """Bytes one image file of `pixels` pixels may take, at most (and never above `ceiling`).

    An image file of a FLUX output is never larger than its raw RGBA pixels (4 bytes each; PNG and
    JPEG only get smaller on real images), plus room for headers and metadata. Reading stops there:
    a provider (or anything pretending to be one) cannot make the server hold more
    (docs/reliability.md, "Downloads").
    """
    return min(ceiling, pixels * 4 + 256 * 1024)


def answer_cap(images: int, pixels: int, ceiling: int) -> int:
    """Bytes a provider's answer may take: its images inline as base64 (4/3 of a file), and JSON."""
    return file_cap(pixels, ceiling) * images * 4 // 3 + 256 * 1024


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed response, refusing it (TooLarge) as soon as it passes `max_bytes`."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"larger than {_mb(max_bytes)}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"larger than {_mb(max_bytes)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f}".removesuffix(".0") + " MB"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def get_with_retries(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    attempts: int = 4,
    base_delay: float = 0.25,
    timeout: float | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    max_bytes: int = 8 * 1_048_576,
) -> httpx.Response:
    """GET with backoff for transient failures. Returns the last response, its body read up to
    `max_bytes` (TooLarge beyond); raises the last network error.

    A `Retry-After` from the server sets the next wait; otherwise waits double from `base_delay`.
    """
    delay = base_delay
    for attempt in range(attempts):
        wait = delay
        last = attempt == attempts - 1
        try:
            async with client.stream("GET", url, headers=headers, timeout=timeout) as streamed:
                body = await read_capped(streamed, max_bytes)
            response = httpx.Response(
                streamed.status_code, headers=streamed.headers, content=body, request=streamed.request
            )
        except (httpx.TransportError, httpx.TimeoutException):
            if last:
                raise
        else:
            if response.status_code not in RETRYABLE_STATUS or last:
                return response
            asked = parse_retry_after(response.headers.get("retry-after"))
            if asked is not None:
                wait = min(asked, _MAX_RETRY_AFTER)
        await (sleep or asyncio.sleep)(wait)
        delay = min(delay * 2, _MAX_RETRY_AFTER)
    raise AssertionError("unreachable")  # pragma: no cover


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def same_origin(url: str, origin: str) -> bool:
    """Whether `url` is on `origin` (scheme, host and port): where a provider's key may be sent."""
    return _origin(url) == _origin(origin)


async def check_output_url(url: str, trusted_origin: str) -> None:
    """Raise UnsafeURL unless `url` is safe to fetch on the server.

    Allowed: the provider's own configured origin (so the emulator on loopback works), or https to a
    host whose every address is public.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"refused an output URL with scheme {parts.scheme or 'none'!r}")
    if parts.username or parts.password:
        raise UnsafeURL("refused an output URL with credentials in it")
    if not parts.hostname:
        raise UnsafeURL("refused an output URL without a host")
    if same_origin(url, trusted_origin):
        return
    if parts.scheme != "https":
        raise UnsafeURL("refused a plain-http output URL (only https is fetched)")
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnsafeURL(f"could not resolve the output host {host!r}") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise UnsafeURL(f"refused an output URL on a private or local address ({host})")


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    trusted_origin: str,
    max_bytes: int,
    timeout: float,
) -> bytes:
    """Fetch an output file: checked URL, manual re-checked redirects, byte cap, overall deadline.

    Raises UnsafeURL, httpx errors, TimeoutError, or ValueError for an oversized or failed download.
    """
    async with asyncio.timeout(timeout):
        for _ in range(_MAX_REDIRECTS + 1):
            await check_output_url(url, trusted_origin)
            response, body = await _get_capped(client, url, max_bytes)
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                continue
            if response.status_code != 200:
                raise ValueError(f"the output file answered HTTP {response.status_code}")
            return body
    raise UnsafeURL("too many redirects for an output file")


async def _get_capped(client: httpx.AsyncClient, url: str, max_bytes: int) -> tuple[httpx.Response, bytes]:
    """One GET (retried when transient) whose body is read only if it is a 200, and only up to the cap."""
    delay = 0.25
    for attempt in range(3):
        try:
            # Redirects are followed by `download`, which re-checks every hop, whatever the client does.
            async with client.stream("GET", url, follow_redirects=False) as response:
                if response.status_code in RETRYABLE_STATUS and attempt < 2:
                    retry = parse_retry_after(response.headers.get("retry-after"))
                    delay = min(retry if retry is not None else delay, _MAX_RETRY_AFTER)
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                if response.status_code != 200:
                    return response, b""
                try:
                    return response, await read_capped(response, max_bytes)
                except TooLarge as exc:
                    raise TooLarge(f"the output file is {exc}") from None
        except (httpx.TransportError, httpx.TimeoutException):
            if attempt == 2:
                raise
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
