"""Polling an asynchronous job (`poll_job`), and when to poll (`PollSchedule`): fast at first, dense
around the expected finish, then backing off.

A fixed 2–3 s sleep (the providers' sample code) adds on average half the interval to every image.
Polling every 100 ms wastes requests on a 10 s job. So: with no history, start at 100 ms and grow by
1.5× up to 1 s; once we know how long jobs take, sleep in halving jumps towards the expected finish,
poll every 50–100 ms around it (1 % of the expected time), and back off again if the job runs long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from ..errors import ProviderFailed, ProviderTimeout
from ..http import TooLarge, get_with_retries
from ._contract import SeenAnswer

if TYPE_CHECKING:
    from ._base import CallContext, Provider, ProviderOutput

__all__ = ["JobStatus", "PollSchedule", "poll_job"]

FAST_S = 0.1
MAX_S = 1.0
_GROWTH = 1.5
# Dense polling starts this fraction of the expected duration in, and lasts until this fraction.
_WINDOW_START = 0.93
_WINDOW_END = 1.3
_DENSE_FRACTION = 0.01


@dataclass
class PollSchedule:
    expected_s: float | None = None
    _previous: float = 0.0

    def next_delay(self, elapsed: float) -> float:
        """Seconds to sleep before the next poll, `elapsed` seconds after submitting."""
        if self.expected_s:
            delay = self._informed(elapsed, self.expected_s)
        else:
            delay = FAST_S if self._previous == 0 else min(self._previous * _GROWTH, MAX_S)
        self._previous = delay
        return delay

    @staticmethod
    def _informed(elapsed: float, expected: float) -> float:
        window_start = expected * _WINDOW_START
        if elapsed < window_start - FAST_S:
            return min(max(FAST_S, (window_start - elapsed) / 2), 2 * MAX_S)
        if elapsed <= expected * _WINDOW_END:
            # Short jobs: poll every 50 ms around the finish; a 10 s job's window is longer, so it
            # keeps 100 ms and stays within about 20 polls.
            return min(FAST_S, max(FAST_S / 2, expected * _DENSE_FRACTION))
        # Longer than usual: back off in proportion to the overrun.
        return min(max(FAST_S, (elapsed - expected * _WINDOW_END) * 0.25), MAX_S)


@dataclass
class JobStatus:
    """One poll's reading of a job: done (`output`), failed (`failure`, the provider's words), or
    neither (still running)."""

    output: ProviderOutput | None = None
    failure: str | None = None


async def poll_job(
    provider: Provider,
    ctx: CallContext,
    url: str,
    job_id: str,
    read: Callable[[httpx.Response], JobStatus],
    *,
    not_yet: frozenset[int] = frozenset(),
    not_yet_grace_s: float = 0.0,
) -> ProviderOutput:
    """Poll `url` on the PollSchedule until `read` says the job is done or failed, or job_timeout.

    The key goes along only because `url` is on the provider's configured origin; any other URL is
    refused, never sent the key. Answers with a status in `not_yet` count as "not created yet" for
    the first `not_yet_grace_s` seconds. The output's `job_s` is when the job finished, about.
    """
    if not provider.own_url(url, ctx.settings):
        raise provider.malformed("the job's status URL is not on the provider's configured origin")
    headers = provider.auth_headers(ctx.key)
    schedule = PollSchedule(expected_s=ctx.expected_job_s)
    started = ctx.clock()
    deadline = started + ctx.settings.job_timeout
    ctx.progress("generating", None)
    last_pending = 0.0
    while True:
        elapsed = ctx.clock() - started
        if ctx.clock() >= deadline:
            raise ProviderTimeout(
                provider.label, f"the job {job_id} did not finish within {ctx.settings.job_timeout:g} s"
            )
        await ctx.sleep(min(schedule.next_delay(elapsed), max(0.0, deadline - ctx.clock())))
        response = await _get(provider, ctx, url, headers)
        elapsed = ctx.clock() - started
        if response.status_code in not_yet and elapsed < not_yet_grace_s:
            continue
        if response.is_error:
            raise provider.error_for(response, key=ctx.key)
        if ctx.tap is not None:
            ctx.tap(SeenAnswer.of(provider.name, "poll", response))
        status = read(response)
        if status.output is not None:
            # The job finished somewhere between the last "pending" answer and this one.
            status.output.job_s = (last_pending + elapsed) / 2
            return status.output
        if status.failure is not None:
            raise ProviderFailed(provider.label, f"the job failed ({status.failure[:200]}). Try again.")
        last_pending = elapsed


async def _get(provider: Provider, ctx: CallContext, url: str, headers: dict[str, str]) -> httpx.Response:
    try:
        return await get_with_retries(
            ctx.client, url, headers=headers, sleep=ctx.sleep, max_bytes=ctx.max_answer_bytes
        )
    except TooLarge as exc:
        raise provider.malformed(f"a poll answer is {exc}") from exc
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        raise ProviderFailed(provider.label, f"polling failed ({type(exc).__name__}). Try again.") from exc
