"""The page's history: load, search, page, details, reuse, delete. Private to its owner.

Every handler derives the owner from the OAuth profile or the browser id on each call; ids kept in
page state are only hints that History checks against that owner.
"""

# No `from __future__ import annotations`: Gradio evaluates handler annotations (see controls.py).

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from ..history import History, HistoryItem
from ..history_files import download_copy, download_name, download_zip
from ..providers import PROVIDERS
from ..route_models import AUTO
from . import render
from .form import Form
from .identity import Identity, resolve_identity
from .presets import preset_for
from .refusals import refuse
from .updates import ordered

__all__ = [
    "DELETE_OUTPUTS", "DETAIL_OUTPUTS", "HISTORY_OUTPUTS", "PAGE_SIZE", "REUSE_OUTPUTS", "HistoryView",
    "card_outputs", "reopen_outputs", "result_cards",
]  # fmt: skip

PAGE_SIZE = 48

HISTORY_OUTPUTS = ["history", "history_ids", "history_count", "more", "history_empty"]
DETAIL_OUTPUTS = [
    "details", "details_html", "details_image", "download", "selected", "viewer_position", "viewer_prev",
    "viewer_next", "copy_seed", "run_zip",
]  # fmt: skip
#: Descriptive copies of images for downloading (history_files.download_copy).
DOWNLOADS = Path(tempfile.gettempdir()) / "flux-playground-downloads"
DELETE_OUTPUTS = [*HISTORY_OUTPUTS, *DETAIL_OUTPUTS, "undo", "deleted"]


def result_cards() -> list[str]:
    """A result card per registered provider (read when the page is built), and one for the
    automatic route (runs.py's slot "auto": the provider it chose is named in the card)."""
    return [*PROVIDERS, AUTO]


def card_outputs() -> list[str]:
    parts = ("column", "status", "gallery", "caption", "again")
    return [f"{part}:{name}" for name in result_cards() for part in parts]


def reopen_outputs() -> list[str]:
    """The result cards and the empty state: what "Open run" fills (a run reopens under the providers
    that made its images, the automatic card hidden)."""
    return [*card_outputs(), "empty"]


REUSE_OUTPUTS = [
    "prompt", "providers", "preset", "width", "height", "steps", "seed", "random_seed", "num_images",
    "sampler", "scheduler",
]  # fmt: skip


def _download_name(item: HistoryItem) -> str:
    return download_name(
        created_at=item.created_at, provider=item.provider, seed=item.seed, prompt=item.prompt,
        index=item.index,
    )  # fmt: skip


def _ids(form: Form) -> list[str]:
    ids = form.state.get("history_ids")
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def _selected(form: Form) -> str | None:
    selected = form.state.get("selected")
    return selected if isinstance(selected, str) and selected else None


