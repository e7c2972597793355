"""The emulated providers: one explicit, alphabetical registry.

To add a provider, write a module that exports an :class:`EmulatedProvider` as
``PROVIDER`` and add one line below. ``register``/``unregister`` change the registry
at runtime (a test can serve a throwaway provider); mounts, counters and the fault
queue are built when an app is created, so a change takes effect for servers
created afterwards, never for one already running.
"""

from __future__ import annotations

import re

from . import (
    atlascloud,
    cloudflare,
    deepinfra,
    fal,
    fireworks,
    hf_router,
    replicate,
    runware,
    segmind,
    together,
)
from .emulated import EmulatedProvider
from .faults import FAULTS

__all__ = ["EMULATED", "EmulatedProvider", "register", "snapshot", "unregister"]

EMULATED: dict[str, EmulatedProvider] = {
    "atlascloud": atlascloud.PROVIDER,
    "cloudflare": cloudflare.PROVIDER,
    "deepinfra": deepinfra.PROVIDER,
    "fal": fal.PROVIDER,
    "fireworks": fireworks.PROVIDER,
    "hf_router": hf_router.PROVIDER,  # Hugging Face's router, in front of fal, Replicate and Together
    "replicate": replicate.PROVIDER,
    "runware": runware.PROVIDER,
    "segmind": segmind.PROVIDER,
    "together": together.PROVIDER,
}

# A URL path segment; it cannot start with "_", so it never shadows /_emulator.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _check(key: str, provider: EmulatedProvider) -> None:
    if key != provider.name or not _NAME.match(provider.name):
        raise ValueError(f"provider {provider.name!r} (key {key!r}) must be named like {_NAME.pattern}")
    if not provider.stages:
        raise ValueError(f"{provider.name}: at least one stage is needed")
    for fault, stages in provider.faults.items():
        if fault not in FAULTS:
            raise ValueError(f"{provider.name}: unknown fault {fault!r}; valid: {', '.join(FAULTS)}")
        if not stages or not set(stages) <= set(provider.stages):
            raise ValueError(f"{provider.name}: fault {fault!r} at {stages}, not among {provider.stages}")
    if not provider.job_faults <= set(provider.faults):
        raise ValueError(f"{provider.name}: job faults must be listed in faults")


def register(provider: EmulatedProvider, *, replace: bool = False) -> EmulatedProvider:
    """Add ``provider`` for servers created from now on; the registry stays alphabetical."""
    _check(provider.name, provider)
    if provider.name in EMULATED and not replace:
        raise ValueError(f"provider {provider.name!r} is already registered")
    entries = {**EMULATED, provider.name: provider}
    EMULATED.clear()
    EMULATED.update(sorted(entries.items()))
    return provider


def unregister(name: str) -> EmulatedProvider:
    """Remove a provider for servers created from now on; KeyError if it is not there."""
    return EMULATED.pop(name)


def snapshot() -> dict[str, EmulatedProvider]:
    """The providers a new app serves (copied: later registry changes do not reach it)."""
    return dict(EMULATED)


for _key, _provider in EMULATED.items():
    _check(_key, _provider)
