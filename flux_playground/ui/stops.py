"""The Stop button: a signal to the runs of one page, which then end themselves.

Gradio's own `cancels=` raced the run it cancelled: a chunk the run sent just before the cancellation
reached the page after Stop's answer and drew the waiting card and the Stop button again (seen in a
browser test under load). Here Stop only sets a signal; the run closes its provider calls and sends
the stopped cards as its own last chunk, so nothing of the run can arrive after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator
from typing import TypeVar

__all__ = ["Stops", "until_stopped"]

T = TypeVar("T")


class Stops:
    """The runs streaming now, by page session (one page, one session): only while they stream."""

    def __init__(self) -> None:
        self._running: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, session: str | None) -> Iterator[asyncio.Event]:
        """The signal of one run of `session` (a run without a session, an API call, has no Stop)."""
        signal = asyncio.Event()
        if session is None:
            yield signal
            return
        self._running.setdefault(session, set()).add(signal)
        try:
            yield signal
        finally:
            running = self._running.get(session, set())
            running.discard(signal)
            if not running:
                self._running.pop(session, None)

    def stop(self, session: str | None) -> int:
        """Signal every run of `session` to stop; how many there were."""
        running = self._running.get(session, set()) if session is not None else set()
        for signal in running:
            signal.set()
        return len(running)


async def until_stopped(items: AsyncGenerator[T, None], stop: asyncio.Event) -> AsyncGenerator[T, None]:
    """`items` until they end or `stop` is set; either way `items` is closed (a run's provider calls
    are cancelled). An item already made is passed on before stopping: it may hold a paid image."""
    stopped = asyncio.ensure_future(stop.wait())
    step: asyncio.Future[T] | None = None
    try:
        while not stop.is_set():
            step = asyncio.ensure_future(anext(items))
            await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return  # stopped while waiting: the finally cancels the step
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield item
    finally:
        stopped.cancel()
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})  # its end, whatever it was (the generator must be idle to close)
        await items.aclose()
