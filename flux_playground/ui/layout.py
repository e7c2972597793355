"""The page: components and their wiring. Logic lives in handlers.py; HTML in render.py."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import gradio as gr

from ..compat.gradio import gallery_payload
from ..errors import PlaygroundError
from ..models import MAX_PROMPT_CHARS
from ..providers import PROVIDERS
from ..route import preview
from ..settings import Settings
from . import render
from .controls import CONTROL_OUTPUTS, pricing_request
from .form import KEY_PREFIX, Form, key_field
from .handlers import Handlers
from .history_view import (
    DELETE_OUTPUTS,
    DETAIL_OUTPUTS,
    HISTORY_OUTPUTS,
    REUSE_OUTPUTS,
    reopen_outputs,
    result_cards,
)
from .identity import BROWSER_SECRET, BROWSER_STORAGE_KEY
from .picker import auto_rows, build_picker, build_select, picker_rows
from .presets import (
    CUSTOM,
    DEFAULT_STEPS,
    IMAGE_LIMITS,
    MAX_SEED,
    PRESETS,
    SIZE_LIMITS,
    SIZE_STEP,
    STEP_LIMITS,
)
from .refusals import refuse

__all__ = ["build_blocks", "default_providers", "elem_id", "field_name"]

#: Form fields whose elem_id is not their own name (the CSS, the browser tests and the test clients
#: find components by elem_id; handlers and tests name values by form field).
_ELEM_IDS = {
    "random_seed": "random-seed",
    "num_images": "num-images",
    "search": "history-search",
    "provider_filter": "history-provider",
}


def elem_id(field: str) -> str:
    """The elem_id of a form field's component ("key:fal" -> "key-fal")."""
    if field.startswith(KEY_PREFIX):
        return "key-" + field.removeprefix(KEY_PREFIX)
    return _ELEM_IDS.get(field, field)


def field_name(element: str) -> str:
    """The form field of a component's elem_id (the inverse of `elem_id`)."""
    if element.startswith("key-"):
        return KEY_PREFIX + element.removeprefix("key-")
    return {v: k for k, v in _ELEM_IDS.items()}.get(element, element)


PROMPT_PLACEHOLDER = "A tiny astronaut hatching from an egg on the moon, soft morning light, 35 mm photo"
EXAMPLES = [
    ("A tiny astronaut hatching from an egg on the moon, soft morning light, 35 mm photo", "Astronaut egg"),
    ("A cat holding a sign that says hello world, studio portrait", "Cat with a sign"),
    ("An anime illustration of a wiener schnitzel on a picnic blanket", "Anime schnitzel"),
    ("Isometric cutaway of a cozy library inside a giant tree, warm lamps, detailed", "Tree library"),
]


def provider_choices() -> list[tuple[str, str]]:
    return [(provider.label, name) for name, provider in PROVIDERS.items()]


_SHOW_DETAILS = (
    "() => document.querySelector('#details')?.scrollIntoView({behavior: 'smooth', block: 'nearest'})"
)


_SHOW_KEYS = (
    "(show) => document.querySelectorAll('.fp-key input')"
    ".forEach((i) => { i.type = show ? 'text' : 'password'; })"
)

# The zip is made on request (a run can be many megabytes); once ready, it is saved at once.
_SAVE_ZIP = "() => setTimeout(() => document.querySelector('#run-zip:not([disabled])')?.click(), 50)"


def default_providers(handlers: Handlers) -> list[str]:
    """Demo mode shows every provider side by side; with real keys only the cheapest ready one is
    preselected, so a first click never bills several accounts."""
    if handlers.playground.settings.demo_mode:
        return list(PROVIDERS)
    request = pricing_request(*PRESETS["1:1"], DEFAULT_STEPS, 1)
    quotes = [q for q in handlers.playground.quote(request) if q.usable]
    cheapest = [q.provider for q in quotes if q.cheapest] or [q.provider for q in quotes]
    return cheapest[:1]


