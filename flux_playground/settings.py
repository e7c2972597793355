"""Configuration from the environment, `.env` and Space secrets (pydantic-settings).

Keys use the providers' own conventional variable names (ATLASCLOUD_API_KEY, SEGMIND_API_KEY,
DEEPINFRA_API_KEY or DEEPINFRA_TOKEN); everything else is prefixed FLUX_PLAYGROUND_.
Keys are SecretStr so they never show in a repr, a log line or a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SPACES_PROXY_NETWORKS", "Settings"]


#: Where a Space's proxy can connect from: the private ranges (a Space is reachable only through it).
SPACES_PROXY_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLUX_PLAYGROUND_",
        env_file=".env",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    # Provider keys (server side). Never sent to a browser.
    atlascloud_api_key: SecretStr | None = Field(None, validation_alias=_env("ATLASCLOUD_API_KEY"))
    segmind_api_key: SecretStr | None = Field(None, validation_alias=_env("SEGMIND_API_KEY"))
    deepinfra_api_key: SecretStr | None = Field(
        None, validation_alias=_env("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN")
    )

    # API origins; the documented paths are appended. Point them at the emulator to test.
    atlascloud_base_url: str = Field(
        "https://api.atlascloud.ai", validation_alias=_env("ATLASCLOUD_BASE_URL")
    )
    segmind_base_url: str = Field("https://api.segmind.com", validation_alias=_env("SEGMIND_BASE_URL"))
    deepinfra_base_url: str = Field("https://api.deepinfra.com", validation_alias=_env("DEEPINFRA_BASE_URL"))
    #: DeepInfra has two endpoints: "native" honours steps and seed and reports the cost;
    #: "openai" is the OpenAI-compatible one from the model page.
    deepinfra_endpoint: Literal["native", "openai"] = "native"

    data_dir: Path = Field(Path("data"), description="Where history (SQLite + images) is kept.")

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

    user_agent: str = "flux-playground/0.1 (+https://huggingface.co/spaces; python-httpx)"

    #: Proxies in front of the app, as comma-separated networks ("10.0.0.0/8,127.0.0.1"): only from
    #: them is X-Forwarded-For believed. Unset: none, except on a Hugging Face Space, whose proxy
    #: reaches the app from a private network (docs/reliability.md, "Who a person is").
    trusted_proxies: str | None = None

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

    def proxy_networks(self) -> list[str]:
        """The trusted proxies' networks (see `trusted_proxies`)."""
        if self.trusted_proxies is not None:
            return _split(self.trusted_proxies)
        return list(SPACES_PROXY_NETWORKS) if os.environ.get("SPACE_ID") else []

    def any_server_key(self) -> bool:
        return any(
            key is not None and key.get_secret_value()
            for key in (self.atlascloud_api_key, self.segmind_api_key, self.deepinfra_api_key)
        )

    @property
    def demo_mode(self) -> bool:
        return self.demo if self.demo is not None else not self.any_server_key()
