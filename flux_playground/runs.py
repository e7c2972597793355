"""A run: one request at one or more providers at once. The one path behind the page, the API, MCP,
the CLI and the library (`Playground.run`).

    async for snapshot in playground.run(request, ["atlascloud", "segmind"], person="ip:1.2.3.4"):
        snapshot.slots["segmind"].stage, snapshot.arrived, snapshot.finished

Before any provider is called the run passes the spend guard (limits.py): size, duplicate click,
request rate and the spend caps, with the request as the person sent it (seed unresolved, so two
clicks on "random" are the same request). Only providers billed to the server's keys are charged:
not in demo mode (the emulator bills nothing), not when the person pasted their own key, and not
through Hugging Face's router with their Hugging Face token (hf_router.py: their account pays). Then
the same request, with one resolved seed, shaped for each provider (Provider.shape), goes to every
provider at once; each provider's share of the spend is settled as its outcome arrives: the reported
cost (else the estimate) for a result, the estimate for a failure the provider may have billed,
nothing for one it did not. A snapshot is yielded whenever something happens, and at least every
`tick` seconds while waiting. Cancelling the iteration (Stop, a closed tab) cancels every call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from .errors import InvalidRequest, LimitExceeded, PlaygroundError
from .hf_router import Via, provider_for, routes_for
from .models import MAX_SEED, GenerationRequest, GenerationResult, Stage, parse_request
from .providers import PROVIDERS
from .route import Plan, follow, plan_route
from .route_models import AUTO, AutoRoute, RouteReport, is_auto
from .stats import outcome_row

if TYPE_CHECKING:
    from .limits import Admission
    from .service import Playground

__all__ = [
    "AUTO",
    "GENERIC_ERROR",
    "STAGE_WORDS",
    "Outcome",
    "ProgressEvent",
    "RunSnapshot",
    "Slot",
    "build_request",
    "check_providers",
    "image_seed",
    "resolve_seed",
    "run",
    "slot_name",
    "summarize",
]

log = logging.getLogger(__name__)

#: What a person sees when our own code failed; the details go to the log only.
GENERIC_ERROR = (
    "Something went wrong on our side. Please try again; if it keeps happening, tell the Space's owner."
)

STAGE_WORDS: dict[str, str] = {
    "queued": "Queued",
    "submitting": "Sending",
    "generating": "Generating",
    "downloading": "Downloading",
    "saving": "Saving",
    "done": "Done",
    "failed": "Failed",
}


@dataclass(frozen=True)
class ProgressEvent:
    provider: str
    stage: Stage
    detail: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One provider's answer in a run: a result or a person-readable error."""

    provider: str
    result: GenerationResult | None = None
    error: PlaygroundError | None = None
    #: For the automatic slot: what the route tried, and which provider served it.
    route: RouteReport | None = None


@dataclass
class Slot:
    """One provider's part of a run."""

    provider: str
    label: str
    started: float
    #: "hf" when it runs through Hugging Face's router (hf_router.py), else "direct".
    via: Via = "direct"
    stage: str = "queued"
    detail: str | None = None
    ended: float | None = None
    result: GenerationResult | None = None
    error: str | None = None
    failure: PlaygroundError | None = field(default=None, repr=False)
    #: The automatic slot's route: its plan, then what it tried (route.py).
    route: RouteReport | None = None

    @property
    def finished(self) -> bool:
        return self.ended is not None

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def status(self, now: float) -> str:
        """'Generating · 1.5 s' (with the provider's own detail, e.g. a queue position, if any)."""
        words = STAGE_WORDS.get(self.stage, self.stage.capitalize())
        if self.detail and self.stage not in ("failed", "done"):
            words += f" ({self.detail})"
        return f"{words} · {self.elapsed(now):.1f} s"


@dataclass
class RunSnapshot:
    request: GenerationRequest
    slots: dict[str, Slot]
    #: Providers whose outcome arrived since the previous snapshot, in arrival order.
    arrived: list[str] = field(default_factory=list)
    now: float = 0.0

    @property
    def finished(self) -> bool:
        return all(slot.finished for slot in self.slots.values())


def resolve_seed(request: GenerationRequest) -> GenerationRequest:
    """Fill in a random seed now, so the seed used is always known and every provider gets the same."""
    if request.seed is not None:
        return request
    return request.model_copy(update={"seed": secrets.randbelow(MAX_SEED + 1)})


# --- loose input to a request ------------------------------------------------------------------------


