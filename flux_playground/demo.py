"""Demo mode: the built-in emulator stands in for every provider (placeholder images, no key, no cost).

`python app.py` with no key configured, and `python -m flux_playground --demo ...`, run this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from .providers import PROVIDERS
from .settings import Settings

__all__ = ["DEMO_KEY", "DEMO_LATENCY_S", "start_demo"]

#: Any key works with the emulator; this one makes it obvious in a debugger what is going on.
DEMO_KEY = "demo-key-emulator"
#: About what a fast hosted provider takes, so the page feels like the real thing.
DEMO_LATENCY_S = 1.0


@contextmanager
def start_demo(settings: Settings, *, latency: float = DEMO_LATENCY_S) -> Iterator[Settings]:
    """Start the emulator on loopback and yield settings that point every provider at it."""
    from .emulator.server import EmulatorServer

    with EmulatorServer(latency=latency) as server:
        update: dict[str, object] = {"demo": True}
        for name in PROVIDERS:
            update[f"{name}_base_url"] = server.base_urls[name]
            update[f"{name}_api_key"] = SecretStr(DEMO_KEY)
        yield settings.model_copy(update=update)
