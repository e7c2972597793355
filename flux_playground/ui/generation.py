"""The page's Generate and Stop: one run streamed into the provider columns, saved on arrival."""

# No `from __future__ import annotations`: Gradio evaluates handler annotations (see controls.py).

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
from pydantic import ValidationError

from ..compat.gradio import Stream
from ..errors import PlaygroundError
from ..history import History
from ..models import GenerationRequest, GenerationResult
from ..quotes import approximate
from ..route_models import AUTO, is_auto
from ..runs import RunSnapshot, check_providers, slot_name
from ..service import Playground
from . import render
from .form import Form
from .history_view import HISTORY_OUTPUTS, HistoryView, card_outputs, result_cards
from .identity import Identity, hf_token, resolve_identity, spend_person
from .refusals import failed, refuse
from .scratch import Scratch
from .stops import Stops, until_stopped

__all__ = ["Generation", "generate_outputs"]

log = logging.getLogger(__name__)


def generate_outputs() -> list[str]:
    """The outputs of Generate and Stop: a column per registered provider (read when the page is
    built, so a provider registered before that has its column), then the run's own outputs."""
    return [
        *card_outputs(),
        "empty", "seed", "stop", "run", "browser_id", "generate", *HISTORY_OUTPUTS,
    ]  # fmt: skip


