"""The template every provider follows. The flow lives here; each provider overrides a few hooks.

    build_call(request, key, settings)   pure: URL + headers + JSON body      (usually not overridden)
      route(settings)                    path appended to the base URL        (override)
      auth_headers(key)                  how the key is sent                  (override if not Bearer)
      payload(request, settings)         the provider's own JSON body         (override)
    run(ctx, call)                       send once, then `parse`              (override for async jobs)
      request_body(payload)              the JSON value sent for the payload  (override if it is wrapped)
      parse(response)                    body -> ProviderOutput               (override)
    error_for(response)                  HTTP error -> our exception tree     (usually not overridden;
                                                                              set `credit_statuses`)
Provider modules hold every quirk of their API, each with a comment citing the doc it comes from.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import ClassVar

import httpx
from pydantic import SecretStr

from ..errors import (
    AuthenticationFailed,
    ConfigurationError,
    InputRejected,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    MissingKey,
    ProviderError,
    ProviderFailed,
    ProviderTimeout,
    RateLimited,
)
from ..http import TooLarge, parse_retry_after, read_capped, same_origin
from ..models import Capabilities, GenerationRequest, Stage
from ..pricing import PriceRule, with_override
from ..settings import Settings
from ._contract import AnswerContract, SeenAnswer

__all__ = [
    "CallContext", "Option", "OutputItem", "Provider", "ProviderCall", "ProviderOutput", "error_text",
    "reported_cost",
]  # fmt: skip

#: An image as a provider hands it over: raw bytes, or a string that is a URL, a data URI or base64.
OutputItem = bytes | str


@dataclass(frozen=True)
class ProviderCall:
    """A request ready to send. Pure data, so payload tests need no network. `headers` hold the key:
    never log this object."""

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, object]

    def __repr__(self) -> str:
        return f"ProviderCall({self.method} {self.url}, headers=[redacted], json={self.json!r})"


@dataclass
class ProviderOutput:
    """What a provider answered, before the shared code turns items into checked PNGs."""

    items: list[OutputItem]
    seed: int | None = None
    reported_cost_usd: Decimal | None = None
    request_id: str | None = None
    remaining_credits: str | None = None
    #: For asynchronous jobs: about how long the job took at the provider (feeds the poll schedule).
    job_s: float | None = None


@dataclass
class CallContext:
    """Everything `run` needs besides the call itself."""

    client: httpx.AsyncClient
    settings: Settings
    key: str
    progress: Callable[[Stage, str | None], None] = field(default=lambda stage, detail: None)
    #: How long this provider's jobs took lately, so polling can be dense right when one should finish.
    expected_job_s: float | None = None
    #: Set once the provider accepted the billable call: a failure after that may have been billed.
    accepted: bool = False
    #: The most an answer to this request may take (http.answer_cap); reading stops there.
    max_answer_bytes: int = 64 * 1_048_576
    #: Injected so tests of polling loops do not sleep for real.
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    #: Sees every successful answer as received (the live check's record, live_check.py); None
    #: everywhere else, so the normal path keeps nothing.
    tap: Callable[[SeenAnswer], None] | None = None


@dataclass(frozen=True)
class Option:
    """A setting a provider needs besides its key (e.g. an account id), read from the environment
    the same way (settings.ProviderEnvironment)."""

    name: str
    #: Variables that may hold it, first one preferred.
    env: tuple[str, ...]
    help: str
    #: Needed to run at all (the provider is not configured without it).
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()


#: A key goes into an HTTP header: printable ASCII without spaces.
_KEY_TEXT = re.compile(r"[\x21-\x7e]{1,512}")


class Provider(ABC):
    """One provider, declared once: everything the rest of the product needs to know about it."""

    #: Registry key and id everywhere (CLI, API, settings), e.g. "segmind".
    name: ClassVar[str]
    #: Shown to people, e.g. "Segmind".
    label: ClassVar[str]
    #: The model as the provider names it.
    model_id: ClassVar[str]
    docs_url: ClassVar[str]
    #: Environment variables that may hold the server key, first one preferred.
    key_env: ClassVar[tuple[str, ...]]
    #: Other settings it reads (account ids, an endpoint choice).
    options: ClassVar[tuple[Option, ...]] = ()
    #: The API origin; `<NAME>_BASE_URL` overrides it (the emulator, a proxy).
    default_base_url: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: What one run costs (pricing.py); None: unknown, shown as such.
    price: ClassVar[PriceRule | None] = None
    #: HTTP statuses that mean "out of credits" at this provider (Atlas 402, Segmind 406).
    credit_statuses: ClassVar[frozenset[int]] = frozenset({402})
    #: The fields `parse` reads from a successful answer (_contract.py), for the live check.
    contract: ClassVar[AnswerContract | None] = None
    #: The prefix Hugging Face's router puts before this provider's own route ("/together"), if it
    #: routes this provider: the same call then goes through the router, billed to a Hugging Face
    #: account (flux_playground/hf_router.py, docs/providers/hf-router.md). None: not routed.
    hf_route: ClassVar[str | None] = None

    # --- configuration -------------------------------------------------------------------------

    @classmethod
    def base_url_env(cls) -> str:
        return f"{cls.name.upper().replace('-', '_')}_BASE_URL"

    def get_capabilities(self, settings: Settings) -> Capabilities:
        """What this provider accepts under these settings. Override when an option changes it."""
        return self.capabilities

    def answer_contract(self, settings: Settings) -> AnswerContract | None:
        """What this provider's answers hold under these settings. Override when an option changes it."""
        return self.contract

    def base_url(self, settings: Settings) -> str:
        return (settings.provider(self.name).base_url or self.default_base_url).rstrip("/")

    def own_url(self, url: str, settings: Settings) -> bool:
        """Whether `url` (a poll or result URL the provider handed back) is on this provider's
        configured origin: the key is sent nowhere else."""
        return same_origin(url, self.base_url(settings))

    def option(self, settings: Settings, name: str) -> str | None:
        declared = next(o for o in self.options if o.name == name)
        value = settings.provider(self.name).options.get(name) or declared.default
        if value is not None and declared.choices and value not in declared.choices:
            raise ConfigurationError(
                f"{declared.env[0]}={value!r} is not one of: {', '.join(declared.choices)} ({declared.help})."
            )
        return value

    def server_key(self, settings: Settings) -> SecretStr | None:
        key = settings.provider(self.name).api_key
        return key if key is not None and key.get_secret_value().strip() else None

    def missing(self, settings: Settings, *, with_own_key: bool = False) -> list[str]:
        """The variables still to set before this provider runs on the server's configuration (the
        key is not needed `with_own_key`: the person pasted one)."""
        needed = [] if with_own_key or self.server_key(settings) else [" or ".join(self.key_env)]
        for option in self.options:
            if option.required and not self.option(settings, option.name):
                needed.append(" or ".join(option.env))
        return needed

    def configured(self, settings: Settings) -> bool:
        return not self.missing(settings)

    def resolve_key(self, settings: Settings, user_key: SecretStr | None = None) -> str:
        """The person's own key if they gave one, else the server's; MissingKey names the variable."""
        own = user_key.get_secret_value().strip() if user_key is not None else ""
        if own:
            if not _KEY_TEXT.fullmatch(own):
                raise InvalidRequest(
                    f"The {self.label} key you pasted is not valid: a key is letters, digits and a "
                    "few symbols, with no spaces or accents. Copy it again from the provider.",
                    field="keys",
                    provider=self.name,
                )
            return own
        server = self.server_key(settings)
        if server is None:
            raise MissingKey(
                self.label, self.key_env, hf_routed=self.hf_route is not None, sign_in=settings.hf_sign_in
            )
        key = server.get_secret_value().strip()
        if not _KEY_TEXT.fullmatch(key):
            raise ConfigurationError(
                f"The server's {self.label} key ({self.key_env[0]}) is not valid: it has spaces or "
                "characters a key never has. Set it again."
            )
        required = [o for o in self.options if o.required and not self.option(settings, o.name)]
        if required:
            raise ConfigurationError(
                f"{self.label} also needs {' and '.join(o.env[0] for o in required)} "
                f"({'; '.join(o.help for o in required)})."
            )
        return key

    def price_rule(self, settings: Settings) -> PriceRule | None:
        """The declared price, with the owner's FLUX_PLAYGROUND_PRICES override put in."""
        override = settings.prices.get(self.name)
        return self.price if override is None else with_override(self.price, self.name, override)

    def output_size(self, request: GenerationRequest, settings: Settings) -> tuple[int, int]:
        """The size this provider makes for `request` (override where it cannot take any size)."""
        return request.width, request.height

    def shape(self, request: GenerationRequest, settings: Settings) -> GenerationRequest:
        """The request as this provider gets it: a sampler or scheduler only where it takes one.

        The page labels those controls with the providers that use them, so dropping them here is
        announced, not silent; every other setting is sent as is and refused loudly if need be.
        """
        caps = self.get_capabilities(settings)
        update: dict[str, object] = {}
        if not caps.samplers and request.sampler is not None:
            update["sampler"] = None
        if not caps.schedulers and request.scheduler is not None:
            update["scheduler"] = None
        return request.model_copy(update=update) if update else request

    def estimate(self, request: GenerationRequest, settings: Settings) -> Decimal | None:
        """What `request` (as shaped for this provider) costs here; None: unknown."""
        rule = self.price_rule(settings)
        if rule is None:
            return None
        width, height = self.output_size(request, settings)
        return rule.cost(width=width, height=height, steps=request.steps, images=request.num_images)

    def validate(self, request: GenerationRequest, settings: Settings) -> None:
        """Raise InvalidRequest naming this provider, the field and the allowed values."""
        problems = self.get_capabilities(settings).problems(request)
        if problems:
            detail = "; ".join(p.message for p in problems)
            raise InvalidRequest(
                f"{self.label} cannot take these settings: {detail}.",
                field=problems[0].field,
                provider=self.name,
            )

    # --- building the request ------------------------------------------------------------------

    @abstractmethod
    def route(self, settings: Settings) -> str:
        """The documented path appended to the base URL."""

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @abstractmethod
    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        """The provider's JSON body. The request's seed is already resolved."""

    def build_call(self, request: GenerationRequest, key: str, settings: Settings) -> ProviderCall:
        headers = {"Content-Type": "application/json", **self.auth_headers(key)}
        return ProviderCall(
            "POST", self.base_url(settings) + self.route(settings), headers, self.payload(request, settings)
        )

    def request_body(self, payload: dict[str, object]) -> object:
        """The JSON value sent for `payload`: the payload itself, unless the API wants it wrapped (Runware
        takes a JSON array of tasks). `ProviderCall.json` and the result's metadata keep the payload."""
        return payload

    # --- sending and reading -------------------------------------------------------------------

    async def run(self, ctx: CallContext, call: ProviderCall) -> ProviderOutput:
        """Send the billable call once (never retried) and parse the answer."""
        ctx.progress("generating", None)
        response = await self.send_once(ctx, call, timeout=ctx.settings.request_timeout)
        return self.parse(response)

    async def send_once(self, ctx: CallContext, call: ProviderCall, *, timeout: float) -> httpx.Response:
        """POST exactly once; turn every transport failure and HTTP error into our exceptions."""
        request = ctx.client.build_request(
            call.method, call.url, headers=call.headers, json=self.request_body(call.json)
        )
        try:
            async with asyncio.timeout(timeout):
                streamed = await ctx.client.send(request, stream=True)
                try:
                    body = await read_capped(streamed, ctx.max_answer_bytes)
                finally:
                    await streamed.aclose()
            response = httpx.Response(
                streamed.status_code, headers=streamed.headers, content=body, request=request
            )
        except TooLarge as exc:
            # Read this far, the provider answered: it may have billed.
            too_large = self.malformed(f"the answer is {exc}")
            too_large.billed = True
            raise too_large from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            timed_out = ProviderTimeout(
                self.label, f"no answer within {timeout:g} s. Try again later or pick another provider."
            )
            # The provider may still have run (and billed) the request we stopped waiting for.
            timed_out.billed = not isinstance(exc, httpx.ConnectTimeout)
            raise timed_out from exc
        except httpx.TransportError as exc:
            failed = ProviderFailed(
                self.label,
                f"the connection failed ({type(exc).__name__}). The provider may be down; "
                "try again in a minute or pick another provider.",
            )
            failed.billed = not isinstance(exc, httpx.ConnectError)  # a dropped answer may be billed
            raise failed from exc
        if response.is_error:
            # Segmind: "Not billed on non-200" (docs/providers/segmind.md#errors); assumed elsewhere.
            raise self.error_for(response, key=ctx.key)
        ctx.accepted = True
        if ctx.tap is not None:
            ctx.tap(SeenAnswer.of(self.name, "call", response))
        return response

    @abstractmethod
    def parse(self, response: httpx.Response) -> ProviderOutput:
        """Read a successful answer. Raise MalformedResponse when it is not what the docs promise."""

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        status = response.status_code
        said = error_text(response, key=key)
        detail = f" ({said})" if said else ""
        if status in (401, 403):
            return AuthenticationFailed(
                self.label,
                f"the API key was refused{detail}. Check {self.key_env[0]} or the key you pasted.",
            )
        if status in self.credit_statuses:
            return InsufficientCredits(
                self.label, f"the account is out of credits{detail}. Top up at the provider, then retry."
            )
        if status == 429:
            retry = self.retry_after(response)
            when = f"in {retry:g} s" if retry is not None else "in a little while"
            return RateLimited(self.label, f"rate limited{detail}. Try again {when}.", retry_after=retry)
        if status in (400, 422):
            return InputRejected(self.label, f"the provider rejected these settings{detail}.")
        if status == 404:
            return ProviderFailed(
                self.label, f"endpoint not found (HTTP 404){detail}. Check {self.base_url_env()}."
            )
        return ProviderFailed(
            self.label,
            f"the provider failed (HTTP {status}){detail}. Try again in a minute or pick another provider.",
        )

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds until a rate limit lifts. Override for providers with their own header."""
        return parse_retry_after(response.headers.get("retry-after"))

    def malformed(self, what: str) -> MalformedResponse:
        return MalformedResponse(
            self.label, f"unexpected answer: {what}. Try again or pick another provider."
        )

    def read_json(self, response: httpx.Response) -> dict[str, object]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self.malformed("the body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise self.malformed("the body is not a JSON object")
        return body


def reported_cost(value: object, *, zero_is_a_charge: bool = False) -> Decimal | None:
    """A charge a provider reports, in USD, with its exact digits; None for anything that is not a
    finite, non-negative number. A zero is a charge of $0 only when the provider says the job
    succeeded (`zero_is_a_charge`): otherwise it is the placeholder of an answer that has no cost."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    if not cost.is_finite() or cost < 0 or (cost == 0 and not zero_is_a_charge):
        return None
    return cost


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def error_text(response: httpx.Response, *, key: str = "", limit: int = 200) -> str:
    """The provider's own error message, from msg/message/error/detail.error/error.message.

    Short, single-line, and with the key blanked out in case a provider echoes it.
    """
    text = ""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        for name in ("msg", "message", "error", "detail"):
            value = body.get(name)
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get("msg") or value[0].get("message")  # FastAPI-style validation list
            if isinstance(value, dict):
                value = value.get("error") or value.get("message")
            if isinstance(value, str) and value.strip():
                text = value
                break
    elif "html" not in response.headers.get("content-type", ""):
        text = response.text
    text = _CONTROL.sub(" ", text).strip()
    if key:
        text = text.replace(key, "[redacted]")
    return text[:limit] + ("…" if len(text) > limit else "")
