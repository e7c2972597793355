"""Cloudflare Workers AI: one synchronous call per image, answered in the v4 envelope
(docs/providers/cloudflare.md).

API reference: https://developers.cloudflare.com/workers-ai/models/flux-1-schnell/
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import ClassVar

import httpx

from ..errors import (
    AuthenticationFailed,
    ConfigurationError,
    InsufficientCredits,
    InvalidRequest,
    ProviderError,
    ProviderFailed,
)
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import CallContext, Option, Provider, ProviderCall, ProviderOutput, error_text
from ._contract import AnswerContract, Read

__all__ = ["ACCOUNT_ENV", "MAX_PROMPT_CHARS", "OUTPUT_SIZE", "Cloudflare"]

ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"
# "prompt": 1–2048 characters; our requests allow more (docs/providers/cloudflare.md#request).
MAX_PROMPT_CHARS = 2048
# No size field: the model makes one fixed size, 1024×1024 per secondary sources
# (docs/providers/cloudflare.md#sizes).
OUTPUT_SIZE = (1024, 1024)
# An account id is 32 hexadecimal characters (docs/providers/cloudflare.md#endpoint-and-auth). It goes
# into the URL path, so nothing else may pass: no "/", "?", "#", "%" or "..", and never a token (a token
# pasted there would travel in the path and be echoed in "could not route" errors).
_ACCOUNT_ID = re.compile(r"[0-9a-fA-F]{32}")
# demo.point_at fills each required option with "demo-<name>" for the emulator: accepted as well, as it
# is neither a token nor able to change the path.
_DEMO_ACCOUNT_ID = "demo-account_id"

# Error codes inside the v4 envelope's `errors[]` (docs/providers/cloudflare.md#errors).
# 3036 "You have used up your daily free allocation of 10,000 neurons" (a 429); a third-party client
# saw 4006 for the same (unconfirmed), so both, and the wording too.
_FREE_ALLOCATION_CODES = frozenset({3036, 4006})
_FREE_ALLOCATION_WORDS = ("free allocation", "neurons")
# 6003 "Invalid request headers" with 6111/6103 "Invalid format for Authorization/X-Auth-Key header":
# a malformed token is a 400, not a refused input.
_AUTH_HEADER_CODES = frozenset({6003, 6103, 6111})
# 5018/3041 "The account is not allowed to access this model", 3023 "Service unavailable for account",
# 5016 model terms not agreed (all 403).
_ACCOUNT_REFUSED_CODES = frozenset({3023, 3041, 5016, 5018})
# 7003 "Could not route to /client/v4/accounts/<id>/…, perhaps your object identifier is invalid?"
_NO_ROUTE_CODES = frozenset({7000, 7003})


class Cloudflare(Provider):
    name = "cloudflare"
    label = "Cloudflare Workers AI"
    model_id = "@cf/black-forest-labs/flux-1-schnell"
    docs_url = "https://developers.cloudflare.com/workers-ai/models/flux-1-schnell/"
    key_env = ("CLOUDFLARE_API_TOKEN",)
    default_base_url = "https://api.cloudflare.com"
    # The account id is the second secret, in the path (docs/providers/cloudflare.md#endpoint-and-auth).
    options = (
        Option(
            "account_id",
            (ACCOUNT_ENV,),
            "the Cloudflare account id that runs the model, 32 hexadecimal characters",
            required=True,
        ),
    )
    # steps: maximum 8 (the minimum is not documented: 1 is ours); no seed in the schema, so not claimed;
    # no size field, one fixed size; one image per call (docs/providers/cloudflare.md#request).
    capabilities: ClassVar[Capabilities] = Capabilities(
        min_size=OUTPUT_SIZE[0],
        max_size=OUTPUT_SIZE[0],
        size_multiple=OUTPUT_SIZE[0],
        min_steps=1,
        max_steps=8,
        max_images=1,
        seed=False,
        sizes="mapped",
    )
    # The model page's rounded unit prices; billing is in neurons ($0.011 per 1,000: 4.80 per tile,
    # 9.60 per step), which comes to ~3 % less (docs/providers/cloudflare.md#price).
    price = PriceRule(
        basis="per_tile_step",
        usd=Decimal("0.000053"),
        usd_per_step=Decimal("0.00011"),
        tile=512,
        approximate=True,
        source="https://developers.cloudflare.com/workers-ai/models/flux-1-schnell/",
        checked=date(2026, 12, 1),
        note="$0.000053 per 512×512 tile + $0.00011 per step (the page's rounding of the neuron price; "
        "exact: $0.000634 at 1024², 4 steps). The first 10,000 neurons a day (about 170 images) are free.",
    )
    # 402 keeps its HTTP meaning; Cloudflare's own "out of credit" is a 429 told apart by its code
    # (docs/providers/cloudflare.md#errors), read in error_for.
    credit_statuses = frozenset({402})
    # What `_read` reads: the v4 envelope's `result.image` (or a bare `image`), `success` and `errors`;
    # raw image bytes are tolerated (docs/providers/cloudflare.md#response).
    contract = AnswerContract(
        result=(
            Read("result.image", "text", alternatives=("image",)),
            Read("success", "boolean", required=False),
            Read("errors", "list", required=False),
        ),
        known=("messages",),
        image_body=True,
    )

    def output_size(self, request: GenerationRequest, settings: Settings) -> tuple[int, int]:
        return OUTPUT_SIZE  # docs/providers/cloudflare.md#sizes

    def validate(self, request: GenerationRequest, settings: Settings) -> None:
        super().validate(request, settings)
        if len(request.prompt) > MAX_PROMPT_CHARS:  # docs/providers/cloudflare.md#request
            raise InvalidRequest(
                f"{self.label} cannot take these settings: the prompt must be at most {MAX_PROMPT_CHARS} "
                f"characters (this one has {len(request.prompt)}).",
                field="prompt",
                provider=self.name,
            )

    def route(self, settings: Settings) -> str:
        return f"/client/v4/accounts/{self._account_id(settings)}/ai/run/{self.model_id}"

    def _account_id(self, settings: Settings) -> str:
        account = (self.option(settings, "account_id") or "").strip()
        if not account:
            raise ConfigurationError(f"{self.label} needs {ACCOUNT_ENV} (the account that runs the model).")
        if not (_ACCOUNT_ID.fullmatch(account) or account == _DEMO_ACCOUNT_ID):
            raise ConfigurationError(
                f"{ACCOUNT_ENV} is not a Cloudflare account id: it must be 32 hexadecimal characters "
                "(the dashboard shows it under Workers AI). Is it the API token? That goes in "
                f"{self.key_env[0]}."
            )
        return account

    def build_call(self, request: GenerationRequest, key: str, settings: Settings) -> ProviderCall:
        call = super().build_call(request, key, settings)
        if key.strip().lower() == self._account_id(settings).lower():
            raise ConfigurationError(
                f"{self.key_env[0]} holds the account id: set it to an API token with Workers AI permission."
            )
        return call

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        # `seed` is not in the schema and one schema version forbids extra fields, so it is not sent
        # (docs/providers/cloudflare.md#request); `steps`, not the older `num_steps`.
        return {"prompt": request.prompt, "steps": request.steps}

    async def run(self, ctx: CallContext, call: ProviderCall) -> ProviderOutput:
        ctx.progress("generating", None)
        response = await self.send_once(ctx, call, timeout=ctx.settings.request_timeout)
        return self._read(response, key=ctx.key)

    def parse(self, response: httpx.Response) -> ProviderOutput:
        return self._read(response, key="")

    def _read(self, response: httpx.Response, *, key: str) -> ProviderOutput:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith("image/"):
            # Other Workers AI image models answer raw image bytes over REST: tolerated, unconfirmed here
            # (docs/providers/cloudflare.md#response).
            return ProviderOutput(items=[response.content])
        body = self.read_json(response)
        if body.get("success") is False or body.get("errors"):
            raise self.error_for(response, key=key)  # a 200 can carry an error (#response)
        # The v4 envelope {"result": {"image"}}, or the model output {"image"} bare: the REST envelope of
        # this model is unconfirmed, so both (docs/providers/cloudflare.md#response).
        result = body.get("result", body)
        image = result.get("image") if isinstance(result, dict) else None
        if not isinstance(image, str) or not image.strip():
            raise self.malformed("no image in the answer (result.image)")
        return ProviderOutput(items=[image.strip()])

    def error_for(self, response: httpx.Response, *, key: str = "") -> ProviderError:
        """The v4 envelope's `errors[]` (code and message) first, then the status
        (docs/providers/cloudflare.md#errors)."""
        codes, said = _envelope_errors(response, key=key)
        detail = f" ({said})" if said else ""
        if codes & _FREE_ALLOCATION_CODES or any(word in said.lower() for word in _FREE_ALLOCATION_WORDS):
            return InsufficientCredits(
                self.label,
                f"the account is out of credits: the daily free allocation of neurons is used up{detail}. "
                "Top up by moving to Workers Paid, or wait for the reset at 00:00 UTC.",
            )
        if codes & _AUTH_HEADER_CODES:
            return AuthenticationFailed(
                self.label, f"the API key was refused{detail}. Check {self.key_env[0]} or the key you pasted."
            )
        if codes & _ACCOUNT_REFUSED_CODES:
            return AuthenticationFailed(
                self.label,
                f"the account may not run this model{detail}. Check {ACCOUNT_ENV} and that the token "
                "has Workers AI permission.",
            )
        if codes & _NO_ROUTE_CODES:
            where = f"{ACCOUNT_ENV} and {self.base_url_env()}"
            return ProviderFailed(self.label, f"the request could not be routed{detail}. Check {where}.")
        if not response.is_error:
            return ProviderFailed(self.label, f"the run failed{detail}. Try again or pick another provider.")
        # The template maps the status; it reads the envelope's words from `message`.
        readable = httpx.Response(
            response.status_code,
            headers={name: response.headers[name] for name in ("retry-after",) if name in response.headers},
            json={"message": said},
        )
        return super().error_for(readable, key=key)


def _envelope_errors(response: httpx.Response, *, key: str) -> tuple[frozenset[int], str]:
    """The codes and words of `errors[]` (with any `error_chain`), or the template's reading of a
    body that is not the envelope. Codes are ints in the error table, strings in the API schema:
    both (docs/providers/cloudflare.md#errors)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return frozenset(), error_text(response, key=key)
    codes: set[int] = set()
    parts: list[str] = []
    for entry in _flatten(errors):
        code, message = entry.get("code"), entry.get("message")
        if isinstance(code, int | str) and str(code).isdigit():
            codes.add(int(code))
        parts.append(_describe(code, message))
    words = "; ".join(part for part in parts if part)
    # error_text shortens, flattens and blanks the key, as for every provider.
    return frozenset(codes), error_text(
        httpx.Response(response.status_code, json={"message": words}), key=key
    )


def _flatten(errors: list[object]) -> list[dict[str, object]]:
    """Each error, then its `error_chain` (how Cloudflare explains a 6003)."""
    flat: list[dict[str, object]] = []
    for entry in errors:
        if not isinstance(entry, dict):
            continue
        flat.append(entry)
        chain = entry.get("error_chain")
        if isinstance(chain, list):
            flat.extend(item for item in chain if isinstance(item, dict))
    return flat


def _describe(code: object, message: object) -> str:
    """ "3036: You have used up…"; an error may come without a code (docs/providers/cloudflare.md#errors)."""
    text = message.strip() if isinstance(message, str) else ""
    if code is None or code == "":
        return text
    return f"{code}: {text}" if text else str(code)
