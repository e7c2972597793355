"""Loopback emulator of the FLUX.1 [schnell] provider APIs (Atlas Cloud, Segmind, DeepInfra).

Written from docs only (shared PROVIDERS.md and the seed pages), independent of the
client in ``flux_playground``, so that it can catch that client's mistakes. It serves
placeholder images, never real FLUX output.
"""

from __future__ import annotations

from .app import EmulatorApp, create_app
from .faults import FAULTS, PROVIDERS
from .server import EmulatorServer

__all__ = ["FAULTS", "PROVIDERS", "EmulatorApp", "EmulatorServer", "create_app"]
