"""When to poll an asynchronous job: fast at first, dense around the expected finish, then backing off.

A fixed 2–3 s sleep (the providers' sample code) adds on average half the interval to every image.
Polling every 100 ms wastes requests on a 10 s job. So: with no history, start at 100 ms and grow by
1.5× up to 1 s; once we know how long jobs take, sleep in halving jumps towards the expected finish,
poll every 50–100 ms around it (1 % of the expected time), and back off again if the job runs long.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PollSchedule"]

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
