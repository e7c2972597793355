"""The controls' own events: prices as the settings change, presets, swap, seed. Unqueued, no I/O.

All are coroutines: they run on the event loop, never in Gradio's worker threads. Anyone can call
them with a fresh session each time; each worker thread that touched their 64 KB bodies kept its own
malloc arena, and RSS under the session attack grew about twice as much (tests/test_hardening.py).

Every method takes the page's Form (form.py) and returns updates in the order of an *_OUTPUTS list.
"""

# No `from __future__ import annotations` here: Gradio calls typing.get_type_hints on the handler
# for every event (helpers.special_args), and string annotations would be evaluated each time.

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import gradio as gr
from pydantic import ValidationError

from ..hf_router import account_providers
from ..models import Capabilities, GenerationRequest
from ..providers import PROVIDERS
from ..quotes import Quote
from ..route import preview
from ..service import Playground
from ..stats import size_class
from . import render
from . import values as raw
from .form import Form
from .identity import hf_token
from .picker import Speed, auto_rows, picker_rows
from .presets import CUSTOM, PRESETS, describe_size, preset_for, swapped_preset
from .updates import ordered

log = logging.getLogger(__name__)

__all__ = ["CONTROL_OUTPUTS", "Controls", "generate_label", "pricing_request"]

CONTROL_OUTPUTS = [
    "providers", "generate", "nearest", "steps", "sampler", "scheduler", "size_info", "num_images", "hf_note",
]  # fmt: skip


def pricing_request(width: int, height: int, steps: object, num_images: object) -> GenerationRequest | None:
    """A request for pricing only (the prompt changes no price). None if out of range."""
    fields = {"prompt": "price", "width": width, "height": height, "steps": steps, "num_images": num_images}
    try:
        return GenerationRequest.model_validate(fields)
    except (ValidationError, TypeError, ValueError):
        return None


def generate_label(quotes: Sequence[Quote], chosen: Sequence[str]) -> str:
    """'Generate · ≈ $0.005' for the chosen providers that can run these settings; every run is an
    estimate until it is billed. Providers that cannot run are not counted, and the label says so."""
    picked = [q for q in quotes if q.provider in chosen]
    if not picked:
        return "Choose a provider"
    usable = [q for q in picked if q.usable]
    if not usable:
        return "None of the chosen providers can run this" if len(picked) > 1 else "It cannot run this"
    known = [q.cost for q in usable if q.cost is not None]
    if not known:
        label = "Generate · price unknown"
    else:
        suffix = " + unknown" if len(known) < len(usable) else ""
        label = f"Generate · ≈ {render.usd(sum(known, Decimal(0)))}{suffix}"
    if len(usable) < len(picked):
        label += f" ({len(usable)} of {len(picked)} can run)"
    return label


def fitting_size(quotes: Sequence[Quote], chosen: Sequence[str]) -> tuple[int, int] | None:
    """The size nearest to the one asked for that every chosen provider refusing it for its size
    accepts (None when no chosen provider is held back by the size, or no size fits them all)."""
    held = [q for q in quotes if q.provider in chosen and q.nearest_size is not None]
    if not held:
        return None
    caps = [PROVIDERS[q.provider].capabilities for q in held]
    size = held[0].nearest_size
    assert size is not None
    for _ in range(3):  # snapping to one provider's grid can move off another's: settle in turns
        for cap in caps:
            size = cap.nearest_size(*size)
    fits = all(cap.sizes == "mapped" or not cap.problems(_sized(size)) for cap in caps)
    return size if fits else None


def _sized(size: tuple[int, int]) -> GenerationRequest:
    return GenerationRequest(prompt="size", width=size[0], height=size[1])


def _nearest_button(size: tuple[int, int] | None) -> Any:
    if size is None:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"Use {size[0]} × {size[1]}")


def _per_call(capabilities: dict[str, Capabilities], names: list[str]) -> str:
    sizes = {capabilities[name].max_images for name in names}
    return "image" if sizes == {1} else "few images"


def _who(names: Sequence[str]) -> str:
    return ", ".join(PROVIDERS[name].label for name in names)