def build_blocks(settings: Settings, handlers: Handlers, *, oauth: bool) -> gr.Blocks:
    # Components by name; the handlers' *_OUTPUTS lists refer to these names.
    ui: dict[str, Any] = {}
    # Every page event takes its values raw (preprocess=False) and checks them itself, so a value a
    # page would never send (a string width, NaN, a huge seed) gets words, not Gradio's bare error.
    private = {"api_visibility": "private", "preprocess": False}
    cheap = {"queue": False, "show_progress": "hidden", **private}

    with gr.Blocks(title="FLUX.1 [schnell] playground", delete_cache=(1800, 6 * 3600)) as demo:
        ui["browser_id"] = gr.BrowserState(None, storage_key=BROWSER_STORAGE_KEY, secret=BROWSER_SECRET)
        ui["run"] = gr.State({})
        ui["history_ids"] = gr.State([])
        ui["selected"] = gr.State(None)
        ui["deleted"] = gr.State(None)  # the id the Undo button can bring back

        with gr.Row(elem_id="topbar", equal_height=True):
            gr.HTML(render.header_html(), elem_id="header")
            if oauth:
                gr.LoginButton(scale=0, min_width=200)
        if settings.demo_mode:
            gr.HTML(render.demo_banner_html(), elem_id="demo-banner")

        with gr.Row(elem_id="main", equal_height=False):
            with gr.Column(scale=5, min_width=340, elem_id="controls"):
                _controls(ui, settings, handlers)
            with gr.Column(scale=7, min_width=340, elem_id="output"):
                _results(ui)
                _history(ui)

        # The public, stateless API: a hidden trigger bound to the visible inputs (no history, no keys).
        ui["api_gallery"] = gr.Gallery(visible=False, format="png", label="Images")
        ui["api_summary"] = gr.JSON(visible=False, label="Summary")
        ui["api_trigger"] = gr.Button(visible=False, elem_id="api-generate")
        ui["api_stats"] = gr.JSON(visible=False, label="Statistics")
        ui["api_stats_trigger"] = gr.Button(visible=False, elem_id="api-stats")
        # Any automatic route is taken ("auto:cheapest:0.004"); the two plain ones are listed in the schema.
        routes = [("Auto: the cheapest ready provider", "auto"), ("Auto: the fastest", "auto:fastest")]
        ui["api_providers"] = gr.CheckboxGroup(
            [*provider_choices(), *routes], visible=False, label="Providers"
        )

        def c(*names: str) -> list[Any]:
            return [ui[name] for name in names]

        form = _FormBinder(ui)
        keys = [key_field(name) for name in PROVIDERS]
        controls, generation, history = handlers.controls, handlers.generation, handlers.history
        priced = ("providers", "width", "height", "steps", "num_images")
        refresh = (*form(controls.update, *priced, *keys), c(*CONTROL_OUTPUTS))
        gr.on(
            # Keys on blur, not per keystroke: a pasted key travels only when it is complete.
            [demo.load, *(ui[name].change for name in priced), *(ui[key].blur for key in keys)],
            *refresh,
            trigger_mode="always_last",
            **cheap,
        )
        ui["nearest"].click(*form(controls.use_nearest, *priced), c("width", "height"), **cheap)
        ui["preset"].input(*form(controls.apply_preset, "preset"), c("width", "height"), **cheap)
        gr.on([ui["width"].input, ui["height"].input], *form(controls.match_preset, "width", "height"),
              c("preset"), **cheap)  # fmt: skip
        size = ("width", "height", "preset")
        ui["swap"].click(*form(controls.swap_size, *size), c(*size), **cheap)
        ui["seed"].input(*form(controls.fixed_seed, "seed"), c("random_seed"), **cheap)

        filters = ("browser_id", "search", "provider_filter")
        run = ui["generate"].click(
            *form(generation.generate, "prompt", "providers", "width", "height", "steps", "seed",
                  "random_seed", "num_images", "sampler", "scheduler", *filters, *keys),
            c(*generation.outputs),
            concurrency_limit=None,  # I/O bound: never serialise people behind each other
            show_progress="hidden",  # each provider column shows its own progress
            **private,
        )  # fmt: skip
        run.then(*refresh, **cheap)  # the Generate button back, with its price, however the run ended
        for card in result_cards():  # each card's provider once more, with the last run's seed
            ui[f"again:{card}"].click(
                *form(generation.again_for(card), "run", *filters, *keys),
                c(*generation.outputs),
                concurrency_limit=None,
                show_progress="hidden",
                **private,
            ).then(*refresh, **cheap)
        # No `cancels=`: the runs end themselves on Stop and draw the stopped cards (ui/stops.py).
        ui["stop"].click(generation.stop, None, None, **cheap)

        queued = {"show_progress": "hidden", "concurrency_limit": None, **private}
        demo.load(*form(history.load, *filters), c("browser_id", *HISTORY_OUTPUTS), **queued)
        gr.on([ui["search"].change, ui["provider_filter"].change], *form(history.load, *filters),
              c("browser_id", *HISTORY_OUTPUTS), trigger_mode="always_last", **queued)  # fmt: skip
        ui["more"].click(*form(history.load_more, *filters, "history_ids"), c(*HISTORY_OUTPUTS), **queued)
        ui["history"].select(
            *form(history.select, "browser_id", "history_ids"), c(*DETAIL_OUTPUTS), **queued
        ).then(None, js=_SHOW_DETAILS)  # found: the details opened below 50 thumbnails, out of sight
        viewing = ("browser_id", "history_ids", "selected")
        ui["viewer_prev"].click(*form(history.previous, *viewing), c(*DETAIL_OUTPUTS), **queued)
        ui["viewer_next"].click(*form(history.next, *viewing), c(*DETAIL_OUTPUTS), **queued)
        ui["viewer_close"].click(history.close, None, c(*DETAIL_OUTPUTS), **queued)
        ui["zip_run"].click(*form(history.zip_run, "browser_id", "selected"), c("run_zip"), **queued).then(
            None, js=_SAVE_ZIP
        )
        ui["reuse"].click(*form(history.reuse, "browser_id", "selected"), c(*REUSE_OUTPUTS), **queued)
        ui["open_run"].click(*form(history.reopen, "browser_id", "selected"), c(*reopen_outputs()), **queued)
        ui["delete"].click(*form(history.delete, *filters, "selected"), c(*DELETE_OUTPUTS), **queued)
        ui["undo"].click(
            *form(history.undo, *filters, "deleted", "history_ids"), c(*DELETE_OUTPUTS), **queued
        )

        ui["api_stats_trigger"].click(
            handlers.api.stats,
            None,
            ui["api_stats"],
            api_name="stats",
            api_visibility="public",
            concurrency_limit=None,  # a read of a small report, cached for 5 s (Playground.stats)
        )
        ui["api_trigger"].click(
            _gallery_as_sent(handlers.api.generate),
            c(
                "prompt",
                "api_providers",
                "width",
                "height",
                "steps",
                "seed",
                "num_images",
                "sampler",
                "scheduler",
            ),
            c("api_gallery", "api_summary"),
            api_name="generate",
            concurrency_limit=None,
            api_visibility="public",
            # Raw JSON straight to the handler, like the page's events: Gradio's own preprocessing
            # answers a string width or a null provider list with a bare TypeError (no message at all).
            preprocess=False,
            # The handler's answer is sent as it is (see _gallery_as_sent): Gradio's postprocessing
            # runs each output in a worker thread, and the gallery's in a new thread pool per call.
            postprocess=False,
        )
    blocks: gr.Blocks = demo
    return blocks


