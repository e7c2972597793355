"""uvicorn 0.54: what our servers need from it that it does not offer.

1. **Slow and idle clients** (`guarded_protocol`). uvicorn arms no timer on a fresh connection and none
   while a request is being received: a client that opens a socket and sends half a request keeps it
   forever. An attack on the app held 1 500 such sockets for as long as it liked, and 1 124 from one
   client exhausted a 1 024 open-files limit, so every other request failed (docs/reliability.md).
   The protocol here gives each request `read_timeout_s` to arrive whole (headers and body; the app
   takes no uploads, so no honest request is large), bounds the connections of one address and of
   the whole server, and closes what is over, logging one line a minute, never one per connection.
   Keep-alive idling after a response stays uvicorn's own `timeout_keep_alive`.
2. **Aborting a connection** (`abort_connection`): the emulator's "reset" fault closes the TCP
   connection with no response, which ASGI cannot express; uvicorn keeps the transport on the
   request cycle object whose bound `send` the emulator hands in.

A deployment reachable from the internet should still sit behind a buffering proxy (docs/deploying.md
and docs/reliability.md say which limits to set there).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import Expectation, require

__all__ = [
    "EXPECTED",
    "ConnectionLimits",
    "Network",
    "abort_connection",
    "guarded_protocol",
    "in_networks",
]

log = logging.getLogger(__name__)

EXPECTED = Expectation(
    package="uvicorn",
    version="0.54.0",
    why="request deadlines and connection bounds subclass its httptools protocol",
    sources={
        # The hooks the guarded protocol extends, and the cycle that abort_connection reaches into.
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
        "uvicorn.protocols.http.httptools_impl:RequestResponseCycle.__init__": "4d2f220910c33c12",
    },
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOG_EVERY_S = 60.0


def in_networks(host: str, networks: Sequence[Network]) -> bool:
    """Whether `host` (an IP address as text) lies in any of `networks`; False for anything else."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return any(address.version == net.version and address in net for net in networks)


@dataclass(frozen=True)
class ConnectionLimits:
    #: Seconds a request may take to arrive whole (from the connection, or from its first byte).
    read_timeout_s: float = 10.0
    #: Open connections for the whole server; keep it well below the open-files limit.
    max_connections: int = 4096
    #: Open connections from one address (a browser uses about 6; a trusted proxy is not counted).
    max_per_address: int = 512
    #: Proxies whose connections carry many people (the Spaces proxy, a load balancer).
    trusted_proxies: tuple[Network, ...] = ()


@dataclass
class _Tally:
    """Per server: open connections by address, and what was refused (for the log and for tests)."""

    by_address: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    logged_at: float = 0.0

    def note(self, reason: str) -> None:
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self.logged_at >= _LOG_EVERY_S:
            self.logged_at = now
            log.warning("Closed connections so far: %s", dict(self.refused))


def _tally(server_state: Any) -> _Tally:
    tally = getattr(server_state, "flux_tally", None)
    if not isinstance(tally, _Tally):
        tally = _Tally()
        server_state.flux_tally = tally
    return tally


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a read deadline per request and bounded connections."""
    require(EXPECTED)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _address: str = ""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            tally = _tally(self.server_state)
            self._address = self.client[0] if self.client else ""
            tally.by_address[self._address] += 1
            over_address = tally.by_address[self._address] > limits.max_per_address and not in_networks(
                self._address, limits.trusted_proxies
            )
            if over_address or len(self.connections) > limits.max_connections:
                tally.note("too many from one address" if over_address else "too many in all")
                self.transport.close()
                return
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            tally = _tally(self.server_state)
            tally.by_address[self._address] -= 1
            if tally.by_address[self._address] <= 0:
                del tally.by_address[self._address]
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(limits.read_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                _tally(self.server_state).note("request not received in time")
                self.transport.close()

    return GuardedHttpToolsProtocol


async def abort_connection(raw_send: Callable[..., Any] | None) -> bool:
    """Close the TCP connection of the request whose server-level `send` this is, and wait until
    uvicorn has noticed; False (nothing done) when it is not uvicorn's.

    uvicorn's `send` is a bound method of its RequestResponseCycle, which holds the transport and
    sets `disconnected` once the protocol saw the connection go (a later loop iteration).
    """
    cycle = getattr(raw_send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        return False
    transport.abort()
    for _ in range(20):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    return True
