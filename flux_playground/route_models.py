"""The automatic route as data: what was asked (`AutoRoute`) and what happened (`RouteReport`).

Kept apart from route.py (which chooses and needs the quotes and the registry) so that models.py can
put a report on every result the route served without importing the registry.

    AutoRoute.parse("auto:fastest:0.004")   -> prefer="fastest", max_cost_usd=Decimal("0.004")
    AutoRoute(prefer="cheapest").token     -> "auto:cheapest"
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidRequest

__all__ = ["AUTO", "AttemptOutcome", "AutoRoute", "Preference", "RouteAttempt", "RouteReport", "is_auto"]

#: The name a run's automatic slot goes by, in snapshots and summaries.
AUTO = "auto"
Preference = Literal["cheapest", "fastest"]
AttemptOutcome = Literal["served", "failed", "not tried"]
_PREFERENCES: tuple[Preference, ...] = ("cheapest", "fastest")
#: A ceiling above this is a typo, not a budget: one FLUX.1 [schnell] run costs well under a cent.
_MAX_CEILING_USD = Decimal(100)
#: "auto:cheapest:0.0035" is 21 characters; anything much longer is not a route.
_MAX_TOKEN = 40
_TOKEN_EXAMPLE = '"auto", "auto:fastest" or "auto:cheapest:0.004" (a price ceiling in USD)'


def is_auto(name: str) -> bool:
    return name == AUTO or name.startswith(AUTO + ":")


class AutoRoute(BaseModel):
    """ "Give me the best ready provider": the cheapest, or the fastest by this app's own runs, at no
    more than `max_cost_usd` a run when given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefer: Preference = "cheapest"
    max_cost_usd: Decimal | None = Field(None, gt=0, le=_MAX_CEILING_USD)

    @classmethod
    def parse(cls, token: str) -> AutoRoute:
        """`auto`, `auto:<cheapest|fastest>` or `auto:<cheapest|fastest>:<USD>`; InvalidRequest in
        words for anything else."""
        parts = token[:_MAX_TOKEN].split(":")
        if (
            len(token) > _MAX_TOKEN
            or parts[0] != AUTO
            or len(parts) > 3
            or (len(parts) > 1 and parts[1] not in _PREFERENCES)
        ):
            raise InvalidRequest(f"{token[:40]!r} is not an automatic route; write {_TOKEN_EXAMPLE}.")
        prefer: Preference = "fastest" if len(parts) > 1 and parts[1] == "fastest" else "cheapest"
        return cls(prefer=prefer, max_cost_usd=parse_ceiling(parts[2]) if len(parts) == 3 else None)

    @property
    def token(self) -> str:
        ceiling = "" if self.max_cost_usd is None else f":{format(self.max_cost_usd.normalize(), 'f')}"
        return f"{AUTO}:{self.prefer}{ceiling}"

    @property
    def label(self) -> str:
        """How the slot is called while no provider has answered: "Auto (cheapest, ≤ $0.004)"."""
        ceiling = "" if self.max_cost_usd is None else f", ≤ ${format(self.max_cost_usd.normalize(), 'f')}"
        return f"Auto ({self.prefer}{ceiling})"


def parse_ceiling(value: object) -> Decimal:
    """A price ceiling from loose input (a CLI flag, a token, JSON); InvalidRequest in words."""
    try:
        usd = Decimal(str(value).strip().removeprefix("$"))
    except InvalidOperation:
        usd = Decimal("NaN")
    if not usd.is_finite() or not 0 < usd <= _MAX_CEILING_USD:
        raise InvalidRequest(
            "The price ceiling must be a number of US dollars above 0, e.g. 0.004 "
            f"(got {str(value)[:20]!r}).",
            field="providers",
        )
    return usd


class RouteAttempt(BaseModel):
    """One provider the route tried (or meant to try), and why it went on or stopped."""

    model_config = ConfigDict(frozen=True)

    provider: str
    label: str
    outcome: AttemptOutcome
    #: What it would have cost by our estimate (None: unknown or not charged).
    estimated_cost_usd: Decimal | None = None
    #: Whether the provider may have billed this attempt (the spend guard settled it so).
    billed: bool = False
    #: The failure's kind (its error class, e.g. "RateLimited") and its words, for failures only.
    failure: str | None = None
    error: str | None = None
    reason: str


class RouteReport(BaseModel):
    """Which provider served an automatic run, what was tried on the way, and why."""

    model_config = ConfigDict(frozen=True)

    prefer: Preference
    max_cost_usd: Decimal | None = None
    #: The ready providers that could honour the request, best first (the route tries the first three).
    candidates: list[str]
    #: Why the first candidate came first, in a sentence.
    chosen_because: str
    tried: list[RouteAttempt] = Field(default_factory=list)
    served_by: str | None = None

    def with_attempt(self, attempt: RouteAttempt) -> RouteReport:
        served = attempt.provider if attempt.outcome == "served" else self.served_by
        return self.model_copy(update={"tried": [*self.tried, attempt], "served_by": served})
