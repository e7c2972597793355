"""Gradio 6.31: what the page changes in Gradio, and the internals the page reads. UI layer only.

Installed by `install()` from app.py's start-up (and the tests' fixtures), never as a side effect of
building the page. Each item names why; `EXPECTED` fingerprints every internal involved.

1. **Lean sessions** (`LeanSessionState`). Gradio 6.31 keeps, in every session, the config of every
   block (about 9 ms of CPU to build for this page, on the one event loop) and a copy of every value
   any event received or returned: three 5 MB strings in the key boxes of 60 price-control calls,
   each with a fresh session id, kept 897 MB until the process ended (docs/reliability.md). Only
   deep links (`/gradio_api/deep_link`, which wrote that state, pasted keys included, to a file
   anyone could fetch) ever read those copies, and the page has no deep links: the gate closes the
   route and a session here keeps only what Gradio needs to run events (gr.State values and blocks
   an event replaced).
2. **Bounded sessions** (`drop_idle_sessions`, `SESSION_CAPACITY`). Gradio drops a session only when
   10 000 newer ones exist. Sessions with no open page (no heartbeat) idle for a while are dropped,
   and at most SESSION_CAPACITY are kept.
3. **A hardened server** (`harden_server`). Gradio builds uvicorn's Config itself with no way to pass
   options. Its server gets the guarded protocol (compat/uvicorn.py: request deadlines, connection
   bounds) and `proxy_headers=False`: uvicorn would otherwise take the client's address from any
   X-Forwarded-For sent over loopback, letting a caller choose who it is; the gate decides instead.
4. **Reading the page** (`events`, `has_pending_session`, `unname_private_events`, `forget_session`,
   `gallery_payload`): what the gate and the API need to know of Gradio's events, queue and sessions.
5. **Streamed updates that stay put** (`Stream`). After the first chunk of a generator's event,
   Gradio sends each output as a diff against its previous chunk (`Blocks.handle_streaming_diffs`,
   `utils.diff`), and the page's client applies the diff *in place* to the object it handed the page
   for that earlier chunk, while the page may not have read that chunk yet (its reader awaits between
   outputs, and each message is handled in a `setTimeout`). An update such as "show the Again button"
   followed by a chunk that leaves the button alone (`gr.skip()`, a diff deleting `visible`) could
   therefore be erased before the page applied it: the failed card without its button, seen in a
   browser test under load. A `Stream` repeats every update of the event, unchanged, in each later
   chunk until it is replaced, so no diff deletes what an unread chunk says. Plain values (a seed, an
   HTML string) are replaced whole by the client, never edited in place, and are not repeated (that
   would undo what a person types in the seed box during a run).
"""

from __future__ import annotations

import datetime
import logging
import types
from collections.abc import Collection, Iterable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.http_server as http_server
import gradio.state_holder as state_holder
import uvicorn
from gradio.components.gallery import GalleryImage
from gradio.data_classes import ImageData

from . import Expectation, require
from .uvicorn import ConnectionLimits, guarded_protocol

__all__ = [
    "EXPECTED",
    "SESSION_CAPACITY",
    "EventInfo",
    "LeanSessionState",
    "Stream",
    "drop_idle_sessions",
    "events",
    "forget_session",
    "gallery_payload",
    "harden_server",
    "has_pending_session",
    "install",
    "unname_private_events",
]

log = logging.getLogger(__name__)