class HistoryView:
    page_size = PAGE_SIZE

    def __init__(self, history: History, *, demo: bool = False, downloads: Path = DOWNLOADS) -> None:
        self.history = history
        self.demo = demo
        self.downloads = downloads

    async def values(self, identity: Identity, form: Form, *, shown: int) -> dict[str, Any]:
        """The newest `shown` items of this owner (one query; "Load more" asks for 48 more)."""
        query, provider = form.query(), form.history_provider()
        items = await self.history.list(identity.owner, query=query, provider=provider, limit=shown)
        total = await self.history.count(identity.owner, query=query, provider=provider)
        everything = await self.history.total(identity.owner) if (query or provider) else total
        return {
            "history": gr.update(
                value=[(str(item.thumb_path), item.provider_label) for item in items],
                visible=bool(items),
            ),
            "history_ids": [item.id for item in items],
            "history_count": render.history_count_html(
                len(items), total, identity.display, everything=everything, query=query
            )
            + render.spent_today_html(await self.history.spent_today(identity.owner), demo=self.demo),
            "more": gr.update(visible=len(items) < total),
            "history_empty": gr.update(
                value=render.empty_history_html(bool(query or provider), query=query), visible=not items
            ),
        }

    async def load(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        """Page load and filter changes: the first page, and a browser id to keep if there was none."""
        identity = resolve_identity(profile, form.browser_id)
        values = await self.values(identity, form, shown=PAGE_SIZE)
        values["browser_id"] = identity.browser_id
        return ordered(["browser_id", *HISTORY_OUTPUTS], values)

    async def load_more(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        identity = resolve_identity(profile, form.browser_id)
        values = await self.values(identity, form, shown=len(_ids(form)) + PAGE_SIZE)
        return ordered(HISTORY_OUTPUTS, values)

    async def _owned(
        self, form: Form, profile: gr.OAuthProfile | None, item_id: str | None
    ) -> HistoryItem | None:
        if not item_id:
            return None
        return await self.history.get(resolve_identity(profile, form.browser_id).owner, item_id)

    async def select(
        self, form: Form, evt: gr.SelectData, profile: gr.OAuthProfile | None = None
    ) -> tuple[Any, ...]:
        index = evt.index if isinstance(evt.index, int) else -1
        return await self._show(form, profile, index)

    async def previous(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        return await self._step(form, profile, -1)

    async def next(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        return await self._step(form, profile, +1)

    async def close(self) -> tuple[Any, ...]:
        return await self.details(None)

    async def _step(self, form: Form, profile: gr.OAuthProfile | None, delta: int) -> tuple[Any, ...]:
        """The neighbour of the image on view among the thumbnails shown (the arrows stop at the ends)."""
        ids, selected = _ids(form), _selected(form)
        if selected not in ids:
            raise refuse("That image is no longer in your history.")
        return await self._show(form, profile, max(0, min(len(ids) - 1, ids.index(selected) + delta)))

    async def _show(self, form: Form, profile: gr.OAuthProfile | None, index: int) -> tuple[Any, ...]:
        ids = _ids(form)
        item = await self._owned(form, profile, ids[index] if 0 <= index < len(ids) else None)
        return await self.details(item, (index, len(ids)))

    async def details(self, item: HistoryItem | None, position: tuple[int, int] = (0, 1)) -> tuple[Any, ...]:
        """The viewer on `item` (hidden for None): large image, every parameter, a descriptive download."""
        if item is None:
            hidden = {
                "details": gr.update(visible=False),
                "selected": None,
                "run_zip": gr.update(visible=False),
            }
            return ordered(DETAIL_OUTPUTS, hidden)
        html = render.details_html(
            prompt=item.prompt, provider_label=item.provider_label, width=item.width,
            height=item.height, steps=item.steps, seed=item.seed, sampler=item.sampler,
            scheduler=item.scheduler, num_images=item.num_images, index=item.index,
            estimated=item.estimated_cost_usd, reported=item.reported_cost_usd,
            latency_s=item.latency_s, created_at=item.created_at,
        )  # fmt: skip
        download = await asyncio.to_thread(
            download_copy, item.image_path, _download_name(item), self.downloads / "images"
        )
        index, shown = position
        return ordered(
            DETAIL_OUTPUTS,
            {
                "details": gr.update(visible=True),
                "details_html": html,
                "details_image": str(item.image_path),
                "download": gr.update(value=str(download)),
                "selected": item.id,
                "viewer_position": render.viewer_position_html(index, shown),
                "viewer_prev": gr.update(interactive=index > 0),
                "viewer_next": gr.update(interactive=index < shown - 1),
                "copy_seed": gr.update(interactive=item.seed is not None),
                "run_zip": gr.update(visible=False),
            },
        )

    async def zip_run(self, form: Form, profile: gr.OAuthProfile | None = None) -> Any:
        """Every image of the selected image's run in one zip, each under its descriptive name."""
        item = await self._owned(form, profile, _selected(form))
        owner = resolve_identity(profile, form.browser_id).owner
        run = await self.history.get_run(owner, item.run_id) if item is not None else None
        if run is None:
            raise refuse("That run is no longer in your history.")
        files = [(i.image_path, _download_name(i)) for i in run.items]
        name = _download_name(run.items[0]).removesuffix(".png") + "-run.zip"
        path = await asyncio.to_thread(download_zip, files, name, self.downloads / "runs")
        count = f"{len(files)} image{'s' if len(files) != 1 else ''}"
        return gr.update(value=str(path), visible=True, label=f"Save run.zip ({count})")

    async def reuse(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        """Every control set to the run's settings: all the providers it went to, its size, steps,
        and its image's fixed seed."""
        item = await self._owned(form, profile, _selected(form))
        if item is None:
            raise refuse("That image is no longer in your history.")
        owner = resolve_identity(profile, form.browser_id).owner
        run = await self.history.get_run(owner, item.run_id)
        providers = [name for name in (run.providers if run else (item.provider,)) if name in PROVIDERS]
        gr.Info("Settings restored. Press Generate to run them again.")
        return ordered(
            REUSE_OUTPUTS,
            {
                "prompt": item.prompt,
                "providers": providers,
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

    async def reopen(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        """The selected image's whole run back in the result cards, as it was shown: every provider
        it went to, its images, seeds and costs."""
        item = await self._owned(form, profile, _selected(form))
        owner = resolve_identity(profile, form.browser_id).owner
        run = await self.history.get_run(owner, item.run_id) if item is not None else None
        if run is None:
            raise refuse("That run is no longer in your history.")
        values: dict[str, Any] = {
            "empty": gr.update(visible=False),
            f"column:{AUTO}": gr.update(visible=False),
        }
        for name, provider in PROVIDERS.items():
            items = [i for i in run.items if i.provider == name]
            shown = name in run.providers or bool(items)
            values[f"column:{name}"] = gr.update(visible=shown)
            values[f"again:{name}"] = gr.update(visible=False)  # "Again" is for the run just made
            values[f"status:{name}"] = render.reopened_status_html(
                provider.label, run.created_at, bool(items)
            )
            values[f"gallery:{name}"] = gr.update(
                value=[(str(i.image_path), None) for i in items] or None,
                visible=bool(items),
                columns=1 if len(items) <= 1 else 2,
            )
            first = items[0] if items else None
            values[f"caption:{name}"] = (
                render.reopened_caption_html(
                    first.seed,
                    first.latency_s,
                    first.estimated_cost_usd,
                    first.reported_cost_usd,
                    f"{len(items)} image{'s' if len(items) != 1 else ''} · {first.width} × {first.height}",
                )  # fmt: skip
                if first is not None
                else ""
            )
        return ordered(reopen_outputs(), values)

    async def delete(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        """Into the trash for `History.undo_seconds`: the Undo button brings it back meanwhile."""
        identity = resolve_identity(profile, form.browser_id)
        selected = _selected(form)
        if selected is None or not await self.history.delete(identity.owner, selected):
            raise refuse("That image is no longer in your history.")
        values = await self.values(identity, form, shown=PAGE_SIZE)
        values |= dict(zip(DETAIL_OUTPUTS, await self.details(None), strict=True))
        values["undo"] = gr.update(visible=True)
        values["deleted"] = selected
        return ordered(DELETE_OUTPUTS, values)

    async def undo(self, form: Form, profile: gr.OAuthProfile | None = None) -> tuple[Any, ...]:
        identity = resolve_identity(profile, form.browser_id)
        deleted = form.state.get("deleted")
        if not isinstance(deleted, str) or not await self.history.restore(identity.owner, deleted):
            raise refuse("Too late to undo: that image is gone for good.")
        values = await self.values(identity, form, shown=max(PAGE_SIZE, len(_ids(form))))
        restored = await self.history.get(identity.owner, deleted)
        ids = values["history_ids"]
        position = (ids.index(deleted), len(ids)) if deleted in ids else (0, 1)
        values |= dict(zip(DETAIL_OUTPUTS, await self.details(restored, position), strict=True))
        values["undo"] = gr.update(visible=False)
        values["deleted"] = None
        return ordered(DELETE_OUTPUTS, values)
