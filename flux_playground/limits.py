"""What protects a Space owner's keys: spend caps, a request rate per person, size limits and
duplicate-click protection, all checked before any provider is called (docs/reliability.md).

    guard = Guard(settings)
    async with guard.admit(person, request, providers, charges) as admission:  # or LimitExceeded
        ...                                                          # call providers
        admission.settle("segmind", cost=Decimal("0.008"), billed=True)

Spend and the request rate are kept in the ledger (ledger.py): the SQLite file shared with history,
or with FLUX_PLAYGROUND_DATABASE_URL a PostgreSQL database shared by several replicas, so neither a
restart nor a second replica resets them. A run reserves its estimated cost atomically (one
transaction holding the database's lock on each cap it checks), so concurrent requests, in one
process or several, cannot slip past a cap or the rate together; each provider's share is then
settled at the reported cost, the estimate, or zero when the provider did not bill a failure. A
reservation never settled (a crash) keeps counting: caps err on the side of the owner's wallet.
People using their own key are not charged to the owner's caps: the caller leaves those providers
out of `charges`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .errors import InvalidRequest, LimitExceeded
from .ledger import Ledger, LedgerWrite, open_ledger
from .models import GenerationRequest
from .pricing import format_usd
from .settings import Settings

__all__ = ["Admission", "Guard"]

log = logging.getLogger(__name__)

_MICRO = Decimal(1_000_000)
_RATE_WINDOW_S = 60.0
_ALREADY_RUNNING = "This exact request is already running (a double click?). Wait for it to finish."


@dataclass
class Admission:
    """A run let through: settle each provider's share as its outcome arrives."""

    _guard: Guard
    _person: str = ""
    _reservations: dict[str, str] = field(default_factory=dict)

    def reserve(self, provider: str, cost: Decimal | None) -> None:
        """Reserve one more provider's estimate inside this run (an automatic route's next choice,
        after the previous one was settled): the caps are checked again with everything spent and
        reserved so far, the request rate is not counted again. LimitExceeded when a cap would be
        passed. Blocking (SQLite): call it from a worker thread."""
        if self._guard.keeps_ledger:
            self._reservations.update(self._guard._reserve_more(self._person, {provider: cost}))

    def settle(self, provider: str, *, cost: Decimal | None, billed: bool) -> None:
        """Record what `provider` really cost: the reported or estimated cost, or 0 if not billed."""
        reservation = self._reservations.pop(provider, None)
        if reservation is not None:
            self._guard._settle(reservation, cost if billed else Decimal(0))


