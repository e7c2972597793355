"""The web page: `create_demo(settings)` builds it, `LAUNCH_KWARGS` is how it is launched.

    demo = create_demo(settings)
    demo.queue(max_size=QUEUE_SIZE).launch(mcp_server=True, allowed_paths=allowed_paths(settings),
                                          **LAUNCH_KWARGS)

Nothing here is module-level mutable state: the Playground (one shared HTTP client), the History
store and the Guard (spend caps and limits, limits.py) are created per demo and closed over by its
handlers.
"""

from __future__ import annotations

import gc
import os
import secrets
import tempfile
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from ..history import History
from ..limits import Guard
from ..service import Playground
from ..settings import Settings
from . import gradio_sessions
from .handlers import Handlers
from .layout import build_blocks
from .theme import LAUNCH_KWARGS

__all__ = [
    "LAUNCH_KWARGS",
    "QUEUE_SIZE",
    "allowed_paths",
    "create_demo",
    "freeze_startup_heap",
    "oauth_enabled",
]

#: People waiting beyond this get "Queue is full" at once rather than a very long wait.
QUEUE_SIZE = 256


def create_demo(
    settings: Settings,
    *,
    playground: Playground | None = None,
    history: History | None = None,
    guard: Guard | None = None,
    oauth: bool | None = None,
) -> gr.Blocks:
    """The page on top of `settings`. `oauth` defaults to whether the Space has OAuth on
    (OAUTH_CLIENT_ID set); the login button breaks without it, so it is only shown then."""
    gradio_sessions.install()  # every API call and page load makes a session: keep that cheap
    handlers = Handlers(
        settings,
        playground or Playground(settings),
        history or History(settings.data_dir),
        # Created on first use (only the API and a failed history write need it). Inside Gradio's
        # file cache, so Gradio serves these files as they are instead of hashing and copying each
        # one into the cache on the event loop.
        Path(get_upload_folder()) / f"flux-playground-{secrets.token_hex(8)}",
        guard or Guard(settings),
    )
    return build_blocks(settings, handlers, oauth=oauth_enabled() if oauth is None else oauth)


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
    """Exempt everything built so far from the garbage collector's full passes; call after launch().

    Gradio, FastAPI, pydantic's schemas and the page make about 200 000 objects that live as long as
    the process. Python's full (generation 2) collection walks all of them, and all that joined them
    since, each time it runs, which it does every few hundred API calls: 130–230 ms pauses of the one
    event loop in the middle of a burst (bench/NOTES.md). Frozen objects are skipped; new ones are
    collected as before. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
