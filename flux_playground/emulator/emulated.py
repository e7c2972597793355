"""What an emulated provider declares: its routes, fault stages, variants and own state.

Each provider module exports one :class:`EmulatedProvider` (as ``PROVIDER``) and
``registry.py`` lists them. Everything else in the emulator (mounts, counters, the
fault queue, the control API, the CLI) is driven by these declarations, so adding a
provider means writing one module and one registry line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .directives import VariantGroups

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from .state import EmulatorState

__all__ = [
    "ConfigError", "ConfigKeys", "EmulatedProvider", "ProviderState", "config_count", "config_number",
]  # fmt: skip

# Runtime config key -> a check turning the JSON value into the attribute's value.
ConfigKeys = Mapping[str, Callable[[str, object], object]]


class ConfigError(ValueError):
    """A runtime config value the control API refuses (it answers 400 with the message)."""


def config_number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number")
    return float(value)


def config_count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1")
    return value


class ProviderState:
    """A provider's own runtime state and config keys; this base class has none.

    Subclass it for state only one provider has (credits, an in-flight counter). Each
    name in ``config_keys`` is an attribute settable with ``PUT /_emulator/config
    {"providers": {name: {key: value}}}``, its value checked by the given function.
    The emulator creates one instance per server and calls :meth:`reset` on
    ``POST /_emulator/reset``, so a provider module may keep a reference to it.
    """

    config_keys: ClassVar[ConfigKeys] = {}

    def reset(self) -> None:
        """Return to the start values (config overrides and counters alike)."""

    def config(self) -> dict[str, object]:
        """Current values of the runtime config keys (``GET /_emulator/config``)."""
        return {key: getattr(self, key) for key in self.config_keys}

    def configure(self, key: str, value: object) -> None:
        check = self.config_keys.get(key)
        if check is None:
            valid = ", ".join(self.config_keys) or "none"
            raise ConfigError(f"unknown config key {key!r}; valid: {valid}")
        setattr(self, key, check(key, value))

    def stats(self) -> dict[str, object]:
        """Provider-specific figures, shown under ``stats()["providers"][name]``."""
        return {}


@dataclass(frozen=True)
class EmulatedProvider:
    """One emulated provider, served under ``/<name>``.

    Request-level faults (``401``, ``429``, ``500``, ``reset``, ...; see
    ``faults.REQUEST_FAULTS``) apply at every stage, the JSON-body ones except at
    ``binary_stages``. Anything else a provider supports is listed in ``faults``.
    """

    name: str  # the mount prefix; equal to the product's provider id
    routes: Callable[[EmulatorState], list[BaseRoute]]
    # Request kinds the provider counts and faults can target; the first is the natural
    # stage of request-level faults (the billable call).
    stages: tuple[str, ...] = ("submit",)
    # Provider-specific faults -> the stages they apply at (first = natural stage).
    faults: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Faults that belong to a job: a queued one is taken by the next request at the
    # first stage (the one that creates the job), whichever stage it shows at.
    job_faults: frozenset[str] = frozenset()
    # Stages whose answers are not JSON (file downloads): no malformed / missing_fields.
    binary_stages: frozenset[str] = frozenset()
    variants: VariantGroups = field(default_factory=dict)  # group -> values, first = default
    make_state: Callable[[], ProviderState] = ProviderState