class Guard:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._ledger: Ledger = open_ledger(settings)  # opens its database on first use only
        self._running: set[str] = set()
        self._pruned_at = 0.0

    def close(self) -> None:
        self._ledger.close()

    @asynccontextmanager
    async def admit(
        self,
        person: str,
        request: GenerationRequest,
        providers: Sequence[str],
        charges: Mapping[str, Decimal | None],
    ) -> AsyncIterator[Admission]:
        """Check every limit, reserve the estimated spend, and hold the duplicate-click lock.

        `request` is the request as the person sent it (seed unresolved, so two clicks on "random"
        are recognised as the same); `charges` holds only providers billed to the owner's keys.
        """
        self.check_size(request)
        fingerprint = _fingerprint(person, request, sorted(providers))
        if fingerprint in self._running:
            raise LimitExceeded(_ALREADY_RUNNING)
        self._running.add(fingerprint)  # before any await: a second click in this process sees it
        admission, claim = Admission(self, person), None
        try:
            if self._ledger.shared:  # then across replicas: the click may have reached another one
                claim = await asyncio.to_thread(
                    self._ledger.claim_run, fingerprint, self._clock(), self._lease_s
                )
                if claim is None:
                    raise LimitExceeded(_ALREADY_RUNNING)
            if self.keeps_ledger:
                admission._reservations = await asyncio.to_thread(self._admit, person, charges)
            yield admission
        finally:
            self._running.discard(fingerprint)
            if claim is not None:
                try:
                    await asyncio.to_thread(self._ledger.release_run, fingerprint, claim)
                except Exception:  # its lease runs out on its own; the run's outcome matters more
                    log.exception("Could not release a run's duplicate-click claim")
            # Whatever was not settled (cancelled, crashed mid-run) may have been billed: keep it.
            # popitem: a provider's settle may still be finishing in a worker thread right now.
            while admission._reservations:
                _, reservation = admission._reservations.popitem()
                try:
                    await asyncio.to_thread(self._settle, reservation, None)
                except Exception:  # unsettled, it still counts at its estimate: the safe side
                    log.exception("Could not settle a run's spend at its end")

    def check_size(self, request: GenerationRequest) -> None:
        limit = self.settings.max_images_per_request
        if request.num_images > limit:
            raise InvalidRequest(f"This app allows at most {limit} image(s) per run.", field="num_images")
        if request.width * request.height > self.settings.max_pixels:
            raise InvalidRequest(
                f"This app allows at most {self.settings.max_pixels:,} pixels per image "
                f"({request.width}×{request.height} is {request.width * request.height:,}).",
                field="width",
            )

    def spent_today(self, person: str | None = None) -> Decimal:
        """Today's spend (UTC), for everyone or one person."""
        who = None if person is None else _person_key(person)
        return Decimal(self._ledger.spent(self._day(), who)) / _MICRO

    @property
    def keeps_ledger(self) -> bool:
        """Whether any cap or rate is set: without one there is nothing to count, and no file is
        written (a CLI run leaves no ledger behind)."""
        settings = self.settings
        return any(
            limit is not None
            for limit in (
                settings.daily_budget_usd,
                settings.per_user_daily_budget_usd,
                settings.per_user_requests_per_minute,
            )
        )

    def _admit(self, person: str, charges: Mapping[str, Decimal | None]) -> dict[str, str]:
        """The rate and the caps, checked and recorded in one transaction; the reservations made."""
        who, now, settings = _person_key(person), self._clock(), self.settings
        with self._ledger.writing() as tx:
            # Before anything of this person's is read: their rate and budget, so no other
            # transaction (another replica's) can read the same spend and reserve it too. The
            # global budget is locked later (_reserve), as briefly as possible: every paid run of
            # every replica queues for that one.
            tx.lock(
                everyone=False,
                who=who
                if settings.per_user_requests_per_minute is not None
                or (charges and settings.per_user_daily_budget_usd is not None)
                else None,
            )
            self._count_rate(tx, who, now)
            return self._reserve(tx, who, charges) if charges else {}

    def _reserve_more(self, person: str, charges: Mapping[str, Decimal | None]) -> dict[str, str]:
        """One more reservation inside an admitted run (Admission.reserve): the caps locked and checked
        again as in `_admit`, the request rate not counted again."""
        who, settings = _person_key(person), self.settings
        with self._ledger.writing() as tx:
            tx.lock(everyone=False, who=who if settings.per_user_daily_budget_usd is not None else None)
            return self._reserve(tx, who, charges)

    def _count_rate(self, tx: LedgerWrite, who: str, now: float) -> None:
        limit = self.settings.per_user_requests_per_minute
        if limit is None:
            return
        if now - self._pruned_at >= _RATE_WINDOW_S:
            self._pruned_at = now
            tx.forget_requests(now - _RATE_WINDOW_S)
        count, oldest = tx.recent_requests(who, now - _RATE_WINDOW_S)
        if count >= limit and oldest is not None:
            wait = max(1, round(oldest + _RATE_WINDOW_S - now))
            raise LimitExceeded(
                f"Too many requests: at most {limit} per minute per person. Try again in {wait} s."
            )
        tx.record_request(who, now)

    @property
    def _lease_s(self) -> float:
        # Longer than any run lasts (call or job, then the download), so only a crash outlives it.
        settings = self.settings
        return max(settings.request_timeout, settings.job_timeout) + settings.download_timeout + 60

    def _reserve(self, tx: LedgerWrite, who: str, charges: Mapping[str, Decimal | None]) -> dict[str, str]:
        daily, personal = self.settings.daily_budget_usd, self.settings.per_user_daily_budget_usd
        unknown = [name for name, cost in charges.items() if cost is None]
        if unknown and (daily is not None or personal is not None):
            raise LimitExceeded(
                f"The price of {', '.join(unknown)} is unknown, so this app's spend cap cannot be "
                "checked. Pick another provider, or use your own key."
            )
        amounts = {name: _micro(cost or Decimal(0)) for name, cost in charges.items()}
        wanted = sum(amounts.values())
        day = self._day()
        # The person's cap first (their lock is held already), then the global one: its lock is
        # taken only now and held to the commit, a read and the reservations later.
        for cap, personal_cap, whose in (
            (personal, True, "Your daily budget on this app"),
            (daily, False, "This app's daily budget"),
        ):
            if cap is None:
                continue
            if not personal_cap:
                tx.lock(everyone=True, who=None)
            spent = tx.spent(day, who if personal_cap else None)
            if spent + wanted > _micro(cap):
                raise LimitExceeded(
                    f"{whose} ({format_usd(cap)}) would be passed: "
                    f"{format_usd(Decimal(spent) / _MICRO)} is spent today and this run costs about "
                    f"{format_usd(Decimal(wanted) / _MICRO)}. It resets at 00:00 UTC "
                    f"(in {self._until_midnight()}). You can use your own API key meanwhile."
                )
        return {name: tx.reserve(day, who, name, amount, self._clock()) for name, amount in amounts.items()}

    def _settle(self, reservation: str, cost: Decimal | None) -> None:
        """Replace a reservation by the real cost (None: keep the estimate, but mark it settled)."""
        self._ledger.settle(reservation, None if cost is None else _micro(cost))

    def _day(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")

    def _until_midnight(self) -> str:
        now = datetime.fromtimestamp(self._clock(), UTC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        minutes = int((midnight - now).total_seconds() // 60)
        return f"{minutes // 60} h {minutes % 60} min"


def _micro(usd: Decimal) -> int:
    # Rounded up: a cap is never passed by rounding.
    return int((usd * _MICRO).to_integral_value(rounding="ROUND_CEILING"))


def _person_key(person: str) -> str:
    # Like history, the ledger never stores the raw owner string (an anonymous id works like a password).
    return hashlib.sha256(person.encode()).hexdigest()[:32]


def _fingerprint(person: str, request: GenerationRequest, providers: list[str]) -> str:
    fields = request.model_dump(mode="json", exclude={"seed"} if request.seed is None else set())
    return hashlib.sha256(json.dumps([person, fields, providers], sort_keys=True).encode()).hexdigest()
