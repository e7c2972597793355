"""The explicit registry of providers. Adding one: docs/adding-a-provider.md."""

from __future__ import annotations

from typing import Literal

from ..errors import ConfigurationError
from ._base import CallContext, OutputItem, Provider, ProviderCall, ProviderOutput
from .atlascloud import AtlasCloud
from .deepinfra import DeepInfra
from .segmind import Segmind

__all__ = [
    "PROVIDERS",
    "CallContext",
    "OutputItem",
    "Provider",
    "ProviderCall",
    "ProviderName",
    "ProviderOutput",
    "get_provider",
]

ProviderName = Literal["atlascloud", "deepinfra", "segmind"]

#: Alphabetical. One line per provider.
PROVIDERS: dict[str, Provider] = {
    "atlascloud": AtlasCloud(),
    "deepinfra": DeepInfra(),
    "segmind": Segmind(),
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        valid = ", ".join(PROVIDERS)
        raise ConfigurationError(f"Unknown provider {name!r}. Choose one of: {valid}.") from None
