"""OpenAI-style image endpoints: `POST {origin}{route}` with `{model, prompt, n, size | width+height, ...}`,
answered with `{"data": [{"b64_json" | "url", ...}]}`. One client, configured per provider by a small
`ImagesStyle` (docs/providers/together.md, nscale.md, deepinfra.md; PROVIDERS-NEXT.md §3.3):

    Together                 ImagesStyle(size_style="width_height", steps_field="steps", seed_field="seed",
                                         response_format="base64")
    DeepInfra, OpenAI mode   ImagesStyle(route="/v1/openai/images/generations")   (size "WxH", b64_json)

An app's owner adds any other such endpoint (Nscale, a self-hosted FLUX server) with configuration
alone: FLUX_PLAYGROUND_OPENAI_PROVIDERS holds a JSON list of `OwnerEndpoint`s, each registered as a
provider when the registry is imported (`owner_providers`), so its key variable, `<ID>_BASE_URL`, the
CLI, the page, prices and the spend guard see it like any other provider. A mistake there is one
sentence naming the variable and what to fix (ConfigurationError), never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigurationError
from ..models import Capabilities, GenerationRequest
from ..pricing import PriceRule
from ..settings import Settings
from ._base import OutputItem, Provider, ProviderOutput
from ._contract import AnswerContract, Read

__all__ = [
    "IMAGES_CONTRACT", "OWNER_VARIABLE", "ImagesStyle", "OpenAIImages", "OwnerEndpoint", "images_contract",
    "owner_providers", "read_images",
]  # fmt: skip

#: The owner's endpoints, as a JSON list of OwnerEndpoint (README, "OpenAI-compatible endpoints").
OWNER_VARIABLE = "FLUX_PLAYGROUND_OPENAI_PROVIDERS"

#: A JSON field name a provider reads, e.g. "steps" or "num_inference_steps".
_FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: The fields the client itself sets; constant `extra` fields may not replace them.
_CLIENT_FIELDS = frozenset({"model", "prompt", "n", "size", "width", "height", "response_format"})

JSONScalar = str | int | float | bool | None


class ImagesStyle(BaseModel):
    """How one OpenAI-style endpoint wants its request: which size fields, which steps and seed fields
    (None: it takes none, and the page says so), which `response_format` value means base64."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: "size": `"size": "WxH"` (OpenAI, DeepInfra, Nscale); "width_height": two integers (Together).
    size_style: Literal["size", "width_height"] = "size"
    steps_field: str | None = Field(None, pattern=_FIELD_NAME)
    seed_field: str | None = Field(None, pattern=_FIELD_NAME)
    #: The value that asks for base64 items: OpenAI's "b64_json", or Together's "base64".
    response_format: Literal["b64_json", "base64"] = "b64_json"
    #: The path appended to the provider's origin.
    route: str = Field("/v1/images/generations", pattern=r"^/[A-Za-z0-9._~/-]*$")
    #: Constant fields sent with every request (e.g. {"response_extension": "png"}).
    extra: dict[str, JSONScalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _extra_sets_nothing_of_ours(self) -> ImagesStyle:
        ours = _CLIENT_FIELDS | {name for name in (self.steps_field, self.seed_field) if name}
        clash = sorted(ours & set(self.extra))
        if clash:
            raise ValueError(f"extra may not set {', '.join(clash)}: the client sets those itself")
        return self

    def capabilities(self, limits: Capabilities) -> Capabilities:
        """`limits` with steps and seed claimed only where this style sends them: a control the
        endpoint never receives is not one it honours."""
        return limits.model_copy(
            update={"steps": self.steps_field is not None, "seed": self.seed_field is not None}
        )

    def payload(self, request: GenerationRequest, model: str) -> dict[str, object]:
        """The JSON body; the model id last, so nothing overrides it."""
        body: dict[str, object] = {**self.extra, "prompt": request.prompt, "n": request.num_images}
        if self.size_style == "size":
            body["size"] = f"{request.width}x{request.height}"
        else:
            body |= {"width": request.width, "height": request.height}
        if self.steps_field is not None:
            body[self.steps_field] = request.steps
        if self.seed_field is not None and request.seed is not None:
            body[self.seed_field] = request.seed
        body["response_format"] = self.response_format
        body["model"] = model
        return body


def images_contract(*known: str) -> AnswerContract:
    """What `read_images` reads, and the fields of OpenAI's images answer it does not; `known`: more
    documented fields of one provider's answer."""
    return AnswerContract(
        result=(
            Read("data", "list"),
            Read("data[].b64_json", "text", alternatives=("data[].url",)),
            Read("data[].index", "integer", required=False),
            Read("id", "text", required=False),
        ),
        known=(
            "created",
            "data[].revised_prompt",
            "usage",
            "background",
            "output_format",
            "quality",
            "size",
            *known,
        ),
    )


IMAGES_CONTRACT = images_contract()


def read_images(provider: Provider, body: Mapping[str, object]) -> ProviderOutput:
    """`{"data": [{"b64_json" | "url", ...}]}` -> the images, in `index` order where items carry one
    (Together's do). Either field may be null (DeepInfra's OpenAPI): such items are skipped, and an
    answer with no image at all is an error."""
    data = body.get("data")
    entries = [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []
    if all(isinstance(entry.get("index"), int) for entry in entries):
        entries.sort(key=lambda entry: int(entry["index"]))
    items: list[OutputItem] = []
    for entry in entries:
        value = entry.get("b64_json") or entry.get("url")
        if isinstance(value, str) and value:
            items.append(value)
    if not items:
        raise provider.malformed("no b64_json or url image in `data`")
    request_id = body.get("id")  # Together's ImageResponse has one (docs/providers/together.md#response)
    return ProviderOutput(items=items, request_id=request_id if isinstance(request_id, str) else None)


class OpenAIImages(Provider):
    """A provider whose API is an OpenAI-style images endpoint, described by `style`."""

    style: ClassVar[ImagesStyle]
    contract = IMAGES_CONTRACT

    def route(self, settings: Settings) -> str:
        return self.style.route

    def payload(self, request: GenerationRequest, settings: Settings) -> dict[str, object]:
        return self.style.payload(request, self.model_id)

    def parse(self, response: httpx.Response) -> ProviderOutput:
        return read_images(self, self.read_json(response))


# --- endpoints the app's owner configures ----------------------------------------------------------


class OwnerEndpoint(ImagesStyle):
    """One entry of FLUX_PLAYGROUND_OPENAI_PROVIDERS: an ImagesStyle plus who the provider is."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=40)
    label: str = Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f\x7f]+$")
    #: Its origin (and path prefix, e.g. https://router.huggingface.co/nscale); `route` is appended.
    base_url: str
    model: str = Field(min_length=1, max_length=200)
    #: The variable(s) holding its key, first one preferred; its own, never another provider's.
    key_env: tuple[str, ...]
    docs_url: str | None = Field(None, pattern=r"^https?://")
    #: What one run costs (pricing.PriceRule fields); absent: unknown, shown as such.
    price: PriceRule | None = None
    # What it accepts; unknown for most endpoints, so the defaults refuse nothing the page offers
    # except several images per run, which an endpoint may bill and not return.
    min_size: int = Field(256, ge=64, le=2048)
    max_size: int = Field(2048, ge=64, le=4096)
    size_multiple: int = Field(8, ge=1, le=256)
    max_images: int = Field(1, ge=1, le=4)
    #: Its prefix on Hugging Face's router ("/nscale"), if Hugging Face routes it: it can then run on
    #: a visitor's Hugging Face account too (hf_router.py, docs/providers/hf-router.md).
    hf_route: str | None = Field(None, pattern=r"^/[a-z0-9-]+$", max_length=40)

    @field_validator("key_env", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("key_env")
    @classmethod
    def _variable_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in value):
            raise ValueError("must be one or more variable names in capitals, e.g. NSCALE_API_KEY")
        if any(name.startswith("FLUX_PLAYGROUND_") for name in value):
            raise ValueError("must not be one of the app's own FLUX_PLAYGROUND_ settings")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must start with https:// (or http://) and name a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must be an origin (and path) without credentials, query or fragment")
        return value

    @field_validator("price")
    @classmethod
    def _priced(cls, value: PriceRule | None) -> PriceRule | None:
        if value is not None and value.basis != "table" and "usd" not in value.model_fields_set:
            raise ValueError('needs "usd" (an unknown price is left out, never $0)')
        return value


def owner_provider(endpoint: OwnerEndpoint) -> OpenAIImages:
    """A provider made from the owner's entry, as if written as a module."""

    class Configured(OpenAIImages):
        name = endpoint.id
        label = endpoint.label
        model_id = endpoint.model
        docs_url = endpoint.docs_url or endpoint.base_url
        key_env = endpoint.key_env
        default_base_url = endpoint.base_url
        style = endpoint
        capabilities = endpoint.capabilities(
            Capabilities(
                min_size=endpoint.min_size,
                max_size=endpoint.max_size,
                size_multiple=endpoint.size_multiple,
                min_steps=1,
                max_steps=50,
                max_images=endpoint.max_images,
            )
        )
        price = endpoint.price
        hf_route = endpoint.hf_route

    Configured.__name__ = Configured.__qualname__ = f"Owner_{endpoint.id.replace('-', '_')}"
    return Configured()


class _OwnerVariable(BaseSettings):
    """FLUX_PLAYGROUND_OPENAI_PROVIDERS, read from the environment and `.env` as Settings reads them
    (it is needed before Settings, which reads every registered provider's variables)."""

    model_config = SettingsConfigDict(env_prefix="FLUX_PLAYGROUND_", env_file=".env", extra="ignore")

    openai_providers: str = ""


def owner_providers(taken: Mapping[str, Provider], text: str | None = None) -> list[OpenAIImages]:
    """The owner's endpoints (`text`, or FLUX_PLAYGROUND_OPENAI_PROVIDERS) as providers, checked
    against the `taken` ones: ids and key variables must be new. ConfigurationError says what to fix."""
    text = _OwnerVariable().openai_providers if text is None else text
    if not text.strip():
        return []
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _problem(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(entries, list):
        raise _problem('must be a JSON list of endpoints, e.g. [{"id": "nscale", ...}]')
    found: list[OpenAIImages] = []
    for number, entry in enumerate(entries, start=1):
        provider = owner_provider(_endpoint(number, entry))
        _check_new(number, provider, {**taken, **{p.name: p for p in found}})
        found.append(provider)
    return found


def _endpoint(number: int, entry: object) -> OwnerEndpoint:
    try:
        return OwnerEndpoint.model_validate(entry)
    except ValidationError as exc:
        raise _problem(_described(exc.errors(include_url=False)[0]), number, entry) from None


#: What a field must look like, for pattern mismatches (pydantic would quote the regular expression).
_SHAPES = {
    "id": 'must be lower-case letters, digits and hyphens, e.g. "nscale"',
    "docs_url": "must start with https:// (or http://)",
    "label": "must be one line of text",
    "route": 'must be a path starting with "/", e.g. "/v1/images/generations"',
    "steps_field": 'must be a JSON field name, e.g. "steps"',
    "seed_field": 'must be a JSON field name, e.g. "seed"',
}


def _described(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    field = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "missing":
        return f"{where} is missing"
    if error["type"] == "model_type":
        return "must be a JSON object with id, label, base_url, model and key_env"
    if error["type"] == "extra_forbidden":
        return f"{where} is not a known field (check the spelling)"
    if error["type"] == "string_pattern_mismatch" and field in _SHAPES:
        return f"{field} {_SHAPES[field]}"
    message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return f"{where} {message}" if where else message


def _check_new(number: int, provider: Provider, taken: Mapping[str, Provider]) -> None:
    if provider.name in taken:
        raise _problem(f'id "{provider.name}" is already a provider: choose another id', number)
    # A key goes only to its own provider: a variable another provider reads would send that
    # provider's key to this origin.
    read = {variable: other.label for other in taken.values() for variable in _variables(other)}
    for variable in provider.key_env:
        if variable in read:
            raise _problem(
                f"key_env {variable} is read by {read[variable]}: give this endpoint its own", number
            )


def _variables(provider: Provider) -> Collection[str]:
    return {*provider.key_env, provider.base_url_env(), *(v for o in provider.options for v in o.env)}


def _problem(what: str, number: int | None = None, entry: object = None) -> ConfigurationError:
    which = ""
    if number is not None:
        named = entry.get("id") if isinstance(entry, dict) else None
        which = f", entry {number}" + (f' ("{named}")' if isinstance(named, str) else "")
    return ConfigurationError(f"{OWNER_VARIABLE}{which}: {what}; fix it in the environment or the .env file.")