EXPECTED = Expectation(
    package="gradio",
    version="6.31.0",
    why="lean sessions, a hardened server, and the gate's knowledge of the page's routes and events",
    sources={
        # LeanSessionState mirrors these; the gate allows only routes create_app defines as today.
        # Gradio's own class, also once LeanSessionState has replaced it in gradio.state_holder.
        "flux_playground.compat.gradio:GRADIO_SESSION_STATE": "cf7fe46100804541",
        "gradio.state_holder:StateHolder": "7a180698da5191bc",
        "gradio.blocks:Blocks.preprocess_data": "6848b88bd303f76f",
        "gradio.http_server:start_server": "266da769f01a8100",
        "gradio.routes:App.create_app": "24a2d31a4bdacb3c",
        "gradio.block_function:BlockFunction.__init__": "62022979700845b0",
        "gradio.queueing:Queue.__init__": "8f39a4352e7ca36a",
        "gradio.components.gallery:GalleryImage": "24b698467dad1052",
        # Stream: the diffs of a generator's chunks (the client applies them in place; see item 5).
        "gradio.blocks:Blocks.handle_streaming_diffs": "6023f1a42fe834a4",
        "gradio.utils:diff": "06eace6b99ed23a3",
        "gradio.blocks:postprocess_update_dict": "8c520acb2fce46b3",
    },
)

#: Gradio's SessionState, kept before install() replaces it.
GRADIO_SESSION_STATE = state_holder.SessionState

#: Sessions kept at most (Gradio's default is 10 000); the least recently used go first. A session
#: keeps no values it was sent, only the components this page's events updated: about 40 KB of heap
#: with nine providers, so about 40 MB in all (tests/test_hardening.py measures it under attack).
SESSION_CAPACITY = 1000


def install(limits: ConnectionLimits) -> None:
    """Apply every patch here (again: only the limits change). Raises IncompatibleDependency on
    another Gradio (see compat/)."""
    require(EXPECTED)
    state_holder.SessionState = LeanSessionState  # type: ignore[misc]
    harden_server(limits)


# --- 1. lean sessions ------------------------------------------------------------------------------


class _Nothing(dict[int, dict[str, Any]]):
    """A session's `config_values` that never holds anything (only deep links read it)."""

    def __setitem__(self, key: int, value: dict[str, Any]) -> None:
        pass


class _NoBlocks:
    """Just enough of a Blocks for SessionState.__init__: a config with no blocks."""

    class _Config:
        blocks: dict[int, Any] = {}

        def __copy__(self) -> _NoBlocks._Config:
            return self

    default_config = _Config()
    blocks: dict[int, Any] = {}


_NO_BLOCKS = _NoBlocks()


class LeanSessionState(GRADIO_SESSION_STATE):
    """Gradio's SessionState without the per-session copies of configs and values (see above)."""

    def __init__(self, blocks: gr.Blocks) -> None:
        # Gradio's own __init__ sets every attribute (TTLs, state dicts) over no blocks at all...
        super().__init__(_NO_BLOCKS)  # type: ignore[arg-type]
        # ...then the session gets the page's blocks, as Gradio does; no configs.
        self.blocks_config = copy(blocks.default_config)
        self.config_values = _Nothing()

    def __setitem__(self, key: int, value: Any) -> None:
        # Gradio's __setitem__, less the config it rebuilds on every write. The updated copy of a
        # block is kept: Gradio builds each update's answer from it (a button made visible showed
        # nothing without it).
        block = self.blocks_config.blocks.get(key)
        if isinstance(block, gr.State):
            self._state_ttl[key] = (block.time_to_live, datetime.datetime.now())
            self.state_data[key] = value
        else:
            self.blocks_config.blocks[key] = value

    def _update_config(self, key: int) -> None:
        pass

    def _update_value_in_config(self, key: int, value: Any) -> None:
        pass


# --- 2. bounded sessions ---------------------------------------------------------------------------


def drop_idle_sessions(demo: gr.Blocks, *, idle_s: float, keep: Collection[str]) -> int:
    """Drop sessions unused for `idle_s` seconds, except those in `keep` (pages still open).

    Returns how many were dropped. A dropped page session that comes back starts afresh (its
    gr.State values are defaults again); history and everything else lives outside Gradio.
    """
    holder = demo.state_holder
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=idle_s)
    with holder.lock:
        stale = [s for s, used in holder.time_last_used.items() if used < cutoff and s not in keep]
        for session in stale:
            holder.session_data.pop(session, None)
            holder.time_last_used.pop(session, None)
    return len(stale)


