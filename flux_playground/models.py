"""The typed edges of the backend: one request model for every provider, and what comes back.

Field limits and descriptions live here once; the CLI help, the page's sliders and the API schema
read them from the fields instead of repeating numbers.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidRequest
from .route_models import RouteReport

__all__ = [
    "MAX_SEED",
    "Capabilities",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "Problem",
    "Stage",
    "parse_request",
]

#: Seeds are drawn from [0, MAX_SEED]; every provider we support accepts a signed 32-bit seed.
MAX_SEED = 2**31 - 1
MAX_PROMPT_CHARS = 4000

Stage = Literal["queued", "submitting", "generating", "downloading", "saving", "done", "failed"]


class GenerationRequest(BaseModel):
    """What a person asks for. Provider-neutral: each provider maps it to its own payload."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What the image should show.",
    )
    width: int = Field(1024, ge=256, le=2048, description="Image width in pixels.")
    height: int = Field(1024, ge=256, le=2048, description="Image height in pixels.")
    steps: int = Field(
        4, ge=1, le=50, description="Denoising steps. FLUX.1 [schnell] is distilled for 1 to 4."
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seed for reproducible images; empty for a random one."
    )
    num_images: int = Field(1, ge=1, le=4, description="Images per provider in one run.")
    sampler: str | None = Field(None, max_length=64, description="Sampler (only some providers).")
    scheduler: str | None = Field(None, max_length=64, description="Scheduler (only some providers).")

    @field_validator("prompt")
    @classmethod
    def _printable_prompt(cls, value: str) -> str:
        # Control characters (other than line breaks and tabs) are never meaningful in a prompt and
        # some providers reject them with opaque errors; say so here instead.
        if any(ord(c) < 32 and c not in "\n\r\t" for c in value) or "\x7f" in value:
            raise ValueError("contains control characters; remove them")
        return value

    @field_validator("sampler", "scheduler", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


#: How the fields are called where people set them (the page's labels, the CLI's flags).
_FIELD_NAMES = {
    "prompt": "The prompt",
    "width": "Width",
    "height": "Height",
    "steps": "Steps",
    "seed": "The seed",
    "num_images": "Images per provider",
    "sampler": "The sampler",
    "scheduler": "The scheduler",
}


def parse_request(fields: dict[str, object]) -> GenerationRequest:
    """Build a request from loose input (CLI flags, form fields, API JSON) or raise one InvalidRequest
    whose message lists every problem in plain words, one sentence each."""
    try:
        return GenerationRequest.model_validate(fields)
    except ValidationError as exc:
        problems = [_sentence(error) for error in exc.errors(include_url=False, include_input=False)]
        first = exc.errors()[0]["loc"]
        raise InvalidRequest(" ".join(problems), field=str(first[0]) if first else None) from None


def _sentence(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"]) or "request"
    if error["type"] == "string_too_short" and name == "prompt":
        return "Write a prompt: describe the image you want."
    if error["type"] == "extra_forbidden":
        unknown = str(error["loc"][0]) if error["loc"] else ""
        return f"Unknown setting {unknown[:40]!r} (check the spelling)."
    if error["type"] == "missing":
        return f"{_FIELD_NAMES.get(name, name)} is missing."
    message = str(error["msg"]).removeprefix("Value error, ").split(", unable to parse")[0]
    for pydantic_words, ours in (("Input should be", "must be"), ("String should", "must")):
        message = message.replace(pydantic_words, ours)
    return f"{_FIELD_NAMES.get(name, name)} {message}".rstrip(".") + "."


class Problem(BaseModel):
    """Why one provider cannot take one field of a request."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class Capabilities(BaseModel):
    """What a provider's API accepts, declared once and used for validation, the UI and the docs."""

    model_config = ConfigDict(frozen=True)

    min_size: int
    max_size: int
    size_multiple: int
    min_steps: int
    max_steps: int
    max_images: int
    seed: bool = True
    samplers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    #: Controls the provider accepts but ignores are not listed as supported: an ignored control is a lie.
    steps: bool = True
    #: "exact": it makes width × height, within the limits above. "mapped": it takes an aspect ratio
    #: or makes one fixed size, so any requested size is accepted and `Provider.output_size` says what
    #: comes back (shown before the run; the size returned is read from the image).
    sizes: Literal["exact", "mapped"] = "exact"

    def problems(self, request: GenerationRequest) -> list[Problem]:
        found: list[Problem] = []
        for name in ("width", "height") if self.sizes == "exact" else ():
            value = getattr(request, name)
            if not self.min_size <= value <= self.max_size or value % self.size_multiple:
                found.append(
                    Problem(
                        field=name,
                        message=f"{name} must be {self.min_size}–{self.max_size} in multiples of "
                        f"{self.size_multiple} (nearest: {self.nearest_dimension(value)})",
                    )
                )
        if self.steps and not self.min_steps <= request.steps <= self.max_steps:
            found.append(Problem(field="steps", message=f"steps must be {self.min_steps}–{self.max_steps}"))
        if request.num_images > self.max_images:
            found.append(Problem(field="num_images", message=f"at most {self.max_images} image(s) per run"))
        for name, allowed in (("sampler", self.samplers), ("scheduler", self.schedulers)):
            value = getattr(request, name)
            if value is None:
                continue
            if not allowed:
                found.append(Problem(field=name, message=f"{name} is not supported"))
            elif value not in allowed:
                found.append(Problem(field=name, message=f"{name} must be one of: {', '.join(allowed)}"))
        return found

    def nearest_dimension(self, value: int) -> int:
        highest = self.max_size // self.size_multiple * self.size_multiple
        lowest = _ceil_to(self.min_size, self.size_multiple)
        snapped = round(value / self.size_multiple) * self.size_multiple
        return min(max(snapped, lowest), highest)

    def nearest_size(self, width: int, height: int) -> tuple[int, int]:
        """The closest size this provider accepts, e.g. Segmind 1000×700 → (1000, 704)."""
        return self.nearest_dimension(width), self.nearest_dimension(height)


def _ceil_to(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


class GeneratedImage(BaseModel):
    """One finished image: a PNG that carries its own parameters, plus a small preview."""

    model_config = ConfigDict(frozen=True)

    png: Annotated[bytes, Field(repr=False)]
    width: int
    height: int
    seed: int | None = None


class GenerationResult(BaseModel):
    """What one provider produced for one request."""

    model_config = ConfigDict(frozen=True)

    provider: str
    provider_label: str
    request: GenerationRequest = Field(description="The request with the seed actually used filled in.")
    images: list[GeneratedImage]
    payload: dict[str, object] = Field(description="The JSON body as sent to the provider (never a key).")
    estimated_cost_usd: Decimal | None
    reported_cost_usd: Decimal | None = None
    latency_s: float
    timings: dict[str, float] = Field(default_factory=dict)
    provider_request_id: str | None = None
    remaining_credits: str | None = None
    #: Set when some of the calls a request took failed (parts.py): what is missing, and why.
    shortfall: str | None = None
    #: Set when the automatic route chose the provider: what it tried and why (route.py).
    route: RouteReport | None = None