class Generation:
    def __init__(self, playground: Playground, history: History, view: HistoryView, scratch: Scratch) -> None:
        self.playground, self.history, self.view, self.scratch = playground, history, view, scratch
        self.outputs = generate_outputs()
        self.stops = Stops()

    @property
    def _demo(self) -> bool:
        return self.playground.settings.demo_mode

    def _approximate(self, name: str) -> bool:
        return approximate(name, self.playground.settings)

    async def generate(
        self,
        form: Form,
        profile: gr.OAuthProfile | None = None,
        request: gr.Request | None = None,
        token: gr.OAuthToken | None = None,
    ) -> Any:
        """Stream one run into the provider columns, saving each result to history on arrival.

        A signed-in person's Hugging Face token (`token`, from their session) runs the providers Hugging
        Face routes that nothing else can run, on their own credits; it is used for this run only.
        """
        try:
            names = form.chosen()
            wanted = form.request()
        except PlaygroundError as exc:
            raise refuse(exc.message, title="Cannot generate yet") from None
        async for update in self._stream(form, names, wanted, result_cards(), profile, request, token):
            yield update

    def again_for(self, card: str) -> Callable[..., Any]:
        """The handler of a result card's "Again" button: its provider once more, with the last run's
        settings and seed (a new run of its own in the history); the other cards stay as they are."""

        async def again(
            form: Form,
            profile: gr.OAuthProfile | None = None,
            request: gr.Request | None = None,
            token: gr.OAuthToken | None = None,
        ) -> Any:
            last = _last_run(form)
            name = next((n for n in last[1] if slot_name(n) == card), None) if last else None
            if last is None or name is None:
                raise refuse("Nothing to run again here: press Generate first.", title="Cannot run again")
            async for update in self._stream(form, [name], last[0], [card], profile, request, token, last):
                yield update

        again.__name__ = f"page_generation_again_{card}"
        return again

    async def _stream(
        self,
        form: Form,
        names: list[str],
        wanted: GenerationRequest,
        reset: list[str],
        profile: gr.OAuthProfile | None,
        request: gr.Request | None,
        token: gr.OAuthToken | None,
        remember: tuple[GenerationRequest, list[str]] | None = None,
    ) -> Any:
        """One run streamed into the cards in `reset` (cleared first; a card of no chosen provider is
        hidden). The page remembers the run as sent (`remember`, else this one: its seed resolved)
        for the cards' "Again" buttons."""
        identity = resolve_identity(profile, form.browser_id)
        run_id = History.new_run_id()  # one run, however many providers: it reopens as one
        stream = Stream(self.outputs)  # each chunk whole enough to be read late (compat/gradio.py)
        with self.stops.watch(request.session_hash if request is not None else None) as stop:
            try:
                last: RunSnapshot | None = None
                snapshots = self.playground.run(
                    wanted,
                    names,
                    api_keys=form.api_keys([n for n in names if not is_auto(n)]),
                    hf_token=hf_token(token),
                    person=spend_person(profile, request),
                )
                # Closed here, not left to the garbage collector: a closed tab ends the calls now.
                async with contextlib.aclosing(until_stopped(snapshots, stop)) as snaps:
                    async for snap in snaps:
                        values: dict[str, Any] = {}
                        if last is None:
                            values.update(self._start_values(names, reset, snap.request.seed, identity))
                            values["run"] = _run_state(*(remember or (snap.request, names)))
                        last = snap
                        values.update(await self._arrivals(snap, names, run_id, identity, form))
                        if snap.finished:
                            values["stop"] = gr.update(visible=False)
                        yield stream.chunk(values)
                if last is not None and not last.finished:  # Stop: the run's own last word
                    yield stream.chunk(_stopped(last))
            except (gr.Error, asyncio.CancelledError):
                raise
            except PlaygroundError as exc:  # refused before any call: a limit, a cap, a size
                raise refuse(exc.message, title="Not started") from None
            except Exception:
                log.exception("The page's generation failed")
                raise failed() from None

    async def _arrivals(
        self, snap: RunSnapshot, names: list[str], run_id: str, identity: Identity, form: Form
    ) -> dict[str, Any]:
        """The cards of the providers that answered in `snap`, each result saved to history first;
        the waiting cards' progress; the history's first page when anything was saved."""
        values: dict[str, Any] = {}
        saved_any = False
        for name in snap.arrived:
            slot = snap.slots[name]
            values[f"again:{name}"] = gr.update(visible=True)
            if slot.result is None:
                values[f"gallery:{name}"] = gr.update(value=None, visible=False)
                continue
            # The run's providers as named; the automatic slot's as the one it chose.
            named = [n for n in names if not is_auto(n)]
            made_by = [*named, slot.result.provider] if name == AUTO else named
            paths, note = await self._save(identity.owner, slot.result, run_id, made_by)
            saved_any = saved_any or not note
            values[f"status:{name}"] = render.slot_html(slot, snap.now, snap.request)
            values[f"caption:{name}"] = render.caption_html(
                slot.result,
                note,
                approximate=self._approximate(slot.result.provider),
                demo=self._demo,
            ) + (render.route_html(slot.route) if slot.route is not None else "")
            values[f"gallery:{name}"] = gr.update(
                value=[(path, None) for path in paths],
                visible=True,
                columns=1 if len(paths) == 1 else 2,
            )
        for name, slot in snap.slots.items():
            if not slot.finished or (name in snap.arrived and slot.result is None):
                values[f"status:{name}"] = render.slot_html(slot, snap.now, snap.request)
        if saved_any:
            values.update(await self.view.values(identity, form, shown=self.view.page_size))
        return values

    def _start_values(
        self, names: list[str], reset: list[str], seed: int | None, identity: Identity
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "empty": gr.update(visible=False),
            "seed": seed,
            "stop": gr.update(visible=True),
            "browser_id": identity.browser_id,
            # Busy until the run ends; the controls' update then puts the price back (layout.py).
            "generate": gr.update(value="Generating…", interactive=False),
        }
        shown = {slot_name(name) for name in names}
        for name in reset:
            values[f"column:{name}"] = gr.update(visible=name in shown)
            values[f"gallery:{name}"] = gr.update(value=None, visible=False)
            values[f"caption:{name}"] = ""
            values[f"again:{name}"] = gr.update(visible=False)
        return values

    async def _save(
        self, owner: str, result: GenerationResult, run_id: str, providers: list[str]
    ) -> tuple[list[str], str]:
        """Into history before it is shown; if that fails, still show the images (and say so)."""
        try:
            items = await self.history.add(owner, result, run_id=run_id, run_providers=providers)
            return [str(item.image_path) for item in items], ""
        except Exception:
            log.exception("Could not save a %s result to history", result.provider)
            paths = await asyncio.to_thread(self.scratch.write, result)
            return [str(path) for path in paths], "Not saved to your history: the server could not store it."

    def stop(self, request: gr.Request) -> None:
        """The Stop button: this page's runs end at once, each marking what it still waited for as
        stopped in its own last chunk (stops.py says why the run, not this answer, draws that)."""
        self.stops.stop(request.session_hash)


def _stopped(snap: RunSnapshot) -> dict[str, Any]:
    """The last chunk of a stopped run: its waiting cards marked stopped, Stop hidden."""
    values: dict[str, Any] = {"stop": gr.update(visible=False)}
    for name, slot in snap.slots.items():
        if not slot.finished:
            values[f"status:{name}"] = render.stopped_html("Auto" if name == AUTO else slot.label)
    return values


def _run_state(request: GenerationRequest, names: list[str]) -> dict[str, Any]:
    """What the page keeps of the last run for its cards' "Again" buttons: the request as sent, its
    seed resolved, with the providers it went to. A few hundred bytes: the prompt is bounded."""
    return {"request": request.model_dump(mode="json"), "names": names}


def _last_run(form: Form) -> tuple[GenerationRequest, list[str]] | None:
    """The last run kept in the page's state, checked again (page state is only a hint)."""
    run = form.state.get("run")
    if not isinstance(run, dict):
        return None
    try:
        request = GenerationRequest.model_validate(run.get("request"))
        names = check_providers(run.get("names"))
    except (ValidationError, PlaygroundError):
        return None
    return request, names
