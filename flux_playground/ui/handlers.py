"""The page's event handlers: plain async methods over one Playground and one History.

Each handler returns plain values or Gradio updates in the order of an *_OUTPUTS list, so the
layout binds them without wrappers and tests call them directly, without a browser. Every history
handler derives the owner from the OAuth profile or the browser id on each call; ids kept in page
state are only hints that History checks against that owner.
"""

# No `from __future__ import annotations` here: Gradio calls typing.get_type_hints on the handler
# for every event (helpers.special_args), and string annotations would be evaluated each time.

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import SecretStr

from ..errors import InvalidRequest, PlaygroundError
from ..history import History, HistoryItem
from ..limits import Guard
from ..models import GenerationResult
from ..providers import PROVIDERS
from ..service import Playground
from ..settings import Settings
from . import render
from . import values as raw
from .identity import Identity, resolve_identity
from .presets import CUSTOM, IMAGE_LIMITS, PRESETS, describe_size, preset_for, swapped_preset
from .prices import generate_label, price_rows, pricing_request
from .runner import GENERIC_ERROR, build_request, check_providers, image_seed, run_generation, summarize

__all__ = [
    "CONTROL_OUTPUTS",
    "DETAIL_OUTPUTS",
    "GENERATE_OUTPUTS",
    "HISTORY_OUTPUTS",
    "PAGE_SIZE",
    "REUSE_OUTPUTS",
    "Handlers",
    "provider_choices",
]

log = logging.getLogger(__name__)

PAGE_SIZE = 48
#: What an API key can look like: printable ASCII without spaces (it goes into an HTTP header).
_KEY_TEXT = re.compile(r"[\x21-\x7e]{1,512}")
#: Files the public API hands out are kept this long, then removed on a later call.
SCRATCH_MAX_AGE_S = 3600.0
SCRATCH_PRUNE_EVERY_S = 300.0

HISTORY_OUTPUTS = ["history", "history_ids", "history_count", "more", "history_empty"]
GENERATE_OUTPUTS = [
    *(f"{part}:{name}" for name in PROVIDERS for part in ("column", "status", "gallery", "caption")),
    "empty", "seed", "stop", "run", "browser_id", *HISTORY_OUTPUTS,
]
CONTROL_OUTPUTS = ["prices", "generate", "steps", "sampler", "scheduler", "size_info", "num_images"]
DETAIL_OUTPUTS = ["details", "details_html", "details_image", "download", "selected"]
REUSE_OUTPUTS = [
    "prompt", "providers", "preset", "width", "height", "steps", "seed", "random_seed", "num_images",
    "sampler", "scheduler",
]


def refuse(message: str, *, title: str | None = None) -> gr.Error:
    """An expected refusal (bad input, a limit, a cap): shown to the person, one line in the log.

    Gradio prints a whole traceback for every gr.Error unless told not to; a public Space refuses
    many calls, and one attacker made 295 refusals into 295 tracebacks (docs/reliability.md).
    """
    log.info("Refused: %s", message)
    return gr.Error(message, title=title or "Error", print_exception=False)


def failed() -> gr.Error:
    """Our own code failed: the caller's log.exception has the details, the person gets words."""
    return gr.Error(GENERIC_ERROR, print_exception=False)


def provider_choices() -> list[tuple[str, str]]:
    return [(provider.label, name) for name, provider in PROVIDERS.items()]


def _ordered(names: Sequence[str], values: dict[str, Any]) -> tuple[Any, ...]:
    """Values in output order; anything not given is left as it is on the page."""
    return tuple(values[name] if name in values else gr.skip() for name in names)


def _who(names: Sequence[str]) -> str:
    return ", ".join(PROVIDERS[name].label for name in names)


