"""Prediction jobs of the async providers (Atlas Cloud, Replicate) and their timing records.

A job is created by the submit with ``ready = created + latency`` and is done from
then on (docs/providers/atlascloud.md#response: ``processing`` -> ``completed``/``failed``;
docs/providers/replicate.md#response: ``starting``/``processing`` -> ``succeeded``/``failed``). Benchmarks
that measure how fast a client notices completion read ``ready`` (when the job
became done) against ``first_done_poll`` (when a poll first reported it). Times are
``time.monotonic()``: CLOCK_MONOTONIC is system-wide on Linux, so a benchmark in
another process on the same machine can compare them with its own clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .faults import check_directive_faults, check_fault

if TYPE_CHECKING:
    from .emulated import EmulatedProvider
    from .state import EmulatorState

__all__ = ["CONTENT_FAULTS", "JOB_FAULTS", "LIFECYCLE_FAULTS", "Job", "JobStore", "assign_faults"]

#: Faults in a job's life: it fails, never completes, or is briefly unknown to its polls.
LIFECYCLE_FAULTS = ("failed_job", "never_completes", "404_fresh")
#: Faults in a job's stored output: served by its downloads (and inline base64 outputs).
CONTENT_FAULTS = ("not_image", "truncated", "slow_download", "huge_download")
JOB_FAULTS = (*LIFECYCLE_FAULTS, *CONTENT_FAULTS)
FRESH_404_SECONDS = 1.5  # 404_fresh window; Atlas's own client tolerates 30 s (atlascloud.md#response)

_MAX_JOBS = 10_000  # bounded memory for long benchmark runs; oldest jobs are dropped


@dataclass
class Job:
    id: str
    model: str
    prompt: str  # directives stripped: what the placeholder shows
    seed: int
    width: int
    height: int
    num_images: int
    variants: dict[str, str]
    base64_output: bool
    sync: bool
    created_wall: float
    created: float
    ready: float | None  # None: the job never completes
    failed: bool = False
    fresh_404_until: float | None = None
    content_fault: str | None = None  # not_image / truncated / slow_download / huge_download
    pending: dict[str, str] = field(default_factory=dict)  # stage -> fault fired once
    faults: list[str] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    polls: int = 0
    polls_404: int = 0
    first_done_poll: float | None = None
    downloads: int = 0

    def done(self, now: float) -> bool:
        return self.ready is not None and now >= self.ready

    def status(self, now: float) -> str:
        if not self.done(now):
            return "processing"
        return "failed" if self.failed else self.variants["done"]

    def record(self, now: float) -> dict[str, object]:
        notice = None
        if self.first_done_poll is not None and self.ready is not None:
            notice = self.first_done_poll - self.ready
        return {
            "id": self.id,
            "status": self.status(now),
            "created_wall": self.created_wall,
            "created": self.created,
            "ready": self.ready,
            "first_done_poll": self.first_done_poll,
            "notice_delay": notice,
            "polls": self.polls,
            "polls_404": self.polls_404,
            "downloads": self.downloads,
            "sync": self.sync,
            "model": self.model,
            "prompt": self.prompt,
            "seed": self.seed,
            "size": f"{self.width}*{self.height}",
            "num_images": self.num_images,
            "faults": list(self.faults),
            "variants": dict(self.variants),
            "ignored_fields": list(self.ignored_fields),
        }


class JobStore:
    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def add(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > _MAX_JOBS:
            self._jobs.popitem(last=False)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def clear(self) -> None:
        self._jobs.clear()

    def summary(self, now: float) -> dict[str, int]:
        counts: dict[str, int] = {"total": len(self._jobs)}
        for job in self._jobs.values():
            status = job.status(now)
            counts[status] = counts.get(status, 0) + 1
        return counts


def assign_faults(
    state: EmulatorState, provider: EmulatedProvider, job: Job, directives: Sequence[tuple[str, str | None]]
) -> list[str]:
    """Give a new job its faults: the prompt's ``[fault:...]`` directives, then a queued job fault
    (the queue hands those to the submit that creates the job, see faults.py).

    Lifecycle and content faults shape the job; one aimed at a later stage (``[fault:500@poll]``)
    fires once, at the job's first such request. Returns the faults that answer the submit itself.
    """
    faults = check_directive_faults(provider, directives, ("submit", "poll", "download"))
    if (queued := state.take_fault(provider.name, "submit", JOB_FAULTS.__contains__)) is not None:
        faults.append((queued, check_fault(provider, queued, None)))
    now_faults = []
    for n, (fault, stage) in enumerate(faults):
        if fault in JOB_FAULTS:
            job.faults.append(fault)
            if n < len(directives):  # the queue counted the queued one as fired already
                state.fired(provider.name, fault)
        if fault == "never_completes":
            job.ready = None
        elif fault == "failed_job":
            job.failed = True
        elif fault == "404_fresh":
            job.fresh_404_until = job.created + FRESH_404_SECONDS
        elif fault in CONTENT_FAULTS:
            job.content_fault = fault  # the stored output itself is bad
        elif stage in ("submit", "any"):
            now_faults.append(fault)
        else:
            job.pending[stage] = fault  # fires once, at that job's first such request
            job.faults.append(f"{fault}@{stage}")
    return now_faults
