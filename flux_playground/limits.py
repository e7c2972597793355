"""What protects a Space owner's keys: spend caps, a request rate per person, size limits and
duplicate-click protection, all checked before any provider is called (docs/reliability.md).

    guard = Guard(settings)
    async with guard.admit(person, request, providers, charges) as admission:  # or LimitExceeded
        ...                                                          # call providers
        admission.settle("segmind", cost=Decimal("0.008"), billed=True)

Spend and the request rate are kept in the SQLite ledger (same file as history), so a restart resets
neither. A run reserves its estimated cost atomically (BEGIN IMMEDIATE), so concurrent requests cannot
slip past a cap or the rate together; each provider's share is then settled at the reported cost,
the estimate, or zero when the provider did not bill a failure. A reservation never settled (a crash)
keeps counting: caps err on the side of the owner's wallet. People using their own key are not
charged to the owner's caps: the caller leaves those providers out of `charges`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .db import migrate, open_db, transaction
from .errors import InvalidRequest, LimitExceeded
from .models import GenerationRequest
from .pricing import format_usd
from .settings import Settings

__all__ = ["Admission", "Guard"]

_MICRO = Decimal(1_000_000)
_LEDGER_STEPS = [
    [
        "CREATE TABLE spend (id TEXT PRIMARY KEY, day TEXT NOT NULL, person TEXT NOT NULL,"
        " provider TEXT NOT NULL, micro_usd INTEGER NOT NULL, settled INTEGER NOT NULL DEFAULT 0,"
        " created_at REAL NOT NULL)",
        "CREATE INDEX spend_day_person ON spend (day, person)",
    ],
    [
        # One row per admitted run and person, kept for the rate window (pruned as runs come in).
        "CREATE TABLE rate_events (person TEXT NOT NULL, at REAL NOT NULL)",
        "CREATE INDEX rate_events_person_at ON rate_events (person, at)",
    ],
]
_RATE_WINDOW_S = 60.0


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
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._running: set[str] = set()
        self._pruned_at = 0.0

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_db(self.settings.data_dir / "history.sqlite3")
            migrate(self._db, "spend", _LEDGER_STEPS)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

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
            raise LimitExceeded(
                "This exact request is already running (a double click?). Wait for it to finish."
            )
        self._running.add(fingerprint)
        admission = Admission(self, person)
        try:
            if self.keeps_ledger:
                admission._reservations = await asyncio.to_thread(self._admit, person, charges)
            yield admission
        finally:
            self._running.discard(fingerprint)
            # Whatever was not settled (cancelled, crashed mid-run) may have been billed: keep it.
            # popitem: a provider's settle may still be finishing in a worker thread right now.
            while admission._reservations:
                _, reservation = admission._reservations.popitem()
                await asyncio.to_thread(self._settle, reservation, None)

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
        day = self._day()
        with self._lock:
            if person is None:
                row = self._conn.execute("SELECT SUM(micro_usd) FROM spend WHERE day = ?", (day,))
            else:
                row = self._conn.execute(
                    "SELECT SUM(micro_usd) FROM spend WHERE day = ? AND person = ?",
                    (day, _person_key(person)),
                )
            return Decimal(row.fetchone()[0] or 0) / _MICRO

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
        who, now = _person_key(person), self._clock()
        with self._lock, transaction(self._conn) as conn:
            self._count_rate(conn, who, now)
            return self._reserve(conn, who, charges) if charges else {}

    def _reserve_more(self, person: str, charges: Mapping[str, Decimal | None]) -> dict[str, str]:
        with self._lock, transaction(self._conn) as conn:
            return self._reserve(conn, _person_key(person), charges)

    def _count_rate(self, conn: sqlite3.Connection, who: str, now: float) -> None:
        limit = self.settings.per_user_requests_per_minute
        if limit is None:
            return
        if now - self._pruned_at >= _RATE_WINDOW_S:
            self._pruned_at = now
            conn.execute("DELETE FROM rate_events WHERE at <= ?", (now - _RATE_WINDOW_S,))
        recent = conn.execute(
            "SELECT COUNT(*), MIN(at) FROM rate_events WHERE person = ? AND at > ?",
            (who, now - _RATE_WINDOW_S),
        ).fetchone()
        if recent[0] >= limit:
            wait = max(1, round(recent[1] + _RATE_WINDOW_S - now))
            raise LimitExceeded(
                f"Too many requests: at most {limit} per minute per person. Try again in {wait} s."
            )
        conn.execute("INSERT INTO rate_events (person, at) VALUES (?, ?)", (who, now))

    def _reserve(
        self, conn: sqlite3.Connection, who: str, charges: Mapping[str, Decimal | None]
    ) -> dict[str, str]:
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
        for cap, where, args, whose in (
            (daily, "day = ?", (day,), "This app's daily budget"),
            (personal, "day = ? AND person = ?", (day, who), "Your daily budget on this app"),
        ):
            if cap is None:
                continue
            spent = conn.execute(f"SELECT SUM(micro_usd) FROM spend WHERE {where}", args).fetchone()[0]
            if (spent or 0) + wanted > _micro(cap):
                raise LimitExceeded(
                    f"{whose} ({format_usd(cap)}) would be passed: "
                    f"{format_usd(Decimal(spent or 0) / _MICRO)} is spent today and this run costs about "
                    f"{format_usd(Decimal(wanted) / _MICRO)}. It resets at 00:00 UTC "
                    f"(in {self._until_midnight()}). You can use your own API key meanwhile."
                )
        reservations = {}
        for name, amount in amounts.items():
            reservations[name] = secrets.token_hex(8)
            conn.execute(
                "INSERT INTO spend (id, day, person, provider, micro_usd, settled, created_at)"
                " VALUES (?, ?, ?, ?, ?, 0, ?)",
                (reservations[name], day, who, name, amount, self._clock()),
            )
        return reservations

    def _settle(self, reservation: str, cost: Decimal | None) -> None:
        """Replace a reservation by the real cost (None: keep the estimate, but mark it settled)."""
        with self._lock:
            if cost is None:
                self._conn.execute("UPDATE spend SET settled = 1 WHERE id = ?", (reservation,))
            else:
                self._conn.execute(
                    "UPDATE spend SET micro_usd = ?, settled = 1 WHERE id = ?", (_micro(cost), reservation)
                )

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