class Handlers:
    def __init__(
        self,
        settings: Settings,
        playground: Playground,
        history: History,
        scratch: Path,
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self.playground = playground
        self.history = history
        #: Spend caps, rates, sizes and duplicate clicks: every generation passes it (limits.py).
        self.guard = guard or Guard(settings)
        #: Set by the layout: drops the server-side session Gradio made for one stateless API call.
        self.forget_session: Callable[[str], None] | None = None
        #: Where images of the stateless API (and of a failed history write) are written.
        self.scratch = scratch
        self._scratch_pruned_at = -SCRATCH_PRUNE_EVERY_S

    # --- controls (private, unqueued, no I/O) --------------------------------------------------

    def update_controls(
        self, providers: object, width: object, height: object, steps: object, num_images: object,
        *keys: object,
    ) -> tuple[Any, ...]:
        """Prices, the Generate label and which controls the chosen providers honour."""
        chosen = [name for name in raw.texts(providers) if name in PROVIDERS]
        width, height = raw.number(width, 1024), raw.number(height, 1024)
        request = pricing_request(width, height, raw.number(steps, 0), raw.number(num_images, 0))
        rows = price_rows(self.settings, request, chosen, self._key_texts(keys))
        capabilities = {name: PROVIDERS[name].get_capabilities(self.settings) for name in PROVIDERS}
        no_steps = [name for name in chosen if not capabilities[name].steps]
        steps_label = "Steps"
        if no_steps:
            verb = "does" if len(no_steps) == 1 else "do"
            steps_label = f"Steps — {_who(no_steps)} {verb} not take steps"
        capped = [name for name in chosen if capabilities[name].max_images < IMAGE_LIMITS[1]]
        images_label = "Images per provider"
        if capped:
            limits = ", ".join(f"{PROVIDERS[n].label} {capabilities[n].max_images}" for n in capped)
            images_label += f" — at most: {limits}"
        values: dict[str, Any] = {
            "num_images": gr.update(label=images_label),
            "prices": render.prices_html(rows),
            "generate": gr.update(value=generate_label(rows)),
            "steps": gr.update(label=steps_label),
            "size_info": self.size_info(width, height),
        }
        for control, attr in (("sampler", "samplers"), ("scheduler", "schedulers")):
            having = [name for name in PROVIDERS if getattr(capabilities[name], attr)]
            usable = [name for name in chosen if name in having]
            ignored = [name for name in chosen if name not in having]
            info = f"Sent to {_who(usable)} only; not to {_who(ignored)}." if usable and ignored else None
            if not usable:
                info = f"Choose {_who(having)} to use it." if having else "No provider takes it."
            values[control] = gr.update(
                label=f"{control.capitalize()} — {_who(having) or 'no provider'} only",
                interactive=bool(usable),
                info=info,
            )
        return _ordered(CONTROL_OUTPUTS, values)

    @staticmethod
    def size_info(width: int, height: int) -> str:
        return render.size_html(width, height, describe_size(width, height))

    @staticmethod
    def fixed_seed() -> bool:
        """Typing a seed means "use this one": switch random off."""
        return False

    @staticmethod
    def apply_preset(preset: object) -> tuple[Any, Any]:
        if not isinstance(preset, str) or preset not in PRESETS:
            return gr.skip(), gr.skip()
        return PRESETS[preset]

    @staticmethod
    def match_preset(width: object, height: object) -> str:
        return preset_for(raw.number(width, 0), raw.number(height, 0))

    @staticmethod
    def swap_size(width: object, height: object, preset: object) -> tuple[Any, Any, str]:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (width, height)):
            return gr.skip(), gr.skip(), CUSTOM
        preset = raw.text(preset)
        return height, width, swapped_preset(preset) if preset != CUSTOM else CUSTOM

    def _key_texts(self, keys: Sequence[object]) -> dict[str, str]:
        return {name: raw.text(key, limit=512).strip() for name, key in zip(PROVIDERS, keys, strict=False)}

    def _api_keys(self, keys: Sequence[object]) -> dict[str, SecretStr | None]:
        """Pasted keys, checked (InvalidRequest names the box) and wrapped at once, so a key never
        shows in a repr, a log line or a traceback."""
        found: dict[str, SecretStr | None] = {}
        for name, key in self._key_texts(keys).items():
            if key and not _KEY_TEXT.fullmatch(key):
                raise InvalidRequest(
                    f"The {PROVIDERS[name].label} key you pasted is not valid: a key is letters, digits "
                    "and a few symbols, with no spaces or accents. Copy it again from the provider.",
                    field=f"key:{name}",
                )
            found[name] = SecretStr(key) if key else None
        return found

    # --- generation (the page) -----------------------------------------------------------------

    async def generate_page(
        self,
        profile: gr.OAuthProfile | None,
        request: gr.Request | None,
        prompt: str,
        providers: list[str] | None,
        width: float,
        height: float,
        steps: float,
        seed: float | None,
        random_seed: bool,
        num_images: float,
        sampler: str | None,
        scheduler: str | None,
        browser_id: str | None,
        query: str,
        provider_filter: str | None,
        *keys: str | None,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream one run into the provider columns, saving each result to history on arrival."""
        try:
            names = check_providers(providers)
            wanted = build_request(
                prompt, width, height, steps, None if random_seed else seed, num_images, sampler, scheduler
            )
            api_keys = self._api_keys(keys)
        except PlaygroundError as exc:
            raise refuse(exc.message, title="Cannot generate yet") from None
        identity = resolve_identity(profile, browser_id)
        try:
            first = True
            async for snap in run_generation(
                self.playground, wanted, names, api_keys=api_keys, guard=self.guard,
                person=spend_person(profile, request),
            ):
                values: dict[str, Any] = {}
                if first:
                    first = False
                    values.update(self._start_values(names, snap.request.seed, identity))
                saved_any = False
                for name in snap.arrived:
                    slot = snap.slots[name]
                    if slot.result is None:
                        values[f"gallery:{name}"] = gr.update(value=None, visible=False)
                        continue
                    paths, note = await self._save(identity.owner, slot.result)
                    saved_any = saved_any or not note
                    values[f"status:{name}"] = render.slot_html(slot, snap.now, snap.request)
                    values[f"caption:{name}"] = render.caption_html(slot.result, note)
                    values[f"gallery:{name}"] = gr.update(
                        value=[(path, None) for path in paths],
                        visible=True,
                        columns=1 if len(paths) == 1 else 2,
                    )
                for name, slot in snap.slots.items():
                    if not slot.finished or (name in snap.arrived and slot.result is None):
                        values[f"status:{name}"] = render.slot_html(slot, snap.now, snap.request)
                if saved_any:
                    values.update(await self._history_values(identity, query, provider_filter, PAGE_SIZE))
                pending = [name for name, slot in snap.slots.items() if not slot.finished]
                values["run"] = {"pending": pending}
                if snap.finished:
                    values["stop"] = gr.update(visible=False)
                yield _ordered(GENERATE_OUTPUTS, values)
        except (gr.Error, asyncio.CancelledError):
            raise
        except PlaygroundError as exc:  # refused before any call: a limit, a cap, a size
            raise refuse(exc.message, title="Not started") from None
        except Exception:
            log.exception("The page's generation failed")
            raise failed() from None

    def _start_values(self, names: list[str], seed: int | None, identity: Identity) -> dict[str, Any]:
        values: dict[str, Any] = {
            "empty": gr.update(visible=False),
            "seed": seed,
            "stop": gr.update(visible=True),
            "browser_id": identity.browser_id,
        }
        for name in PROVIDERS:
            values[f"column:{name}"] = gr.update(visible=name in names)
            values[f"gallery:{name}"] = gr.update(value=None, visible=False)
            values[f"caption:{name}"] = ""
        return values

    async def _save(self, owner: str, result: GenerationResult) -> tuple[list[str], str]:
        """Into history before it is shown; if that fails, still show the images (and say so)."""
        try:
            items = await self.history.add(owner, result)
            return [str(item.image_path) for item in items], ""
        except Exception:
            log.exception("Could not save a %s result to history", result.provider)
            paths = await asyncio.to_thread(self.write_scratch, result)
            return [str(path) for path in paths], "Not saved to your history: the server could not store it."

    @staticmethod
    def stop(run: dict[str, Any] | None) -> tuple[Any, ...]:
        """Runs alongside the cancellation: mark the providers still being waited for as stopped."""
        pending = (run or {}).get("pending") or []
        values: dict[str, Any] = {"stop": gr.update(visible=False), "run": {"pending": []}}
        for name in pending:
            if name in PROVIDERS:
                values[f"status:{name}"] = render.stopped_html(PROVIDERS[name].label)
        return _ordered(GENERATE_OUTPUTS, values)

    # --- generation (the public, stateless API) ------------------------------------------------

    async def generate(
        self,
        prompt: str,
        providers: list[str],
        width: int = 1024,
        height: int = 1024,
        steps: int = 4,
        seed: int | None = None,
        num_images: int = 1,
        sampler: str | None = None,
        scheduler: str | None = None,
        profile: gr.OAuthProfile | None = None,
        request: gr.Request | None = None,
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """Generate images with FLUX.1 [schnell] at one or more hosted providers at once.

        Every provider gets the same prompt and seed; the result lists each provider's images with
        captions, and a summary with the seed, cost and latency per provider (or its error).

        Args:
            prompt: What the image should show.
            providers: Provider names to run at, e.g. ["deepinfra", "segmind"]; all run concurrently.
            width: Image width in pixels (multiples of 16 work everywhere).
            height: Image height in pixels (multiples of 16 work everywhere).
            steps: Denoising steps, 1 to 4 suits FLUX.1 [schnell]; Atlas Cloud does not take steps.
            seed: Seed for reproducible images; None or -1 for a random one (the seed used is returned).
            num_images: Images per provider, 1 to 4.
            sampler: Sampler name, only for providers that take one (Segmind); empty for the default.
            scheduler: Scheduler name, only for providers that take one (Segmind); empty for the default.

        Returns:
            Every image captioned with provider, seed, latency and cost; a JSON summary per provider.
        """
        try:
            fields = (prompt, providers, width, height, steps, seed, num_images, sampler, scheduler)
            return await self._generate(*fields, profile, request)
        finally:
            # Gradio 6.31 builds a session for each /gradio_api/call request and keeps up to 10 000 of
            # them (each a copy of every component's config, ~170 KB, before gradio_sessions.py made
            # them lazy; still a few KB): memory grew with every API call.
            # This endpoint keeps nothing between calls, so its session goes once the call is answered
            # (Gradio has already fetched the object it uses to render the answer).
            session = getattr(request, "session_hash", None)
            if self.forget_session is not None and isinstance(session, str):
                self.forget_session(session)

    async def _generate(
        self,
        prompt: str,
        providers: list[str],
        width: int,
        height: int,
        steps: int,
        seed: int | None,
        num_images: int,
        sampler: str | None,
        scheduler: str | None,
        profile: gr.OAuthProfile | None,
        request: gr.Request | None,
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        try:
            names = check_providers(providers)
            wanted = build_request(prompt, width, height, steps, seed, num_images, sampler, scheduler)
        except PlaygroundError as exc:
            raise refuse(exc.message) from None
        try:
            last = None
            async for snap in run_generation(
                self.playground, wanted, names, guard=self.guard, person=spend_person(profile, request)
            ):
                last = snap
            assert last is not None
            files: dict[str, list[str]] = {}
            gallery: list[tuple[str, str]] = []
            for name, slot in last.slots.items():
                if slot.result is not None:
                    paths = await asyncio.to_thread(self.write_scratch, slot.result)
                    files[name] = [str(path) for path in paths]
                    caption = render.image_caption(slot.result, image_seed(slot.result))
                    gallery += [(str(path), caption) for path in paths]
            summary = summarize(last, files)
        except PlaygroundError as exc:  # refused before any call: a limit, a cap, a size
            raise refuse(exc.message) from None
        except Exception:
            log.exception("The API's generation failed")
            raise failed() from None
        if not gallery:
            errors = "; ".join(str(e["error"]) for e in summary["providers"].values())
            raise refuse(f"No provider produced an image. {errors}")
        return gallery, summary

    def write_scratch(self, result: GenerationResult) -> list[Path]:
        """PNGs (metadata intact) under the scratch folder, pruning files older than an hour."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        now = time.monotonic()
        # Listing the folder on every call made N simultaneous calls O(N²) file stats; every few
        # minutes is enough for a one-hour age.
        if now - self._scratch_pruned_at >= SCRATCH_PRUNE_EVERY_S:
            self._scratch_pruned_at = now
            cutoff = time.time() - SCRATCH_MAX_AGE_S
            for old in self.scratch.glob("*.png"):
                with contextlib.suppress(FileNotFoundError):
                    if old.stat().st_mtime < cutoff:
                        old.unlink()
        paths = []
        for index, image in enumerate(result.images):
            seed = image.seed if image.seed is not None else result.request.seed
            path = self.scratch / f"flux-{result.provider}-{seed}-{index + 1}-{secrets.token_hex(6)}.png"
            path.write_bytes(image.png)
            paths.append(path)
        return paths

    # --- history ---------------------------------------------------------------------------------

    async def _history_values(
        self, identity: Identity, query: object, provider_filter: object, shown: int
    ) -> dict[str, Any]:
        """The newest `shown` items of this owner (one query; "Load more" asks for 48 more)."""
        provider = raw.text(provider_filter) or None
        provider = provider if provider in PROVIDERS else None
        query = raw.text(query, limit=200).strip()
        items = await self.history.list(identity.owner, query=query, provider=provider, limit=shown)
        total = await self.history.count(identity.owner, query=query, provider=provider)
        return {
            "history": gr.update(
                value=[(str(item.thumb_path), item.provider_label) for item in items],
                visible=bool(items),
            ),
            "history_ids": [item.id for item in items],
            "history_count": render.history_count_html(len(items), total, identity.display),
            "more": gr.update(visible=len(items) < total),
            "history_empty": gr.update(
                value=render.empty_history_html(bool(query or provider)), visible=not items
            ),
        }

    async def load_history(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, query: str,
        provider_filter: str | None,
    ) -> tuple[Any, ...]:
        """Page load and filter changes: the first page, and a browser id to keep if there was none."""
        identity = resolve_identity(profile, browser_id)
        values = await self._history_values(identity, query, provider_filter, PAGE_SIZE)
        values["browser_id"] = identity.browser_id
        return _ordered(["browser_id", *HISTORY_OUTPUTS], values)

    async def load_more(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, query: str,
        provider_filter: str | None, history_ids: list[str] | None,
    ) -> tuple[Any, ...]:
        identity = resolve_identity(profile, browser_id)
        shown = len(history_ids or []) + PAGE_SIZE
        values = await self._history_values(identity, query, provider_filter, shown)
        return _ordered(HISTORY_OUTPUTS, values)

    async def _owned(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, item_id: str | None
    ) -> HistoryItem | None:
        if not isinstance(item_id, str) or not item_id:
            return None
        return await self.history.get(resolve_identity(profile, browser_id).owner, item_id)

    async def select_item(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, history_ids: list[str] | None,
        evt: gr.SelectData,
    ) -> tuple[Any, ...]:
        ids = history_ids or []
        index = evt.index if isinstance(evt.index, int) else -1
        item = await self._owned(profile, browser_id, ids[index] if 0 <= index < len(ids) else None)
        return self.details_values(item)

    @staticmethod
    def details_values(item: HistoryItem | None) -> tuple[Any, ...]:
        if item is None:
            return _ordered(DETAIL_OUTPUTS, {"details": gr.update(visible=False), "selected": None})
        html = render.details_html(
            prompt=item.prompt, provider_label=item.provider_label, width=item.width,
            height=item.height, steps=item.steps, seed=item.seed, sampler=item.sampler,
            scheduler=item.scheduler, num_images=item.num_images, index=item.index,
            estimated=item.estimated_cost_usd, reported=item.reported_cost_usd,
            latency_s=item.latency_s, created_at=item.created_at,
        )
        return _ordered(
            DETAIL_OUTPUTS,
            {
                "details": gr.update(visible=True),
                "details_html": html,
                "details_image": str(item.image_path),
                "download": gr.update(value=str(item.image_path)),
                "selected": item.id,
            },
        )

    async def reuse(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, selected: str | None
    ) -> tuple[Any, ...]:
        """Every control set to the item's settings: its provider, size, steps, and its fixed seed."""
        item = await self._owned(profile, browser_id, selected)
        if item is None:
            raise refuse("That image is no longer in your history.")
        gr.Info("Settings restored. Press Generate to run them again.")
        return _ordered(
            REUSE_OUTPUTS,
            {
                "prompt": item.prompt,
                "providers": [item.provider],
                "preset": preset_for(item.width, item.height),
                "width": item.width,
                "height": item.height,
                "steps": item.steps,
                "seed": item.seed if item.seed is not None else -1,
                "random_seed": item.seed is None,
                "num_images": item.num_images,
                "sampler": item.sampler or "",
                "scheduler": item.scheduler or "",
            },
        )

    async def delete(
        self, profile: gr.OAuthProfile | None, browser_id: str | None, selected: str | None,
        query: str, provider_filter: str | None,
    ) -> tuple[Any, ...]:
        identity = resolve_identity(profile, browser_id)
        deleted = isinstance(selected, str) and bool(selected) and await self.history.delete(
            identity.owner, selected
        )
        if not deleted:
            raise refuse("That image is no longer in your history.")
        gr.Info("Deleted from your history.")
        values = await self._history_values(identity, query, provider_filter, PAGE_SIZE)
        values |= dict(zip(DETAIL_OUTPUTS, self.details_values(None), strict=True))
        return _ordered([*HISTORY_OUTPUTS, *DETAIL_OUTPUTS], values)


def spend_person(profile: gr.OAuthProfile | None, request: gr.Request | None) -> str:
    """Who a run is counted against for rates, duplicate clicks and the per-person spend cap.

    The signed-in Hugging Face user, else the client's address as uvicorn reports it. Never the
    browser id: the browser chooses that one, so a fresh id per request would escape every limit.
    On Spaces the address is the proxy's unless uvicorn trusts it (FORWARDED_ALLOW_IPS), so all
    anonymous visitors may share one "ip:" person there; see docs/reliability.md.
    """
    username = getattr(profile, "username", None) if profile is not None else None
    if isinstance(username, str) and username.strip():
        return f"hf:{username}"
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"ip:{host}" if isinstance(host, str) and host else "ip:unknown"