def build_request(
    prompt: object, width: object, height: object, steps: object, seed: object, num_images: object,
    sampler: object, scheduler: object,
) -> GenerationRequest:  # fmt: skip
    """Form or API values to a request; a seed of None or below 0 means random. Raises InvalidRequest
    with every problem in words, whatever JSON came in."""
    fields: dict[str, object] = {
        "prompt": "" if prompt is None else prompt,
        "width": _whole(width),
        "height": _whole(height),
        "steps": _whole(steps),
        "seed": None if seed is None or _negative(seed) else _whole(seed),
        "num_images": _whole(num_images),
        "sampler": sampler or None,
        "scheduler": scheduler or None,
    }
    return parse_request(fields)


def _whole(value: object) -> object:
    # Sliders and Number send floats; an integral float becomes an int so pydantic accepts it.
    # Anything else (a string, NaN, a list, a bool) is passed through and refused with words.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _negative(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value < 0


def check_providers(providers: object) -> list[str]:
    """The chosen provider names, deduplicated, or InvalidRequest saying what to send instead. One
    of them may be an automatic route: "auto", "auto:fastest", "auto:cheapest:0.004" (route.py)."""
    if isinstance(providers, str):
        providers = [providers]
    if providers is not None and not (
        isinstance(providers, list | tuple) and all(isinstance(name, str) for name in providers)
    ):
        raise InvalidRequest(
            f'Providers must be a list of provider names, e.g. ["deepinfra"]; choose from: '
            f"{', '.join(PROVIDERS)}, or auto.",
            field="providers",
        )
    names = list(dict.fromkeys(providers or []))
    if not names:
        raise InvalidRequest("Choose at least one provider.", field="providers")
    unknown = [name for name in names if name not in PROVIDERS and not is_auto(name)]
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:3]) + (", …" if len(unknown) > 3 else "")
        raise InvalidRequest(
            f"Unknown provider {shown}. Choose from: {', '.join(PROVIDERS)}, or auto (the best ready one).",
            field="providers",
        )
    routes = [name for name in names if is_auto(name)]
    if len(routes) > 1:
        raise InvalidRequest('Ask for one automatic route per run, e.g. ["auto:fastest"].', field="providers")
    for name in routes:
        AutoRoute.parse(name)  # words for a malformed one, before anything runs
    return names


def slot_name(name: str) -> str:
    """The slot a chosen name runs in: its own, or "auto" for any automatic route."""
    return AUTO if is_auto(name) else name


# --- the run -------------------------------------------------------------------------------------------


def charges_for(
    playground: Playground,
    request: GenerationRequest,
    providers: Sequence[str],
    api_keys: Mapping[str, SecretStr | None],
    routes: Mapping[str, Via] | None = None,
) -> dict[str, Decimal | None]:
    """The estimated cost at each provider that bills the owner's key (None: price unknown).

    Left out: everything in demo mode (the emulator bills nothing), providers the person pasted a
    key for or runs through Hugging Face with their own token (they pay), and providers the server
    cannot run or that cannot take these settings (they fail before any call, unbilled).
    """
    settings = playground.settings
    if settings.demo_mode:
        return {}
    charges: dict[str, Decimal | None] = {}
    for name in providers:
        own = api_keys.get(name)
        provider = PROVIDERS[name]
        if (routes or {}).get(name) == "hf":
            continue
        if (own is not None and own.get_secret_value().strip()) or not provider.configured(settings):
            continue
        shaped = provider.shape(request, settings)
        if provider.get_capabilities(settings).problems(shaped):
            continue  # refused before any call, unbilled
        charges[name] = provider.estimate(shaped, settings)
    return charges


