"""httpcore 1.0: a connection pool split into shards, because httpcore's own does quadratic work.

httpcore's pool re-counts all its connections for every request it assigns and every response it
closes (`_assign_requests_to_connections`): with 200 idle keep-alive connections, a burst of 200
requests cost over 20 s of CPU in one pool, about 0.05 s in 32 pools. It also asks every idle
connection whether its socket is readable (anyio builds a dict of socket attributes, with a
getpeername call, to answer): 128 pools of at most 2 idle connections each took 10 % off the event
loop's CPU per generation against 32 pools (bench/NOTES.md). Upstream: encode/httpcore#1035 and
#929 (both open or closed unmerged) rewrite that method in linear time.

Nothing is patched: `ShardedTransport` is an httpx transport built from httpx's public ones. The
fingerprint below notices when httpcore changes the pool, so the sharding can be re-measured (and
dropped if upstream fixed it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from . import Expectation

__all__ = ["EXPECTED", "ShardedTransport"]

_POOL = "httpcore._async.connection_pool:AsyncConnectionPool"
EXPECTED = Expectation(
    package="httpcore",
    version="1.0.9",
    why="connections are sharded over many pools because the pool's assignment is quadratic",
    sources={_POOL + "._assign_requests_to_connections": "ea1547e78a655633"},
)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several connection pools, each with its share of the limits; a request goes to the least busy
    one (the first on a tie, so one person's calls keep reusing the same warm connections)."""

    def __init__(self, shards: int, max_connections: int, max_keepalive: int, keepalive_s: float) -> None:
        limits = httpx.Limits(
            max_connections=max(1, max_connections // shards),
            max_keepalive_connections=max(1, max_keepalive // shards),
            keepalive_expiry=keepalive_s,
        )
        # One TLS context for all pools: building one loads the CA bundle (~40 ms), and 32 of them
        # made every Playground take over a second to create. Same settings httpx uses by default.
        tls = httpx.create_ssl_context()
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(shards)]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._busy.index(min(self._busy))
        self._busy[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Release(response.stream, self._busy, index),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Release(httpx.AsyncByteStream):
    """A response body that marks its pool as one request less busy once it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, busy: list[int], index: int) -> None:
        self._stream, self._busy, self._index = stream, busy, index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1
        await self._stream.aclose()
