"""The page's form: every value an event sends, by name, turned into what the backend takes.

The page's events take their inputs as a set of components (Gradio then hands the handler one dict,
component -> value), and `named()` turns that into names; no handler takes fifteen positional
values, and a test builds an event's inputs by name, never by position. Values arrive raw (every
page event has preprocess=False): a field may hold any JSON at all, so everything here is coerced
or refused with words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from ..models import GenerationRequest
from ..providers import PROVIDERS
from ..runs import build_request, check_providers
from . import values as raw

__all__ = ["KEY_PREFIX", "Form", "key_field"]

#: The key boxes are named "key:<provider>".
KEY_PREFIX = "key:"


def key_field(provider: str) -> str:
    return KEY_PREFIX + provider


@dataclass(frozen=True)
class Form:
    prompt: object = ""
    providers: object = ()
    width: object = 1024
    height: object = 1024
    steps: object = 4
    seed: object = None
    random_seed: object = True
    num_images: object = 1
    sampler: object = None
    scheduler: object = None
    preset: object = None
    browser_id: object = None
    search: object = ""
    provider_filter: object = ""
    #: Page state kept by the server for this page (gr.State), by name.
    state: Mapping[str, object] = field(default_factory=dict)
    #: Pasted keys by provider.
    keys: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def named(cls, values: Mapping[str, Any]) -> Form:
        """From values by name; "key:<provider>" names a key box; other names are page state."""
        fields = set(cls.__dataclass_fields__) - {"state", "keys"}
        keys = {k.removeprefix(KEY_PREFIX): v for k, v in values.items() if k.startswith(KEY_PREFIX)}
        state = {k: v for k, v in values.items() if k not in fields and not k.startswith(KEY_PREFIX)}
        return cls(**{k: v for k, v in values.items() if k in fields}, state=state, keys=keys)

    # --- for the backend ------------------------------------------------------------------------

    def chosen(self) -> list[str]:
        """The chosen providers, or InvalidRequest saying what to choose."""
        return check_providers(self.providers)

    def request(self) -> GenerationRequest:
        """The run these values ask for (a random seed unless "random" is off), or InvalidRequest."""
        seed = None if self.random_seed is not False else self.seed
        return build_request(
            self.prompt,
            self.width,
            self.height,
            self.steps,
            seed,
            self.num_images,
            self.sampler,
            self.scheduler,
        )

    def key_texts(self) -> dict[str, str]:
        """What is in each key box (only to tell "your key" from the server's in the price table)."""
        return {name: raw.text(self.keys.get(name), limit=512).strip() for name in PROVIDERS}

    def api_keys(self, names: Sequence[str]) -> dict[str, SecretStr | None]:
        """The pasted keys of the chosen providers, wrapped at once, so a key never shows in a repr,
        a log line or a traceback (the provider checks each: Provider.resolve_key)."""
        return {
            name: SecretStr(key) if key else None for name, key in self.key_texts().items() if name in names
        }

    # --- for display ----------------------------------------------------------------------------

    def size(self) -> tuple[int, int]:
        return raw.number(self.width, 1024), raw.number(self.height, 1024)

    def query(self) -> str:
        return raw.text(self.search, limit=200).strip()

    def history_provider(self) -> str | None:
        name = raw.text(self.provider_filter)
        return name if name in PROVIDERS else None
