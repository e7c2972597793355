"""Hugging Face Inference Providers: a provider Hugging Face routes, reached through its router with a
person's Hugging Face token and billed to their Hugging Face account (docs/providers/hf-router.md).

    through_router(PROVIDERS["together"])      the same provider, called at the router:
        .label                                 "Together AI via Hugging Face"
        .build_call(request, "hf_…", settings) POST {HF_ROUTER_BASE_URL}/together/v1/images/generations,
                                               Authorization: Bearer hf_…, Together's own body
    routes_for(settings, names, keys, token, via)   which providers of a run go through the router
    local_token()                              HF_TOKEN, else the token file `hf auth login` writes

Routing is generic: a provider declares only its router prefix (`Provider.hf_route`). Everything
else is its own: payload, parsing, sizes, price (Hugging Face passes the provider's price through) and
the provider's own error words; only the origin, the Authorization header and the errors that are
Hugging Face's (a refused token, no credits left, no route) change. The token goes to the router's
origin only: polls are sent only there (`own_url`), downloads never carry it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, cast

import httpx
from pydantic import SecretStr

from .errors import AuthenticationFailed, InsufficientCredits, InvalidRequest, ProviderError, ProviderFailed
from .providers import PROVIDERS, Provider, hf_routed
from .providers._base import error_text
from .settings import Settings

__all__ = [
    "BILLING_URL",
    "EMULATED_NAME",
    "LABEL_SUFFIX",
    "TOKEN_ENV",
    "Via",
    "account_providers",
    "check_token",
    "choose_route",
    "local_token",
    "provider_for",
    "routes_for",
    "through_router",
]

#: "direct": the provider's own API with its own key; "hf": Hugging Face's router with an HF token.
Via = Literal["direct", "hf"]
TOKEN_ENV = "HF_TOKEN"
BILLING_URL = "https://huggingface.co/settings/billing"
TOKENS_URL = "https://huggingface.co/settings/tokens"
LABEL_SUFFIX = " via Hugging Face"
#: Where the emulator serves its stand-in for the router (demo.point_at points settings there).
EMULATED_NAME = "hf_router"
#: A Hugging Face token: "hf_" then letters and digits (user tokens and OAuth tokens, "hf_oauth_…").
_TOKEN = re.compile(r"hf_[A-Za-z0-9_-]{1,500}")


class _ViaHuggingFace(Provider):
    """Put before a provider's own class (`through_router`): the provider's call, at the router.

    Abstract on purpose; never used alone.
    """

    key_env = (TOKEN_ENV,)

    @classmethod
    def base_url_env(cls) -> str:
        return "HF_ROUTER_BASE_URL"

    def base_url(self, settings: Settings) -> str:
        # The router's origin plus the provider's prefix; the provider's own route follows
        # (docs/providers/hf-router.md#endpoint-and-auth).
        return settings.hf_router_base_url + (self.hf_route or "")

    def auth_headers(self, key: str) -> dict[str, str]:
        # The router takes the Hugging Face token as a Bearer token, whatever scheme the provider uses
        # itself (fal's `Key`): huggingface_hub sends exactly this for an hf_ key.
        return {"Authorization": f"Bearer {key}"}

    def missing(self, settings: Settings, *, with_own_key: bool = False) -> list[str]:
        return [] if with_own_key else [TOKEN_ENV]

    def resolve_key(self, settings: Settings, user_key: SecretStr | None = None) -> str:
        """The person's Hugging Face token, never a server key (the router bills whoever it is)."""
        return check_token(user_key)

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        said = error_text(response, key=key)
        detail = f" ({said})" if said else ""
        behind = self.label.removesuffix(LABEL_SUFFIX)
        status = response.status_code
        if status in (401, 403):
            return AuthenticationFailed(
                self.label,
                f"Hugging Face refused the token{detail}. Sign in with Hugging Face again (tokens expire), "
                f"or check {TOKEN_ENV}: it needs the permission 'Make calls to Inference Providers' "
                f"({TOKENS_URL}).",
            )
        if status == 402:
            # "402 Payment Required = out of credits" (docs/providers/hf-router.md#errors).
            return InsufficientCredits(
                self.label,
                f"your Hugging Face account is out of Inference Providers credits{detail}. Top up at "
                f"{BILLING_URL} (or wait for next month's included credits), then retry.",
            )
        if status == 404:
            # Which providers serve FLUX.1-schnell changes (docs/providers/hf-router.md#which-providers-map).
            return ProviderFailed(
                self.label,
                f"Hugging Face does not route this model to {behind} right now (HTTP 404){detail}. "
                f"Run {behind} with its own key, or choose another provider.",
            )
        # Anything else is the provider's own answer, passed through the router: its own words.
        return super().error_for(response, key=key)


