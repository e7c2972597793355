"""Every failure a person can cause or meet, as one small tree the UI, CLI and API can tell apart.

    PlaygroundError                 .message says what happened and what to do
      InvalidRequest                bad input, or a setting a provider cannot honour (ValueError)
      ConfigurationError            missing key, unknown provider, bad setting; names the variable to set
        MissingKey
      LimitExceeded                 the owner's spend caps or rate limits refused the run before any call
      RouteFailed                   no provider an automatic route tried gave an image (route.py)
      ProviderError                 anything a provider did; carries the provider's name
        AuthenticationFailed        401/403: the key is wrong or expired
        InsufficientCredits         Atlas 402, Segmind 406: top up
        RateLimited                 429; .retry_after in seconds when the provider said
        InputRejected               400/422: the provider refused these settings
        ProviderFailed              5xx, a failed job, a dropped connection
        ProviderTimeout             no answer in time (also a TimeoutError)
        MalformedResponse           an answer we cannot read (also: not an image, unsafe output URL)

Messages never contain a key: they are built from our own words plus a short, sanitised excerpt of
the provider's error text.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "InputRejected",
    "InsufficientCredits",
    "InvalidRequest",
    "LimitExceeded",
    "MalformedResponse",
    "MissingKey",
    "PlaygroundError",
    "ProviderError",
    "ProviderFailed",
    "ProviderTimeout",
    "RateLimited",
    "RouteFailed",
]


class PlaygroundError(Exception):
    """Base class: `message` is complete and safe to show to a person."""

    #: Whether the provider may have billed the run that failed (spend accounting uses it).
    billed: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(PlaygroundError, ValueError):
    """The request is invalid, or one provider cannot honour it.

    `field` names the offending field when there is one, `provider` the provider that refused it.
    """

    def __init__(self, message: str, *, field: str | None = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.provider = provider


class ConfigurationError(PlaygroundError):
    """The app is not set up for this: a missing key, an unknown provider name, a bad setting."""


class MissingKey(ConfigurationError):
    def __init__(
        self,
        provider_label: str,
        env_vars: tuple[str, ...],
        *,
        hf_routed: bool = False,
        sign_in: bool = False,
    ) -> None:
        names = " or ".join(env_vars)
        # A provider Hugging Face routes also runs on the person's own Hugging Face account (hf_router.py);
        # signing in offers it only where the Space asks for that permission (`sign_in`).
        how = "sign in with Hugging Face, or send your hf_ token" if sign_in else "send your hf_ token"
        also = f"; or run it on your Hugging Face account: {how} (API: oauth_token; CLI: --via hf)"
        super().__init__(
            f"No API key for {provider_label}: set {names} in the environment, .env or the Space's "
            f"secrets (on the page you can also paste your own key{also if hf_routed else ''})."
        )
        self.env_vars = env_vars


class LimitExceeded(PlaygroundError):
    """A spend cap or rate limit of this app refused the run before any provider was called."""


class RouteFailed(PlaygroundError):
    """An automatic route ended without an image; the message has each provider's words."""


class ProviderError(PlaygroundError):
    """Something the provider did. `provider` is its label, e.g. "Segmind"."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class AuthenticationFailed(ProviderError):
    pass


class InsufficientCredits(ProviderError):
    pass


class RateLimited(ProviderError):
    def __init__(self, provider: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class InputRejected(ProviderError):
    pass


class ProviderFailed(ProviderError):
    pass


class ProviderTimeout(ProviderError, TimeoutError):
    pass


class MalformedResponse(ProviderError):
    pass
