"""The registry of providers: everything else (settings, prices, the CLI, the page, the API, the
spend guard, the tests) reads it and names no provider. Adding one: docs/adding-a-provider.md.

    PROVIDERS["segmind"].label        -> "Segmind"
    register(Acme())                   a plugin or a test adds a provider, at once, everywhere
    unregister("acme")
    hf_routed()                        -> ["fal", "replicate", "together"]: those Hugging Face routes
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from ..settings import Settings
from ._base import CallContext, Option, OutputItem, Provider, ProviderCall, ProviderOutput
from ._contract import AnswerContract, AnswerLog, Findings, Read, SeenAnswer
from .atlascloud import AtlasCloud
from .cloudflare import Cloudflare
from .deepinfra import DeepInfra
from .fal import Fal
from .fireworks import Fireworks
from .openai_images import owner_providers
from .replicate import Replicate
from .runware import Runware
from .segmind import Segmind
from .together import Together

__all__ = [
    "PROVIDERS",
    "AnswerContract",
    "AnswerLog",
    "CallContext",
    "Findings",
    "Option",
    "OutputItem",
    "Provider",
    "ProviderCall",
    "ProviderOutput",
    "Read",
    "SeenAnswer",
    "Variables",
    "all_variables",
    "any_configured",
    "check_configuration",
    "get_provider",
    "hf_routed",
    "register",
    "unregister",
    "variables",
]

#: Alphabetical. One line per provider.
PROVIDERS: dict[str, Provider] = {
    "atlascloud": AtlasCloud(),
    "cloudflare": Cloudflare(),
    "deepinfra": DeepInfra(),
    "fal": Fal(),
    "fireworks": Fireworks(),
    "replicate": Replicate(),
    "runware": Runware(),
    "segmind": Segmind(),
    "together": Together(),
}


def register(provider: Provider) -> None:
    """Add a provider (a plugin, a test) to everything at once; its name must be new."""
    if provider.name in PROVIDERS:
        raise ValueError(f"a provider named {provider.name!r} is already registered")
    PROVIDERS[provider.name] = provider
    ordered = sorted(PROVIDERS.items())
    PROVIDERS.clear()
    PROVIDERS.update(ordered)


def unregister(name: str) -> Provider:
    return PROVIDERS.pop(name)


def _register_owner_endpoints() -> str | None:
    """The owner's OpenAI-compatible endpoints (FLUX_PLAYGROUND_OPENAI_PROVIDERS), registered now,
    before any Settings reads their variables; what is wrong with them, if anything."""
    try:
        for provider in owner_providers(PROVIDERS):
            register(provider)
    except ConfigurationError as exc:
        return exc.message
    return None


_OWNER_PROBLEM = _register_owner_endpoints()


def check_configuration() -> None:
    """Raise the owner's configuration mistake found at import (Settings and the CLI call this)."""
    if _OWNER_PROBLEM is not None:
        raise ConfigurationError(_OWNER_PROBLEM)


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        valid = ", ".join(PROVIDERS)
        raise ConfigurationError(f"Unknown provider {name!r}. Choose one of: {valid}.") from None


def hf_routed() -> list[str]:
    """The providers Hugging Face's router reaches (each declares its `hf_route`), in registry order."""
    return [name for name, provider in PROVIDERS.items() if provider.hf_route is not None]


def any_configured(settings: Settings) -> bool:
    """Whether any provider can run on the server's own configuration (else: demo mode)."""
    return any(provider.configured(settings) for provider in PROVIDERS.values())


@dataclass(frozen=True)
class Variables:
    """The environment variables one provider reads."""

    key: tuple[str, ...]
    base_url: str
    options: dict[str, tuple[str, ...]]

    def all(self) -> list[str]:
        return [*self.key, self.base_url, *(name for names in self.options.values() for name in names)]


def variables() -> dict[str, Variables]:
    return {
        name: Variables(p.key_env, p.base_url_env(), {o.name: o.env for o in p.options})
        for name, p in PROVIDERS.items()
    }


def all_variables() -> list[str]:
    """Every variable any registered provider reads (a test environment clears them all)."""
    return [name for entry in variables().values() for name in entry.all()]
