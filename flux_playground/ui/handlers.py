"""The page's handlers, by concern: controls (prices, presets), generation, history, the public API.

Each is a plain object over the same backend (one Playground, one History store, one scratch
folder), so the layout binds their methods and tests call them directly, without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..history import History
from ..service import Playground
from .api import Api
from .controls import Controls
from .generation import Generation
from .history_view import HistoryView
from .scratch import Scratch

__all__ = ["Handlers"]


@dataclass(frozen=True)
class Handlers:
    playground: Playground
    store: History
    scratch: Scratch
    controls: Controls
    generation: Generation
    history: HistoryView
    api: Api

    @classmethod
    def create(cls, playground: Playground, store: History, scratch: Scratch | None = None) -> Handlers:
        scratch = scratch or Scratch()
        view = HistoryView(store, demo=playground.settings.demo_mode)
        return cls(
            playground=playground,
            store=store,
            scratch=scratch,
            controls=Controls(playground),
            generation=Generation(playground, store, view, scratch),
            history=view,
            api=Api(playground, scratch),
        )
