"""Configuration from the environment, `.env` and Space secrets (pydantic-settings).

Each provider declares the variables it reads (providers/_base.py: its key variables, `<ID>_BASE_URL`
and its other options, e.g. CLOUDFLARE_ACCOUNT_ID); `ProviderEnvironment` reads exactly those, for
every registered provider, into `Settings.providers`. Everything else is prefixed FLUX_PLAYGROUND_.
Keys are SecretStr so they never show in a repr, a log line or a traceback.

    Settings()                                                  # from the environment and .env
    Settings(providers={"fal": {"api_key": "...", "base_url": "http://127.0.0.1:8100/fal"}})
"""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["SPACES_PROXY_NETWORKS", "ProviderEnvironment", "ProviderSettings", "Settings"]


#: Where a Space's proxy can connect from: the private ranges (a Space is reachable only through it).
SPACES_PROXY_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class ProviderSettings(BaseModel):
    """One provider's configuration: its server key, its API origin and its other options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    #: The API origin; the documented paths are appended. None: the provider's own default.
    base_url: str | None = None
    options: dict[str, str] = Field(default_factory=dict)


class ProviderEnvironment(PydanticBaseSettingsSource):
    """Every registered provider's variables, from the environment (first) and the .env file."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything comes from __call__

    def __call__(self) -> dict[str, Any]:
        from .providers import check_configuration, variables  # the registry imports this module

        check_configuration()  # a mistake in FLUX_PLAYGROUND_OPENAI_PROVIDERS stops here, in words
        found: dict[str, str] = {}
        if isinstance(self._dotenv, DotEnvSettingsSource):
            found |= {k.lower(): v for k, v in self._dotenv.env_vars.items() if v}
        found |= {k.lower(): v for k, v in os.environ.items() if v}
        providers: dict[str, Any] = {}
        for name, wanted in variables().items():
            entry: dict[str, Any] = {}
            key = next((found[v.lower()] for v in wanted.key if v.lower() in found), None)
            if key is not None:
                entry["api_key"] = key
            if wanted.base_url.lower() in found:
                entry["base_url"] = found[wanted.base_url.lower()]
            options = {
                option: next(found[v.lower()] for v in names if v.lower() in found)
                for option, names in wanted.options.items()
                if any(v.lower() in found for v in names)
            }
            if options:
                entry["options"] = options
            if entry:
                providers[name] = entry
        return {"providers": providers} if providers else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLUX_PLAYGROUND_",
        env_file=".env",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        # A mistyped value is not echoed back: it may be a key or a database URL with its password.
        hide_input_in_errors=True,
    )

    #: Per provider id: server key, origin and options (see ProviderEnvironment). Never sent to a
    #: browser.
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)

    data_dir: Path = Field(Path("data"), description="Where history (SQLite + images) is kept.")

    #: The spend ledger's database, shared by every replica: postgresql://user:password@host/db.
    #: Unset: the SQLite file in `data_dir` (one process). A secret: it usually holds a password.
    database_url: SecretStr | None = None

    # Timeouts, in seconds.
    connect_timeout: float = Field(10.0, gt=0)
    request_timeout: float = Field(120.0, gt=0, description="A synchronous provider call, start to end.")
    job_timeout: float = Field(180.0, gt=0, description="An asynchronous job, submit to done.")
    download_timeout: float = Field(30.0, gt=0)

    # Untrusted images. Each is also capped by its size: at most 4 bytes a pixel (http.answer_cap).
    max_download_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0)

    #: Price overrides, JSON: {"segmind": {"basis": "per_image", "usd": "0.01"}}.
    prices: dict[str, dict[str, str]] = Field(default_factory=dict)

    # Spending and abuse limits for a public Space running on the owner's keys (None: no cap).
    daily_budget_usd: Decimal | None = Field(None, ge=0)
    per_user_daily_budget_usd: Decimal | None = Field(None, ge=0)
    per_user_requests_per_minute: int | None = Field(None, ge=1)
    max_images_per_request: int = Field(4, ge=1, le=4)
    max_pixels: int = Field(2048 * 2048, gt=0)

    #: Force demo mode (built-in emulator, placeholder images). Default: on when no key is set.
    demo: bool | None = None

    #: Hugging Face's router (Inference Providers): a provider it routes is reached there with a
    #: person's Hugging Face token, billed to their account (hf_router.py). HF_ROUTER_BASE_URL (no
    #: prefix, as the emulator prints it) points it elsewhere.
    hf_router_base_url: str = Field(
        "https://router.huggingface.co",
        validation_alias=AliasChoices("HF_ROUTER_BASE_URL", "hf_router_base_url"),
    )
    #: What a Space's "Sign in with Hugging Face" asks for: a Space sets OAUTH_SCOPES from its
    #: `hf_oauth_scopes` (README front matter).
    oauth_scopes: str | None = Field(None, validation_alias=AliasChoices("OAUTH_SCOPES", "oauth_scopes"))

    user_agent: str = "flux-playground/0.1 (+https://huggingface.co/spaces; python-httpx)"

    # Connections the page's server accepts (compat/uvicorn.py): a request must arrive whole within
    # this many seconds, and one address (not a trusted proxy) may hold this many connections.
    request_read_timeout: float = Field(10.0, gt=0)
    max_connections_per_address: int = Field(512, ge=8)
    max_connections: int = Field(4096, ge=64)

    #: Proxies in front of the app, as comma-separated networks ("10.0.0.0/8,127.0.0.1"): only from
    #: them is X-Forwarded-For believed. Unset: none, except on a Hugging Face Space, whose proxy
    #: reaches the app from a private network (docs/reliability.md, "Who a person is").
    trusted_proxies: str | None = None

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            # The value itself is not repeated: it may hold a password.
            raise ValueError(
                "FLUX_PLAYGROUND_DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host/"
                "database), or unset to keep the spend ledger in the data directory's SQLite file"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        for net in _split(value):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"{net!r} is not a network; write addresses or networks such as 10.0.0.0/8, "
                    "separated by commas"
                ) from None
        return value

    @field_validator("hf_router_base_url")
    @classmethod
    def _router_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(
                f"{value!r} is not an http(s) origin; write one such as https://router.huggingface.co"
            )
        return value.strip().rstrip("/")

    @property
    def hf_sign_in(self) -> bool:
        """Whether signing in asks visitors for the Inference Providers permission (`hf_oauth_scopes:
        [inference-api]`): a signed-in visitor can then run the providers Hugging Face routes on their
        own Hugging Face credits."""
        return "inference-api" in (self.oauth_scopes or "").split()

    def proxy_networks(self) -> list[str]:
        """The trusted proxies' networks (see `trusted_proxies`)."""
        if self.trusted_proxies is not None:
            return _split(self.trusted_proxies)
        return list(SPACES_PROXY_NETWORKS) if os.environ.get("SPACE_ID") else []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        providers = ProviderEnvironment(settings_cls, dotenv_settings)
        return init_settings, env_settings, dotenv_settings, providers, file_secret_settings

    def provider(self, name: str) -> ProviderSettings:
        """The configuration of one provider (empty when nothing is set for it)."""
        return self.providers.get(name) or ProviderSettings()

    def with_provider(self, name: str, **values: Any) -> Settings:
        """These settings with some of one provider's values replaced (tests, demo mode)."""
        current = self.provider(name).model_dump()
        current.update(values)
        return self.model_copy(update={"providers": {**self.providers, name: ProviderSettings(**current)}})

    @property
    def demo_mode(self) -> bool:
        """Forced by FLUX_PLAYGROUND_DEMO, else on when no provider is configured and visitors cannot
        bring their Hugging Face account either (`hf_sign_in`)."""
        if self.demo is not None:
            return self.demo
        from .providers import any_configured  # the registry imports this module

        return not any_configured(self) and not self.hf_sign_in