async def run(
    playground: Playground,
    request: GenerationRequest,
    providers: Sequence[str],
    *,
    person: str,
    api_keys: Mapping[str, SecretStr | None] | None = None,
    hf_token: SecretStr | None = None,
    via: Via | None = None,
    tick: float | None = 0.5,
) -> AsyncGenerator[RunSnapshot, None]:
    """Run `request` at every provider concurrently; yield snapshots until all have answered.

    `hf_token` is the person's Hugging Face token; `via` says where it is used: "hf" sends every
    provider through Hugging Face's router, "direct" none, None lets each provider run there only if
    nothing else can run it (hf_router.routes_for). The token goes to no other provider.

    LimitExceeded or InvalidRequest is raised before the first snapshot, and before any provider is
    called. `tick=None`: a snapshot only when something happened (callers that want the end only).
    An automatic route ("auto…" among `providers`) runs in the slot "auto": route.py chooses its
    providers, and it goes on to the next only after a failure that billed nothing.
    """
    names = check_providers(list(providers))
    keys = dict(api_keys or {})
    named = [name for name in names if not is_auto(name)]
    routes = routes_for(playground.settings, named, keys, hf_token, via)
    # The key each provider gets: the Hugging Face token where it runs through the router.
    keys = {**keys, **{name: hf_token if routes[name] == "hf" else keys.get(name) for name in named}}
    plan = await _plan(playground, request, names, keys)
    async with AsyncExitStack() as stack:
        charges = charges_for(
            playground, request, [*named, *plan.candidates[:1]] if plan else named, keys, routes
        )
        # As sent (seed unresolved): two clicks on "random" are recognised as one request.
        admission = await stack.enter_async_context(playground.guard.admit(person, request, names, charges))
        request = resolve_seed(request)  # once, so every provider gets the same seed
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        slots = {
            slot_name(name): Slot(AUTO, plan.route.label, started, route=plan.report)
            if plan is not None and is_auto(name)
            else Slot(name, provider_for(name, routes[name]).label, started, routes[name])
            for name in names
        }
        events: asyncio.Queue[ProgressEvent | Outcome] = asyncio.Queue()

        def on_progress(event: ProgressEvent) -> None:
            # Safe from any thread; today every call comes from the event loop.
            loop.call_soon_threadsafe(events.put_nowait, event)

        async def settle(outcome: Outcome) -> None:
            if outcome.provider not in charges:
                return
            if outcome.result is not None:
                cost = outcome.result.reported_cost_usd
                if cost is None:
                    cost = outcome.result.estimated_cost_usd
                await asyncio.to_thread(admission.settle, outcome.provider, cost=cost, billed=True)
            elif outcome.error is not None:
                estimate, billed = charges[outcome.provider], outcome.error.billed
                await asyncio.to_thread(admission.settle, outcome.provider, cost=estimate, billed=billed)

        async def attempt(name: str, progress: Callable[[ProgressEvent], None]) -> Outcome:
            """One provider's call, its spend settled and its outcome recorded for the statistics."""
            try:
                result = await playground.call(
                    # An automatic route's providers run directly (route.py chooses among those ready).
                    request,
                    name,
                    api_key=keys.get(name),
                    on_progress=progress,
                    via=routes.get(name, "direct"),
                )
                outcome = Outcome(name, result=result)
            except PlaygroundError as exc:
                outcome = Outcome(name, error=exc)
            except Exception:
                # A bug in one provider's path fails only its slot. Unknown whether it was billed:
                # left unsettled, the reservation keeps the estimate (and a route stops here).
                log.exception("Unexpected failure while generating with %s", name)
                crashed = PlaygroundError(GENERIC_ERROR)
                crashed.billed = True
                _record(playground, name, request, Outcome(name, error=crashed), keys)
                return Outcome(name, error=crashed)
            _record(playground, name, request, outcome, keys)
            try:
                await settle(outcome)
            except Exception:  # the ledger failing must not lose the image; the estimate stays
                log.exception("Could not settle the spend of %s", name)
            return outcome

        async def one(name: str) -> None:
            events.put_nowait(await attempt(name, on_progress))

        async def auto(plan: Plan) -> None:
            """The automatic slot: route.py tries the plan's providers in turn through `attempt`."""

            async def try_one(name: str, label: str) -> Outcome:
                return await attempt(name, _relabelled(on_progress, label))

            async def reserve(name: str) -> str | None:
                extra = charges_for(playground, request, [name], keys)
                why = await _reserve(admission, extra)
                if why is None:
                    charges.update(extra)
                return why

            def announce(text: str) -> None:
                on_progress(ProgressEvent(AUTO, "submitting", text))

            result, error, report = await follow(plan, try_one, reserve, announce)
            events.put_nowait(Outcome(AUTO, result=result, error=error, route=report))

        tasks = [asyncio.create_task(one(name)) for name in named]
        if plan is not None:
            tasks.append(asyncio.create_task(auto(plan)))
        # One pending get() kept across ticks: cancelling a get() on timeout could drop an event.
        getter: asyncio.Task[ProgressEvent | Outcome] | None = None
        try:
            yield RunSnapshot(request, _copy(slots), now=time.monotonic())
            while not all(slot.finished for slot in slots.values()):
                getter = getter or asyncio.create_task(events.get())
                done, _ = await asyncio.wait({getter}, timeout=tick)  # no event: yield anyway (ticks)
                batch: list[ProgressEvent | Outcome] = []
                if done:
                    batch.append(getter.result())
                    getter = None
                while not events.empty():
                    batch.append(events.get_nowait())
                now = time.monotonic()
                arrived = [name for name in (_apply(slots, item, now) for item in batch) if name]
                yield RunSnapshot(request, _copy(slots), arrived, now)
        finally:
            for task in [*tasks, *([getter] if getter else [])]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _plan(
    playground: Playground,
    request: GenerationRequest,
    names: Sequence[str],
    keys: Mapping[str, SecretStr | None],
) -> Plan | None:
    """The automatic route's plan, if one was asked for (InvalidRequest when no provider qualifies)."""
    token = next((name for name in names if is_auto(name)), None)
    if token is None:
        return None
    own = [name for name, key in keys.items() if key is not None and key.get_secret_value().strip()]
    named = [name for name in names if not is_auto(name)]
    return await plan_route(playground, request, AutoRoute.parse(token), exclude=named, own_keys=own)