_ROUTED_CLASSES: dict[type[Provider], type[Provider]] = {}


def through_router(provider: Provider) -> Provider:
    """`provider` as reached through Hugging Face's router (its `hf_route` must be set)."""
    if provider.hf_route is None:
        raise InvalidRequest(_not_routed([provider.name]), field="via", provider=provider.name)
    kind = type(provider)
    routed_class = _ROUTED_CLASSES.get(kind)
    if routed_class is None:
        attributes = {"label": provider.label + LABEL_SUFFIX, "__doc__": f"{kind.__name__} via Hugging Face."}
        routed_class = cast(
            type[Provider], type(f"{kind.__name__}ViaHuggingFace", (_ViaHuggingFace, kind), attributes)
        )
        _ROUTED_CLASSES[kind] = routed_class
    routed = routed_class.__new__(routed_class)
    routed.__dict__.update(vars(provider))  # an instance configured at start-up keeps its configuration
    return routed


def provider_for(name: str, via: Via) -> Provider:
    """The registered provider `name`, as this route reaches it."""
    provider = PROVIDERS[name]
    return through_router(provider) if via == "hf" else provider


def check_token(token: SecretStr | None) -> str:
    """The token's text, or InvalidRequest in words. Only an hf_ token goes to the router: anything
    else (a provider's key pasted in the wrong place) would be handed to Hugging Face."""
    text = token.get_secret_value().strip() if token is not None else ""
    if not text:
        raise InvalidRequest(
            "Running through Hugging Face needs your Hugging Face token: sign in with Hugging Face on "
            f"the page, or set {TOKEN_ENV} (or run `hf auth login`) for the command line.",
            field="via",
        )
    if not _TOKEN.fullmatch(text):
        raise InvalidRequest(
            "That is not a Hugging Face token: one starts with hf_ and has only letters, digits, - and _. "
            f"Create one with the permission 'Make calls to Inference Providers' at {TOKENS_URL}.",
            field="via",
        )
    return text


def choose_route(provider: Provider, settings: Settings, *, own_key: bool, hf_account: bool) -> Via:
    """Automatic choice for one provider: through Hugging Face only for a person with a Hugging Face
    account at hand, where Hugging Face routes the provider and nothing else can run it (no pasted key,
    no server key). A server key keeps its owner's choice; demo mode never sends a token anywhere."""
    if not hf_account or own_key or settings.demo_mode or provider.hf_route is None:
        return "direct"
    return "direct" if provider.configured(settings) else "hf"


def account_providers(settings: Settings) -> list[str]:
    """The providers a person's Hugging Face account would run here (`choose_route`): those Hugging
    Face routes that the server has no key for. None in demo mode."""
    return [
        name
        for name in hf_routed()
        if choose_route(PROVIDERS[name], settings, own_key=False, hf_account=True) == "hf"
    ]


def routes_for(
    settings: Settings,
    names: Sequence[str],
    api_keys: Mapping[str, SecretStr | None],
    hf_token: SecretStr | None,
    via: Via | None,
) -> dict[str, Via]:
    """The route of each provider of a run: all direct, all through Hugging Face (`via="hf"`: each must
    be routed, and a token given), or chosen per provider (`via=None`, `choose_route`). Raises
    InvalidRequest, before anything is sent or charged, when the choice cannot be honoured."""
    if via == "direct":
        return dict.fromkeys(names, "direct")
    if via == "hf":
        not_routed = [name for name in names if PROVIDERS[name].hf_route is None]
        if not_routed:
            raise InvalidRequest(_not_routed(not_routed), field="via")
        check_token(hf_token)
        return dict.fromkeys(names, "hf")
    has_token = hf_token is not None and bool(hf_token.get_secret_value().strip())
    chosen: dict[str, Via] = {}
    for name in names:
        own = api_keys.get(name)
        own_key = own is not None and bool(own.get_secret_value().strip())
        chosen[name] = choose_route(PROVIDERS[name], settings, own_key=own_key, hf_account=has_token)
    if "hf" in chosen.values():
        check_token(hf_token)
    return chosen


def _not_routed(names: Sequence[str]) -> str:
    labels = ", ".join(PROVIDERS[name].label for name in names)
    routed = ", ".join(PROVIDERS[name].label for name in hf_routed()) or "none"
    return (
        f"Hugging Face does not route {labels}: run it with its own key instead. "
        f"Through Hugging Face: {routed}."
    )


def local_token(environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The token of this machine's Hugging Face login: HF_TOKEN, else the file `hf auth login` writes
    (HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token), read as huggingface_hub
    reads it. None when there is neither."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return SecretStr(token)
    path = env.get("HF_TOKEN_PATH") or str(
        Path(env.get("HF_HOME") or Path.home() / ".cache/huggingface") / "token"
    )
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return SecretStr(text) if text else None
