"""The web page: `launch_page(settings)` builds and serves it (ui/server.py); `build_page` only builds it.

    page = launch_page(settings, server_port=7860)      # gate, MCP, patches, queue: as app.py runs it
    demo = create_demo(settings)                        # just the Blocks, e.g. for handler tests

Nothing here is module-level mutable state: the Playground (one shared HTTP client), the History
store and the Guard (spend caps and limits, limits.py) are created per page and closed over by its
handlers.
"""

from __future__ import annotations

import gc
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..compat import gradio as gradio_compat
from ..history import History
from ..limits import Guard
from ..service import Playground
from ..settings import Settings
from .handlers import Handlers
from .layout import build_blocks
from .server import QUEUE_SIZE, RunningPage, launch_page, prepare_process
from .theme import LAUNCH_KWARGS

__all__ = [
    "LAUNCH_KWARGS",
    "QUEUE_SIZE",
    "Page",
    "RunningPage",
    "allowed_paths",
    "build_page",
    "create_demo",
    "freeze_startup_heap",
    "launch_page",
    "oauth_enabled",
    "prepare_process",
]


@dataclass(frozen=True)
class Page:
    demo: gr.Blocks
    #: The backend objects the page runs on (the MCP tools run on the same ones).
    backend: Handlers


def build_page(
    settings: Settings,
    *,
    playground: Playground | None = None,
    history: History | None = None,
    guard: Guard | None = None,
    oauth: bool | None = None,
) -> Page:
    """The page on top of `settings`. `oauth` defaults to whether the Space has OAuth on
    (OAUTH_CLIENT_ID set); the login button breaks without it, so it is only shown then."""
    handlers = Handlers.create(
        playground or Playground(settings, guard=guard or Guard(settings)),
        history or History(settings.data_dir, database_url=settings.database_url),
    )
    demo = build_blocks(settings, handlers, oauth=oauth_enabled() if oauth is None else oauth)
    gradio_compat.unname_private_events(demo)
    handlers.api.forget_session = lambda session: gradio_compat.forget_session(demo, session)
    return Page(demo, handlers)


def create_demo(settings: Settings, **parts: object) -> gr.Blocks:
    """Just the Blocks of `build_page` (see there)."""
    return build_page(settings, **parts).demo  # type: ignore[arg-type]


def oauth_enabled() -> bool:
    """Spaces with `hf_oauth: true` get OAUTH_CLIENT_ID; elsewhere gr.LoginButton would need a local
    HF login, so the page stays anonymous (a per-browser id)."""
    return bool(os.environ.get("OAUTH_CLIENT_ID"))


def allowed_paths(settings: Settings) -> list[str]:
    """Gradio only hands out files from the working directory, the temp directory or allowed paths.
    When the data directory is elsewhere (e.g. a mounted bucket), allow its images folder, never
    the database next to it."""
    images = (settings.data_dir / "images").resolve()
    for root in (Path.cwd(), Path(tempfile.gettempdir())):
        if images.is_relative_to(root.resolve()):
            return []
    return [str(images)]


def freeze_startup_heap() -> int:
    """Exempt everything built so far from the garbage collector's full passes; call after launch.

    Gradio, FastAPI, pydantic's schemas and the page make about 200 000 objects that live as long as
    the process. Python's full (generation 2) collection walks all of them, and all that joined them
    since, each time it runs, which it does every few hundred API calls: 130–230 ms pauses of the one
    event loop in the middle of a burst (bench/NOTES.md). Frozen objects are skipped; new ones are
    collected as before. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
