"""The fixtures every provider's emulator tests share."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from flux_playground.emulator.server import EmulatorServer


@pytest.fixture
def emu(emulator: EmulatorServer) -> EmulatorServer:
    """The session's emulator (tests/conftest.py), reset for each test."""
    emulator.reset()
    return emulator


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One plain client per module, deaf to proxy variables (the emulator is on loopback)."""
    with httpx.Client(timeout=10.0, trust_env=False) as c:
        yield c