def forget_session(demo: gr.Blocks, session: str) -> None:
    """Drop one session at once (the stateless API's: it never needs it again)."""
    holder = demo.state_holder
    with holder.lock:
        holder.session_data.pop(session, None)
        holder.time_last_used.pop(session, None)


# --- 3. a hardened server --------------------------------------------------------------------------


class _HardenedUvicorn(types.ModuleType):
    """What gradio.http_server sees as `uvicorn`: the real module, with a Config that adds our limits."""

    def __init__(self, limits: ConnectionLimits) -> None:
        super().__init__("uvicorn")
        self._limits = limits

    def __getattr__(self, name: str) -> Any:
        return getattr(uvicorn, name)

    def Config(self, *args: Any, **kwargs: Any) -> uvicorn.Config:  # noqa: N802 (uvicorn's name)
        kwargs.update(
            http=guarded_protocol(self._limits),
            proxy_headers=False,
            limit_concurrency=None,  # the guarded protocol closes what is over; 503s would queue up
            timeout_keep_alive=5,
            timeout_graceful_shutdown=3,
        )
        return uvicorn.Config(*args, **kwargs)


def harden_server(limits: ConnectionLimits) -> None:
    http_server.uvicorn = _HardenedUvicorn(limits)  # type: ignore[attr-defined]


# --- 4. reading the page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventInfo:
    """One of the page's events as the gate needs to know it."""

    fn_index: int
    inputs: int
    queued: bool
    api_name: str | None
    public: bool


def events(demo: gr.Blocks) -> dict[int, EventInfo]:
    return {
        index: EventInfo(
            fn_index=index,
            inputs=len(fn.inputs),
            queued=bool(fn.queue),
            api_name=fn.api_name if isinstance(fn.api_name, str) else None,
            public=fn.api_visibility == "public",
        )
        for index, fn in demo.fns.items()
    }


def unname_private_events(demo: gr.Blocks) -> None:
    """Gradio 6.31 still routes `/gradio_api/call/<name>` to events marked private; without a name
    those routes cannot find them (the page calls its events by index, which is unaffected)."""
    for fn in demo.fns.values():
        if fn.api_visibility == "private":
            fn.api_name = None


def has_pending_session(demo: gr.Blocks, session_hash: str) -> bool:
    """Whether the queue has messages waiting for this session (else its stream has nothing to
    send: Gradio answers "session not found" and then logs an ASGI exception per such request)."""
    return session_hash in demo._queue.pending_messages_per_session


def gallery_payload(items: Iterable[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """What gr.Gallery's postprocess makes of (PNG path, caption) pairs, made without it.

    Gallery.postprocess starts a thread pool for every call, even for one image; under a burst of
    API calls those threads fought the event loop for the GIL (bench/NOTES.md).
    """
    return [
        GalleryImage(
            image=ImageData(path=path, orig_name=Path(path).name, mime_type="image/png"), caption=caption
        ).model_dump()
        for path, caption in items
    ]


class Stream:
    """The chunks of one generator event, each whole enough to be read late (item 5).

    `chunk(values)` lines up one yield's values (by output name) like `ordered`, adding every update
    (a `gr.update` dict) given earlier in the event that this yield does not replace. Each chunk gets
    its own copy of an update: Gradio's postprocessing takes `value` out of the dict it is handed
    (`postprocess_update_dict`), so a dict sent twice would arrive the second time without its value.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self._updates: dict[str, dict[str, Any]] = {}

    def chunk(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        for name, value in values.items():
            if isinstance(value, dict):
                self._updates[name] = dict(value)
            else:
                self._updates.pop(name, None)
        given = {**values, **{name: dict(update) for name, update in self._updates.items()}}
        return tuple(given[name] if name in given else gr.skip() for name in self.names)


def launch_kwargs() -> Mapping[str, Any]:
    """What every launch of the page passes for the patches above to hold."""
    return {"state_session_capacity": SESSION_CAPACITY}
