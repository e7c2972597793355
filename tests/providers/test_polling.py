"""PollSchedule: how many polls a job costs and how late we notice it finished (simulated time);
poll_job: where the key may go."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flux_playground.providers import PROVIDERS
from flux_playground.providers._base import CallContext, ProviderOutput
from flux_playground.providers._polling import FAST_S, MAX_S, JobStatus, PollSchedule, poll_job
from flux_playground.settings import Settings


def simulate(job_s: float, expected_s: float | None) -> tuple[int, float]:
    """Poll a job that finishes `job_s` after submit; return (polls, seconds between finish and notice)."""
    schedule = PollSchedule(expected_s=expected_s)
    elapsed, polls = 0.0, 0
    while True:
        delay = schedule.next_delay(elapsed)
        assert FAST_S / 2 <= delay <= 2 * MAX_S
        elapsed += delay
        polls += 1
        if elapsed >= job_s:
            return polls, elapsed - job_s
        assert polls < 1000, "the schedule never reached the end of the job"


class TestPollSchedule:
    def test_without_history_starts_fast_and_grows_to_one_second(self) -> None:
        schedule = PollSchedule()
        delays = [schedule.next_delay(0.0) for _ in range(8)]
        assert delays[:3] == pytest.approx([0.1, 0.15, 0.225])
        assert delays[-1] == MAX_S
        assert delays == sorted(delays)

    @pytest.mark.parametrize(("job_s", "max_polls"), [(1.0, 6), (10.0, 16)])
    def test_without_expected_duration(self, job_s: float, max_polls: int) -> None:
        polls, notice = simulate(job_s, None)
        assert polls <= max_polls
        assert notice <= MAX_S

    @pytest.mark.parametrize("job_s", [1.0, 10.0])
    def test_with_expected_duration(self, job_s: float) -> None:
        polls, notice = simulate(job_s, expected_s=job_s)
        assert polls <= 20
        assert notice <= 0.15

    @pytest.mark.parametrize(("job_s", "expected_s"), [(9.0, 10.0), (11.0, 10.0), (12.5, 10.0)])
    def test_jobs_a_little_off_the_expectation_are_still_noticed_quickly(
        self, job_s: float, expected_s: float
    ) -> None:
        polls, notice = simulate(job_s, expected_s)
        assert notice <= 0.15
        assert polls <= 50

    def test_short_jobs_are_polled_twice_as_densely_as_long_ones(self) -> None:
        assert PollSchedule(expected_s=1.0).next_delay(0.95) == pytest.approx(FAST_S / 2)
        assert PollSchedule(expected_s=10.0).next_delay(9.5) == FAST_S
        polls, notice = simulate(1.0, expected_s=1.0)
        assert notice <= FAST_S / 2 and polls <= 10

    def test_dense_polling_only_inside_the_window(self) -> None:
        schedule = PollSchedule(expected_s=10.0)
        assert schedule.next_delay(0.0) == 2 * MAX_S  # far from the finish: long jumps
        assert schedule.next_delay(8.0) == pytest.approx((9.3 - 8.0) / 2)  # halving towards 93 %
        assert schedule.next_delay(9.5) == FAST_S
        assert schedule.next_delay(12.9) == FAST_S

    def test_a_job_far_over_the_expectation_backs_off(self) -> None:
        schedule = PollSchedule(expected_s=10.0)
        assert schedule.next_delay(13.4) == pytest.approx(0.1)
        assert schedule.next_delay(14.0) == pytest.approx(0.25)
        assert [schedule.next_delay(t) for t in (20.0, 60.0, 600.0)] == [MAX_S, MAX_S, MAX_S]
        polls, notice = simulate(60.0, 10.0)
        assert notice <= MAX_S
        assert polls <= 110

    def test_a_job_much_faster_than_expected_is_noticed_within_one_long_jump(self) -> None:
        assert simulate(1.0, 10.0) == (1, pytest.approx(1.0))

    def test_zero_expected_means_unknown(self) -> None:
        assert simulate(10.0, 0.0) == simulate(10.0, None)


class TestPollJob:
    """The shared poll loop: the key goes only to the provider's configured origin."""

    async def _poll(self, url: str, replies: list[dict[str, Any]]) -> tuple[list[httpx.Request], Any]:
        provider = PROVIDERS["atlascloud"]
        settings = Settings(
            _env_file=None, providers={"atlascloud": {"api_key": "k-1", "base_url": "https://api.example"}}
        )
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=replies.pop(0) if len(replies) > 1 else replies[0])

        def read(response: httpx.Response) -> JobStatus:
            state = response.json()["state"]
            return JobStatus(output=ProviderOutput(items=["x"])) if state == "done" else JobStatus()

        async def no_sleep(seconds: float) -> None:
            return None

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            ctx = CallContext(client=client, settings=settings, key="k-1", sleep=no_sleep)
            try:
                return seen, await poll_job(provider, ctx, url, "job-1", read)
            except Exception as exc:  # the refusal is the result under test
                return seen, exc

    async def test_a_status_url_on_the_configured_origin_is_polled_with_the_key(self) -> None:
        replies = [{"state": "running"}, {"state": "done"}]
        seen, output = await self._poll("https://api.example/jobs/1", replies)
        assert output.items == ["x"] and output.job_s is not None
        assert [r.headers["authorization"] for r in seen] == ["Bearer k-1", "Bearer k-1"]

    @pytest.mark.parametrize(
        "url", ["https://elsewhere.example/jobs/1", "http://api.example/jobs/1", "https://api.example:8443/j"]
    )
    async def test_a_status_url_elsewhere_is_refused_before_anything_is_sent(self, url: str) -> None:
        seen, error = await self._poll(url, [{"state": "done"}])
        assert seen == [] and "not on the provider's configured origin" in str(error)