@contextlib.contextmanager
def _in_words() -> Iterator[None]:
    """A PlaygroundError no handler turned into words itself (the shared database out of reach, say)
    reaches the person as its sentence, one line in the log, never a traceback."""
    try:
        yield
    except PlaygroundError as exc:
        raise refuse(exc.message) from None


class _FormBinder:
    """Binds a handler that takes a Form to the named components it reads.

    `form(handler, "prompt", "width")` gives (fn, inputs) for an event: the inputs as a set, so
    Gradio hands over one dict (component -> value), which becomes Form.named({name: value}). The
    wrapper keeps the handler's kind (sync, async, async generator), name and annotations, from which
    Gradio injects gr.Request, gr.OAuthProfile and gr.SelectData.
    """

    def __init__(self, ui: dict[str, Any]) -> None:
        self._ui = ui

    def __call__(self, handler: Callable[..., Any], *names: str) -> tuple[Callable[..., Any], set[Any]]:
        by_id = {id(self._ui[name]): name for name in names}

        def to_form(values: dict[Any, Any]) -> Form:
            return Form.named({by_id[id(component)]: value for component, value in values.items()})

        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(handler):

            async def wrapper(values: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
                with _in_words():
                    async for update in handler(to_form(values), *args, **kwargs):
                        yield update

        elif inspect.iscoroutinefunction(handler):

            async def wrapper(values: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
                with _in_words():
                    return await handler(to_form(values), *args, **kwargs)

        else:

            def wrapper(values: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
                with _in_words():
                    return handler(to_form(values), *args, **kwargs)

        bound = functools.wraps(handler)(wrapper)
        # Gradio names every event after its function, and a page event must never take a name the
        # public API uses ("generate"): page events get names of their own (and lose them after the
        # build: compat/gradio.unname_private_events).
        owner = getattr(handler, "__self__", None)
        if owner is not None:
            bound.__name__ = f"page_{type(owner).__name__.lower()}_{handler.__name__}"
        return bound, {self._ui[name] for name in names}


def _gallery_as_sent(
    generate: Callable[..., Awaitable[tuple[list[tuple[str, str]], dict[str, Any]]]],
) -> Callable[..., Awaitable[tuple[list[dict[str, Any]], dict[str, Any]]]]:
    """The API handler with its gallery already in the form gr.Gallery's postprocess would send
    (compat/gradio.py says why). functools.wraps keeps the name, docstring and signature that the API
    page and the clients are built from."""

    @functools.wraps(generate)
    async def send(*args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        gallery, summary = await generate(*args, **kwargs)
        return gallery_payload(gallery), summary

    return send


def _controls(ui: dict[str, Any], settings: Settings, handlers: Handlers) -> None:
    ui["prompt"] = gr.Textbox(
        label="Prompt",
        lines=3,
        max_lines=10,
        max_length=MAX_PROMPT_CHARS,
        elem_id="prompt",
        placeholder=PROMPT_PLACEHOLDER,
        info="Ctrl + Enter (⌘ + Enter on a Mac) generates.",
    )
    # No fn/outputs: picking an example only fills the prompt, it never runs (or caches) a paid call.
    gr.Examples(
        [[text] for text, _ in EXAMPLES],
        inputs=[ui["prompt"]],
        label="Try an example",
        example_labels=[label for _, label in EXAMPLES],
        cache_examples=False,
        elem_id="examples",
    )
    # Generate right under the prompt, on every screen: its label carries the price of the choice below.
    with gr.Row(elem_id="actions"):
        ui["generate"] = gr.Button("Generate", variant="primary", size="lg", elem_id="generate", scale=4)
        ui["stop"] = gr.Button(
            "Stop", variant="stop", size="lg", elem_id="stop", visible=False, scale=1, min_width=90
        )
    chosen = default_providers(handlers)
    request = pricing_request(*PRESETS["1:1"], DEFAULT_STEPS, 1)
    quotes = handlers.playground.quote(request)
    # The statistics come with the first update (demo.load): building the page reads no database.
    autos = auto_rows(preview(request, quotes, None)) if request is not None else []
    ui["providers"] = build_picker(chosen, picker_rows(quotes), autos)
    # What signing in with Hugging Face gives, on a Space that asks for it (controls.update fills it in).
    ui["hf_note"] = gr.HTML(elem_id="hf-note", visible=settings.hf_sign_in)
    gr.HTML(f'<p class="fp-fine" id="prices-note">{render.PRICES_NOTE}</p>')
    with gr.Group(elem_id="size-group"):
        ui["preset"] = gr.Radio(
            [*PRESETS, CUSTOM],
            value="1:1",
            label="Aspect ratio",
            elem_id="preset",
            container=True,
        )
        with gr.Row(equal_height=True, elem_id="size-row"):
            low, high = SIZE_LIMITS
            ui["width"] = gr.Slider(
                low,
                high,
                value=PRESETS["1:1"][0],
                step=SIZE_STEP,
                precision=0,
                label="Width",
                elem_id="width",
                min_width=180,
                buttons=[],
            )
            ui["height"] = gr.Slider(
                low,
                high,
                value=PRESETS["1:1"][1],
                step=SIZE_STEP,
                precision=0,
                label="Height",
                elem_id="height",
                min_width=180,
                buttons=[],
            )
        with gr.Row(equal_height=True, elem_id="size-info-row"):
            ui["size_info"] = gr.HTML(elem_id="size-info")
            ui["nearest"] = gr.Button(visible=False, size="sm", elem_id="nearest", scale=0, min_width=120)
            ui["swap"] = gr.Button("⇄ Swap", size="sm", elem_id="swap", scale=0, min_width=80)
    with gr.Accordion("Advanced options", open=False, elem_id="advanced"):
        ui["steps"] = gr.Slider(
            *STEP_LIMITS,
            value=DEFAULT_STEPS,
            step=1,
            precision=0,
            label="Steps",
            elem_id="steps",
            info="FLUX.1 [schnell] is distilled for 1–4 steps; more rarely helps.",
        )
        with gr.Row(equal_height=True):
            ui["seed"] = gr.Number(
                -1,
                label="Seed",
                precision=0,
                elem_id="seed",
                # No minimum/maximum here: Gradio's own check answers in its words; ours say what to do.
                info=f"0 to {MAX_SEED}; −1 for a new one each run. Shows the seed of the last run.",
                scale=3,
            )
            ui["random_seed"] = gr.Checkbox(
                True, label="Random seed", elem_id=elem_id("random_seed"), scale=1, min_width=120
            )
        ui["num_images"] = gr.Slider(
            *IMAGE_LIMITS,
            value=1,
            step=1,
            precision=0,
            label="Images per provider",
            elem_id=elem_id("num_images"),
        )
        with gr.Row():
            default = [("Provider default", "")]
            samplers = sorted({s for p in PROVIDERS.values() for s in p.get_capabilities(settings).samplers})
            schedulers = sorted(
                {s for p in PROVIDERS.values() for s in p.get_capabilities(settings).schedulers}
            )
            ui["sampler"] = gr.Dropdown(
                default + [(s, s) for s in samplers], value="", label="Sampler", elem_id="sampler"
            )
            ui["scheduler"] = gr.Dropdown(
                default + [(s, s) for s in schedulers], value="", label="Scheduler", elem_id="scheduler"
            )
    with gr.Accordion("Your API keys", open=False, elem_id="keys"):
        gr.HTML(
            render.keys_note_html(settings.demo_mode, [(p.label, p.docs_url) for p in PROVIDERS.values()])
        )
        for name, provider in PROVIDERS.items():
            ui[key_field(name)] = gr.Textbox(
                label=f"{provider.label} key",
                type="password",
                elem_id=elem_id(key_field(name)),
                placeholder=f"Paste your {provider.label} key",
                max_lines=1,
                autoscroll=False,
                elem_classes=["fp-key"],
            )
        # In the browser only: the keys never travel for this (no server function).
        show = gr.Checkbox(label="Show the keys as I type them", value=False, elem_id="show-keys")
        show.change(None, show, None, js=_SHOW_KEYS)


def _results(ui: dict[str, Any]) -> None:
    ui["empty"] = gr.HTML(render.empty_results_html(), elem_id="results-empty")
    with gr.Row(elem_id="results", equal_height=False):
        for name in result_cards():
            with gr.Column(
                visible=False, elem_id=f"result-{name}", elem_classes=["fp-result"], min_width=220
            ) as column:
                ui[f"column:{name}"] = column
                ui[f"status:{name}"] = gr.HTML(elem_classes=["fp-status"])
                ui[f"gallery:{name}"] = gr.Gallery(
                    visible=False,
                    show_label=False,
                    format="png",
                    type="filepath",
                    columns=1,
                    height="auto",
                    object_fit="contain",
                    interactive=False,
                    elem_classes=["fp-images"],
                    buttons=["download", "fullscreen"],
                    preview=False,
                )
                ui[f"caption:{name}"] = gr.HTML(elem_classes=["fp-status"])
                ui[f"again:{name}"] = gr.Button(
                    "↻ Again, same seed",
                    size="sm",
                    visible=False,
                    elem_id=f"again-{name}",
                    elem_classes=["fp-again"],
                )


def _history(ui: dict[str, Any]) -> None:
    with gr.Column(elem_id="history-section"):
        with gr.Row(equal_height=True, elem_id="history-head"):
            gr.HTML('<h2 class="fp-h2">Your history</h2>', elem_id="history-title")
            ui["history_count"] = gr.HTML(elem_id="history-count")
            ui["undo"] = gr.Button(
                "↶ Undo delete", size="sm", visible=False, elem_id="undo", scale=0, min_width=130
            )
        with gr.Row(equal_height=False, elem_id="history-filters"):
            ui["search"] = gr.Textbox(
                placeholder="Search your prompts",
                show_label=False,
                max_lines=1,
                elem_id=elem_id("search"),
                scale=3,
                container=False,
            )
            ui["provider_filter"] = build_select(
                [("All providers", ""), *provider_choices()],
                "",
                label="Show images from",
                elem_id=elem_id("provider_filter"),
            )
        with gr.Column(visible=False, elem_id="details", variant="panel") as details:
            ui["details"] = details
            # The viewer: ← → and Escape on a keyboard, a swipe on a phone (page.js).
            with gr.Row(equal_height=True, elem_id="viewer-nav"):
                ui["viewer_prev"] = gr.Button(
                    "‹ Previous", size="sm", elem_id="viewer-prev", scale=0, min_width=100
                )
                ui["viewer_position"] = gr.HTML(elem_id="viewer-position")
                ui["viewer_next"] = gr.Button(
                    "Next ›", size="sm", elem_id="viewer-next", scale=0, min_width=80
                )
                ui["viewer_close"] = gr.Button(
                    "✕ Close", size="sm", elem_id="viewer-close", scale=0, min_width=80
                )
            with gr.Row(equal_height=False):
                ui["details_image"] = gr.Image(
                    type="filepath",
                    format="png",
                    interactive=False,
                    show_label=False,
                    min_width=260,
                    buttons=["fullscreen"],
                    elem_id="details-image",
                    height=480,
                    scale=3,
                )
                with gr.Column(scale=2, min_width=240):
                    ui["details_html"] = gr.HTML(elem_id="details-text")
                    with gr.Row(elem_classes=["fp-actions"]):
                        ui["reuse"] = gr.Button(
                            "Reuse settings", variant="primary", size="sm", elem_id="reuse", min_width=110
                        )
                        ui["open_run"] = gr.Button("Open run", size="sm", elem_id="open-run", min_width=100)
                        ui["download"] = gr.DownloadButton(
                            "Download PNG", size="sm", elem_id="download", min_width=110
                        )
                    with gr.Row(elem_classes=["fp-actions"]):
                        # Copied in the browser (page.js): no round trip, nothing sent anywhere.
                        ui["copy_prompt"] = gr.Button(
                            "Copy prompt", size="sm", elem_id="copy-prompt", min_width=100
                        )
                        ui["copy_seed"] = gr.Button("Copy seed", size="sm", elem_id="copy-seed", min_width=90)
                        ui["zip_run"] = gr.Button(
                            "Download run (.zip)", size="sm", elem_id="zip-run", min_width=140
                        )
                        ui["run_zip"] = gr.DownloadButton(
                            "Save run.zip", size="sm", elem_id="run-zip", min_width=120, visible=False
                        )
                        ui["delete"] = gr.Button(
                            "Delete", variant="stop", size="sm", elem_id="delete", min_width=80
                        )
        ui["history_empty"] = gr.HTML(render.empty_history_html(False), elem_id="history-empty")
        ui["history"] = gr.Gallery(
            elem_id="history",
            show_label=False,
            columns=6,
            height="auto",
            object_fit="cover",
            allow_preview=False,
            interactive=False,
            buttons=[],
            visible=False,
            fit_columns=False,
        )
        ui["more"] = gr.Button("Load more", visible=False, size="sm", elem_id="history-more")