async def _reserve(admission: Admission, extra: Mapping[str, Decimal | None]) -> str | None:
    """Reserve a route's next provider; None when done, else why it may not be tried."""
    try:
        for name, cost in extra.items():
            await asyncio.to_thread(admission.reserve, name, cost)
    except LimitExceeded as exc:
        return f"the spend limits stop it there: {exc.message}"
    except Exception:
        log.exception("Could not reserve the spend of a route's next provider")
        return "the spend ledger could not be checked."
    return None


def _relabelled(progress: Callable[[ProgressEvent], None], label: str) -> Callable[[ProgressEvent], None]:
    """A provider's progress, shown in the automatic slot with the provider's name."""

    def report(event: ProgressEvent) -> None:
        detail = f"{label}: {event.detail}" if event.detail else label
        progress(ProgressEvent(AUTO, event.stage, detail))

    return report


def _record(
    playground: Playground,
    name: str,
    request: GenerationRequest,
    outcome: Outcome,
    keys: Mapping[str, SecretStr | None],
) -> None:
    """Hand the outcome to the statistics (evidence.py); whatever goes wrong there, the run goes on."""
    try:
        key = keys.get(name)
        own_key = key is not None and bool(key.get_secret_value().strip())
        row = outcome_row(
            PROVIDERS[name], request, playground.settings, result=outcome.result, error=outcome.error,
            own_key=own_key,
        )  # fmt: skip
        if row is not None:
            playground.evidence.submit(row)
    except Exception as exc:
        log.warning("Could not record a %s run for the statistics: %s", name, exc)


def _copy(slots: dict[str, Slot]) -> dict[str, Slot]:
    # Snapshots are immutable views: later events must not change one already handed out.
    return {name: replace(slot) for name, slot in slots.items()}


def _apply(slots: dict[str, Slot], item: ProgressEvent | Outcome, now: float) -> str | None:
    """Fold one event into the slots; returns the provider's name when its outcome arrived."""
    slot = slots.get(item.provider)
    if slot is None or slot.finished:
        return None
    if isinstance(item, ProgressEvent):
        slot.stage, slot.detail = item.stage, item.detail
        return None
    slot.ended = now
    slot.route = item.route or slot.route
    if item.result is not None:
        slot.stage, slot.result = "done", item.result
    else:
        slot.stage = "failed"
        slot.failure = item.error
        slot.error = item.error.message if item.error is not None else GENERIC_ERROR
    return slot.provider


# --- a run as JSON (API, MCP, CLI) ---------------------------------------------------------------------


def image_seed(result: GenerationResult) -> int | None:
    """The seed the images were made with: the provider's own report, else the one we sent if the
    provider honours seeds (service.py decides), else None: no claim the image can be made again."""
    return result.images[0].seed if result.images else None


def summarize(snapshot: RunSnapshot, files: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A run as JSON: per provider its seed, cost, latency and files, or why it failed. `files` are
    where each provider's PNGs can be fetched."""
    providers: dict[str, Any] = {}
    for name, slot in snapshot.slots.items():
        entry: dict[str, Any] = {"label": slot.label, "via": slot.via, "ok": slot.result is not None}
        if slot.result is not None:
            result = slot.result
            entry |= {
                "seed": image_seed(result),
                "images": len(result.images),
                "files": list(files.get(name, [])),
                "latency_s": round(result.latency_s, 3),
                "estimated_cost_usd": _money(result.estimated_cost_usd),
                "reported_cost_usd": _money(result.reported_cost_usd),
                "error": None,
                # Some of its calls failed (parts.py): which images are missing, and why.
                "shortfall": result.shortfall,
            }
        else:
            entry["error"] = slot.error
        if slot.route is not None:
            # Which provider served the automatic slot (None: none did), what it tried and why.
            entry["provider"] = slot.result.provider if slot.result is not None else None
            entry["route"] = slot.route.model_dump(mode="json")
        providers[name] = entry
    return {"seed": snapshot.request.seed, "providers": providers}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")
