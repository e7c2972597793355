"""What a request would cost at every provider, and whether each can run it: the one price function.

The page's price table, the Generate button, the CLI's `prices`, the MCP `prices` tool and the spend
guard's reservations all read `quote()`. Pure: settings and the request only, no I/O.

    for q in quote(request, settings):
        q.label, q.cost_text, q.readiness, q.problems, q.output_size
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from .errors import ConfigurationError
from .hf_router import choose_route
from .models import GenerationRequest
from .parts import calls_for
from .pricing import PriceRule, format_usd
from .providers import PROVIDERS, Provider
from .settings import Settings

__all__ = [
    "Quote", "Readiness", "approximate", "check_prices", "describe_providers", "price_rows", "quote",
    "quote_one",
]  # fmt: skip

#: "demo": the built-in emulator answers (nothing is billed); "not configured": its variables are unset;
#: "your Hugging Face account": through Hugging Face's router on the person's own credits (hf_router.py).
Readiness = Literal["server key", "your key", "your Hugging Face account", "demo", "not configured"]


@dataclass(frozen=True)
class Quote:
    provider: str
    label: str
    #: The estimate for the request as this provider gets it (None: its price is unknown).
    cost: Decimal | None
    rule: PriceRule | None
    readiness: Readiness
    #: Variables still to set for the server to run it (when not configured).
    missing: tuple[str, ...] = ()
    #: Why it cannot take this request (empty: it can).
    problems: tuple[str, ...] = ()
    nearest_size: tuple[int, int] | None = None
    #: The size it will actually make, and whether that differs from the size asked for.
    output_size: tuple[int, int] = (0, 0)
    resized: bool = False
    seed: bool = True
    steps: bool = True
    #: Controls it does not take, e.g. "does not take steps".
    notes: tuple[str, ...] = ()
    cheapest: bool = False

    @property
    def ready(self) -> bool:
        return self.readiness != "not configured"

    @property
    def usable(self) -> bool:
        return self.ready and not self.problems

    @property
    def approximate(self) -> bool:
        return self.rule is not None and self.rule.approximate

    @property
    def cost_text(self) -> str:
        if self.cost is None:
            return "unknown"
        return ("≈ " if self.approximate else "") + format_usd(self.cost, significant=2)


def quote_one(
    provider: Provider,
    request: GenerationRequest | None,
    settings: Settings,
    *,
    own_key: bool = False,
    hf_account: bool = False,
) -> Quote:
    caps = provider.get_capabilities(settings)
    notes = tuple(
        note
        for note, honoured in (("does not take steps", caps.steps), ("no seed", caps.seed))
        if not honoured
    )
    missing = tuple(provider.missing(settings, with_own_key=own_key))
    if settings.demo_mode:
        readiness: Readiness = "demo"
    elif choose_route(provider, settings, own_key=own_key, hf_account=hf_account) == "hf":
        # The same rule the run follows (runs.run), so the picker says what will happen.
        readiness, missing = "your Hugging Face account", ()
    elif own_key:
        readiness = "your key" if not missing else "not configured"
    else:
        readiness = "server key" if not missing else "not configured"
    if request is None:
        return Quote(
            provider.name, provider.label, None, provider.price_rule(settings), readiness, missing,
            seed=caps.seed, steps=caps.steps, notes=notes,
        )  # fmt: skip
    shaped = provider.shape(request, settings)
    problems: list[str] = []
    nearest = None
    calls = calls_for(shaped.num_images, caps.max_images)
    if len(calls) > 1:  # the backend makes as many calls as it takes (parts.py)
        notes = (f"{len(calls)} calls of {caps.max_images} image{'s' if caps.max_images > 1 else ''}", *notes)
    for problem in caps.problems(shaped.model_copy(update={"num_images": calls[0]})):
        if problem.field in ("width", "height"):
            nearest = caps.nearest_size(request.width, request.height)
        else:
            problems.append(problem.message)
    if nearest is not None:
        problems.insert(
            0, f"size must be {caps.min_size}–{caps.max_size} in multiples of {caps.size_multiple}; "
            f"nearest: {nearest[0]} × {nearest[1]}",
        )  # fmt: skip
    output_size = provider.output_size(shaped, settings)
    resized = output_size != (request.width, request.height)
    if resized and not nearest:
        notes = (f"makes {output_size[0]} × {output_size[1]}", *notes)
    return Quote(
        provider=provider.name,
        label=provider.label,
        cost=provider.estimate(shaped, settings),
        rule=provider.price_rule(settings),
        readiness=readiness,
        missing=missing,
        problems=tuple(problems),
        nearest_size=nearest,
        output_size=output_size,
        resized=resized,
        seed=caps.seed,
        steps=caps.steps,
        notes=notes,
    )


def quote(
    request: GenerationRequest | None,
    settings: Settings,
    *,
    own_keys: Collection[str] = (),
    hf_account: bool = False,
) -> list[Quote]:
    """One quote per registered provider, in registry order; the cheapest usable one is marked.

    `own_keys`: providers the person pasted a key for (they are ready with it, and pay themselves).
    `hf_account`: the person brings a Hugging Face token, so the providers Hugging Face routes that
    nothing else can run are ready on their Hugging Face credits.
    """
    check_prices(settings)
    quotes = [
        quote_one(provider, request, settings, own_key=name in own_keys, hf_account=hf_account)
        for name, provider in PROVIDERS.items()
    ]
    priced = [q.cost for q in quotes if q.usable and q.cost is not None]
    if not priced:
        return quotes
    best = min(priced)
    return [replace(q, cheapest=True) if q.usable and q.cost == best else q for q in quotes]


def price_rows(quotes: Sequence[Quote]) -> list[dict[str, object]]:
    """Quotes as JSON-ready rows (the CLI's `prices --json`, the MCP `prices` tool)."""
    return [
        {
            "provider": q.provider,
            "label": q.label,
            "estimated_cost_usd": None if q.cost is None else float(q.cost),
            "basis": q.rule.describe() if q.rule is not None else "unknown",
            "approximate": q.approximate,
            "source": q.rule.source if q.rule is not None else None,
            "output_size": list(q.output_size),
            "honours": {"seed": q.seed, "steps": q.steps, "size": not q.resized},
            "ready": q.readiness,
            "supports_request": not q.problems,
            "problems": list(q.problems),
            "cheapest": q.cheapest,
        }
        for q in quotes
    ]


def describe_providers(settings: Settings) -> dict[str, dict[str, object]]:
    """What each provider is, needs and takes (the CLI's `providers`, the MCP `providers` tool)."""
    table: dict[str, dict[str, object]] = {}
    for q in quote(None, settings):
        provider = PROVIDERS[q.provider]
        table[q.provider] = {
            "label": provider.label,
            "ready": q.readiness,
            "set": list(q.missing) if q.missing else "nothing more to set",
            "key_env": list(provider.key_env),
            "base_url_env": provider.base_url_env(),
            "options": {o.env[0]: o.help for o in provider.options},
            "docs": provider.docs_url,
            # Where Hugging Face's router reaches it with a Hugging Face token (None: not routed).
            "hugging_face_route": (
                settings.hf_router_base_url + provider.hf_route if provider.hf_route is not None else None
            ),
            "price": q.rule.describe() if q.rule is not None else "unknown",
            **provider.get_capabilities(settings).model_dump(),
        }
    return table


def approximate(provider: str, settings: Settings) -> bool:
    """Whether this provider's estimate is our reading rather than its published figure ("≈")."""
    rule = PROVIDERS[provider].price_rule(settings)
    return rule is not None and rule.approximate


def check_prices(settings: Settings) -> None:
    """FLUX_PLAYGROUND_PRICES may only name registered providers (a typo must not be ignored)."""
    unknown = [name for name in settings.prices if name not in PROVIDERS]
    if unknown:
        raise ConfigurationError(
            f"FLUX_PLAYGROUND_PRICES names unknown provider {unknown[0]!r}; "
            f"use one of {', '.join(PROVIDERS)}."
        )


def total(quotes: Sequence[Quote]) -> Decimal | None:
    """The sum of known costs (None when none is known)."""
    known = [q.cost for q in quotes if q.cost is not None]
    return sum(known, Decimal(0)) if known else None
