"""Demo mode: the built-in emulator stands in for every provider (placeholder images, no key, no cost).

`python app.py` with no key configured, and `python -m flux_playground --demo ...`, run this way.
Tests and benchmarks point settings at an emulator the same way (`point_at`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import SecretStr

from .hf_router import EMULATED_NAME
from .providers import PROVIDERS
from .settings import Settings

__all__ = ["DEMO_KEY", "DEMO_LATENCY_S", "point_at", "start_demo"]

#: Any key works with the emulator; this one makes it obvious in a debugger what is going on.
DEMO_KEY = "demo-key-emulator"
#: About what a fast hosted provider takes, so the page feels like the real thing.
DEMO_LATENCY_S = 1.0


def point_at(settings: Settings, base_urls: Mapping[str, str], key: str = DEMO_KEY) -> Settings:
    """`settings` with every registered provider the emulator serves pointed at it, with `key`, and
    Hugging Face's router too when the emulator serves it (a Hugging Face token is never set here).

    The emulator takes any value for what a provider also needs (an account id, say): required
    options get a placeholder unless already set.
    """
    providers = dict(settings.providers)
    for name, url in base_urls.items():
        if name not in PROVIDERS:
            continue
        current = settings.provider(name)
        options = {o.name: f"demo-{o.name}" for o in PROVIDERS[name].options if o.required}
        providers[name] = current.model_copy(
            update={"api_key": SecretStr(key), "base_url": url, "options": {**options, **current.options}}
        )
    update: dict[str, object] = {"providers": providers}
    if EMULATED_NAME in base_urls:
        update["hf_router_base_url"] = base_urls[EMULATED_NAME]
    return settings.model_copy(update=update)


@contextmanager
def start_demo(settings: Settings, *, latency: float = DEMO_LATENCY_S) -> Iterator[Settings]:
    """Start the emulator on loopback and yield settings that point every provider at it."""
    from .emulator.server import EmulatorServer

    with EmulatorServer(latency=latency) as server:
        yield point_at(settings, server.base_urls).model_copy(update={"demo": True})
