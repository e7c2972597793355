"""Gradio's per-session state, made cheap to create (a performance fix for Gradio 6.31).

Every call to the API (`POST /gradio_api/call/generate`, gradio_client, MCP) and every page load
gets a new session, and Gradio 6.31 builds its `SessionState` eagerly: the full config of every block
on the page (`config_for_block`, with `inspect.signature` of each constructor and the API schema of
each component), about 9 ms of CPU for this page's 85 blocks, on the server's one event loop. Nearly
all of it is thrown away: a call reads the config of its own inputs and outputs, and only a deep link
(`/gradio_api/deep_link`) reads all of it. At N = 200 simultaneous API calls that was the largest
item in the server's profile (bench/NOTES.md).

`LazySessionState` keeps Gradio's behaviour and computes a block's config the first time something
asks for it. Installed by `install()` only on the Gradio version it was written against (the
attributes it relies on are checked too); on any other version Gradio's own class stays, which is
slower but correct. tests/ui/test_gradio_sessions.py pins the behaviour (per-key laziness, deep
links, state) so an upgrade that breaks it fails a test instead of a user.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from copy import copy
from typing import TYPE_CHECKING, Any

import gradio as gr
import gradio.state_holder as state_holder

if TYPE_CHECKING:
    from gradio.blocks import BlocksConfig

__all__ = ["LazySessionState", "install"]

log = logging.getLogger(__name__)

#: The Gradio release whose SessionState.__init__ this mirrors (gradio/state_holder.py).
WRITTEN_FOR = "6.31.0"


#: A page block and its config, as computed the first time any session asked for it.
_Shared = tuple[Any, dict[str, Any]]

#: The attribute of a Blocks that holds its block id -> _Shared map (lives and dies with the page).
#: A block that a session replaced (an update) is not the shared one: computed for that session.
_SHARED_ATTRIBUTE = "_flux_playground_block_configs"


class _LazyConfigValues(dict[int, dict[str, Any]]):
    """`SessionState.config_values`: block id -> config, each computed on first read.

    Reads by key (`[]`, `get`) compute one block, `in` and `len` compute nothing; anything that walks
    the whole mapping (`items`, `values`, `keys`, iteration) computes the rest first, in the page's
    order, so it sees what Gradio's eager dict would have held. A block's config is computed once per
    page and copied into each session (`shared`).
    """

    def __init__(
        self, blocks_config: BlocksConfig, ids: Iterable[int], shared: dict[int, _Shared]
    ) -> None:
        super().__init__()
        self._blocks_config = blocks_config
        self._order = list(ids)
        self._pending = set(self._order)
        self._shared = shared

    def _compute(self, key: int) -> dict[str, Any]:
        self._pending.discard(key)
        block = self._blocks_config.blocks[key]
        cached = self._shared.get(key)
        if cached is None or cached[0] is not block:
            cached = (block, self._blocks_config.config_for_block(key, [], block))
            self._shared[key] = cached
        # Gradio only ever replaces a session's entry or sets its ["props"]["value"]
        # (state_holder.py), so a copy of those two levels keeps sessions apart.
        value = dict(cached[1])
        if isinstance(value.get("props"), dict):
            value["props"] = dict(value["props"])
        dict.__setitem__(self, key, value)
        return value

    def _compute_all(self) -> None:
        if not self._order:
            return
        # In the page's block order, as Gradio's eager dict has them (keys added later stay last).
        ordered = {key: self[key] for key in self._order if key in self}
        later = {key: value for key, value in dict.items(self) if key not in ordered}
        dict.clear(self)
        dict.update(self, ordered)
        dict.update(self, later)
        self._order = []

    def __missing__(self, key: int) -> dict[str, Any]:
        if key in self._pending:
            return self._compute(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def get(self, key: int, default: Any = None) -> Any:
        return self[key] if key in self else default

    def __setitem__(self, key: int, value: dict[str, Any]) -> None:
        self._pending.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: int) -> None:
        if key in self._pending:
            self._pending.discard(key)
        else:
            dict.__delitem__(self, key)

    def __iter__(self) -> Iterator[int]:
        self._compute_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def keys(self) -> Any:
        self._compute_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._compute_all()
        return dict.values(self)

    def items(self) -> Any:
        self._compute_all()
        return dict.items(self)


class LazySessionState(state_holder.SessionState):
    """Gradio's SessionState with `config_values` filled on demand (see the module docstring)."""

    def __init__(self, blocks: gr.Blocks) -> None:
        # Gradio's own __init__ sets every attribute (TTLs, state dicts) over no blocks at all...
        super().__init__(_NO_BLOCKS)  # type: ignore[arg-type]
        # ...then the session gets the page's blocks, as Gradio does, with lazy configs.
        self.blocks_config = copy(blocks.default_config)
        self.config_values = _LazyConfigValues(
            self.blocks_config,
            (k for k in self.blocks_config.blocks if k in blocks.blocks),
            blocks.__dict__.setdefault(_SHARED_ATTRIBUTE, {}),
        )


class _NoBlocks:
    """Just enough of a Blocks for SessionState.__init__: a config with no blocks."""

    class _Config:
        blocks: dict[int, Any] = {}

        def __copy__(self) -> _NoBlocks._Config:
            return self

    default_config = _Config()
    blocks: dict[int, Any] = {}


_NO_BLOCKS = _NoBlocks()


def install() -> bool:
    """Make Gradio create LazySessionState for new sessions; True if it is (or already was) in use."""
    current = state_holder.SessionState
    if current is LazySessionState:
        return True
    expected = ("blocks_config", "config_values", "state_data", "_state_ttl", "is_closed")
    probe = current(_NO_BLOCKS)  # type: ignore[arg-type]
    if gr.__version__ != WRITTEN_FOR or not all(hasattr(probe, name) for name in expected):
        log.info("Gradio %s: keeping its own SessionState (written for %s)", gr.__version__, WRITTEN_FOR)
        return False
    state_holder.SessionState = LazySessionState  # type: ignore[misc]
    return True
