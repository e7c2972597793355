"""Loopback emulator of the FLUX.1 [schnell] provider APIs (one module each, see registry.py).

Written from docs only (docs/providers/ and the provider pages), independent of the
client in ``flux_playground``, so that it can catch that client's mistakes. It serves
placeholder images, never real FLUX output.
"""

from __future__ import annotations

from .app import EmulatorApp, create_app
from .emulated import EmulatedProvider, ProviderState
from .faults import FAULTS
from .registry import EMULATED, register, unregister
from .server import EmulatorServer

__all__ = [
    "EMULATED",
    "FAULTS",
    "EmulatedProvider",
    "EmulatorApp",
    "EmulatorServer",
    "ProviderState",
    "create_app",
    "register",
    "unregister",
]