class Controls:
    def __init__(self, playground: Playground) -> None:
        self.playground = playground

    @property
    def settings(self) -> Any:
        return self.playground.settings

    async def update(self, form: Form, token: gr.OAuthToken | None = None) -> tuple[Any, ...]:
        """Prices, the Generate label and which controls the chosen providers honour; with a
        signed-in Hugging Face account (`token`, only checked, never kept), the providers it runs."""
        chosen = [name for name in raw.texts(form.providers) if name in PROVIDERS]
        width, height = form.size()
        request = pricing_request(width, height, form.steps, form.num_images)
        own = [name for name, key in form.key_texts().items() if key]
        signed_in = hf_token(token) is not None
        quotes = self.playground.quote(request, own_keys=own, hf_account=signed_in)
        speeds, autos = await self._evidence(request, quotes)
        # The automatic choices chosen too: the button's price counts what each would pick now.
        picked = [*chosen, *(q.provider for q in autos if q.provider in raw.texts(form.providers))]
        capabilities = {
            name: provider.get_capabilities(self.settings) for name, provider in PROVIDERS.items()
        }
        no_steps = [name for name in chosen if not capabilities[name].steps]
        steps_label = "Steps"
        if no_steps:
            verb = "does" if len(no_steps) == 1 else "do"
            steps_label = f"Steps — {_who(no_steps)} {verb} not take steps"
        # Asked for more than they make per call, they get several calls (parts.py), priced as such.
        wanted = request.num_images if request is not None else 1
        split = [name for name in chosen if capabilities[name].max_images < wanted]
        images_label = "Images per provider"
        if split:
            images_label += f" — {_who(split)}: one call per {_per_call(capabilities, split)}"
        values: dict[str, Any] = {
            "num_images": gr.update(label=images_label),
            "providers": gr.update(rows=picker_rows(quotes, speeds), autos=auto_rows(autos)),
            "generate": gr.update(
                value=generate_label([*quotes, *autos], picked),
                interactive=any(q.usable for q in [*quotes, *autos] if q.provider in picked),
            ),
            "nearest": _nearest_button(fitting_size(quotes, chosen)),
            "steps": gr.update(label=steps_label),
            "size_info": render.size_html(width, height, describe_size(width, height)),
        }
        if self.settings.hf_sign_in:
            labels = [PROVIDERS[name].label for name in account_providers(self.settings)]
            values["hf_note"] = render.hf_note_html(signed_in, labels)
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
        return ordered(CONTROL_OUTPUTS, values)

    async def _evidence(
        self, request: GenerationRequest | None, quotes: list[Quote]
    ) -> tuple[dict[str, Speed], list[Quote]]:
        """Each provider's recent speed at the size it would make, and the automatic choices."""
        if request is None:
            return {}, []
        try:
            figures = await self.playground.stats(fresh=False)
        except Exception as exc:  # no statistics: prices alone, as before
            log.warning("Could not read the provider statistics: %s", exc)
            return {}, preview(request, quotes, None)
        speeds: dict[str, Speed] = {}
        for q in quotes:
            found = figures.get(q.provider, size_class(*q.output_size))
            if found is not None:
                speeds[q.provider] = (found.summary, found.p50_s if found.enough else None)
        return speeds, preview(request, quotes, figures)

    @staticmethod
    async def fixed_seed(form: Form) -> bool:
        """Typing a seed means "use this one": switch random off; typing −1 means random."""
        return raw.number(form.seed, 0) < 0

    @staticmethod
    async def apply_preset(form: Form) -> tuple[Any, Any]:
        if not isinstance(form.preset, str) or form.preset not in PRESETS:
            return gr.skip(), gr.skip()
        return PRESETS[form.preset]

    @staticmethod
    async def match_preset(form: Form) -> str:
        return preset_for(*form.size())

    async def use_nearest(self, form: Form) -> tuple[Any, Any]:
        """The fitting size (see `fitting_size`) into the width and height sliders."""
        chosen = [name for name in raw.texts(form.providers) if name in PROVIDERS]
        width, height = form.size()
        size = fitting_size(self.playground.quote(pricing_request(width, height, 4, 1)), chosen)
        return size if size is not None else (gr.skip(), gr.skip())

    @staticmethod
    async def swap_size(form: Form) -> tuple[Any, Any, str]:
        width, height = form.size()
        preset = form.preset if isinstance(form.preset, str) else CUSTOM
        return height, width, swapped_preset(preset) if preset != CUSTOM else CUSTOM
