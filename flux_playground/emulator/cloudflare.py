"""Cloudflare Workers AI: one synchronous POST answered in the v4 envelope, under ``/cloudflare``.

docs/providers/cloudflare.md: #endpoint-and-auth, #request, #sizes, #response and #errors (anchors
below are its sections).
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .common import ValidationError, bearer_token, get_int, get_prompt, key_is_valid, read_json_object
from .directives import DirectiveError, Directives, VariantGroups, parse_directives, resolve_variants
from .emulated import EmulatedProvider
from .faults import Dialect, FaultError, check_directive_faults, respond_with_fault
from .images import ImageSpec, corrupt
from .state import EmulatorState

__all__ = ["DIALECT", "MODEL", "NAME", "PROVIDER", "RUN_ROUTE", "VARIANT_GROUPS", "routes"]

NAME = "cloudflare"
MODEL = "@cf/black-forest-labs/flux-1-schnell"
RUN_ROUTE = "/client/v4/accounts/{account_id}/ai/run/{model:path}"
MAX_PROMPT_CHARS = 2048  # #request: 1–2048
MAX_STEPS = 8  # #request: maximum 8, default 4 (the minimum of 1 is our assumption)
SIZE = 1024  # #sizes: fixed, 1024×1024 per secondary sources
# #endpoint-and-auth: 32 hex characters. Emulator rule, as "any key works": the placeholder that
# demo.point_at gives a required option (``demo-account_id``) is taken as well.
_ACCOUNT_ID = re.compile(r"^(?:[0-9a-fA-F]{32}|demo-[a-z_]+)$")
_FIELDS = frozenset({"prompt", "steps"})  # #request: the schema's properties

# #errors: the error table's wording, with its internal codes.
FREE_ALLOCATION = (
    "You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's "
    "Workers Paid plan if you would like to continue usage."
)
OUT_OF_CAPACITY = "No more data centers to forward the request to"
AUTHENTICATION_ERROR = "Authentication error"  # #endpoint-and-auth [S]: 401, code 10000
_CODES = {FREE_ALLOCATION: 3036, OUT_OF_CAPACITY: 3040, AUTHENTICATION_ERROR: 10000}

VARIANT_GROUPS: VariantGroups = {
    # #response: the REST v4 envelope [S], or the model's own output {"image"} [P] without it.
    "envelope": ("v4", "bare"),
    # #request: one schema version has additionalProperties: false ("closed"), the other does not say.
    "schema": ("open", "closed"),
}


def _envelope(status: int, errors: list[dict[str, object]]) -> JSONResponse:
    # #errors: {"errors": [{"code", "message"}], "messages": [], "result": null, "success": false}
    body = {"errors": errors, "messages": [], "result": None, "success": False}
    return JSONResponse(body, status_code=status)


def _error(status: int, message: str) -> JSONResponse:
    """An error in the envelope, with its documented code; none where no code is documented (a user
    report shows errors without one, #request)."""
    code = _CODES.get(message)
    return _envelope(status, [{"message": message} if code is None else {"code": code, "message": message}])


def _bad_input(exc: ValidationError) -> JSONResponse:
    return _error(400, f"AiError: Bad input: Error: {exc}")  # #request [S]: no code


DIALECT = Dialect(
    provider=NAME,
    error=_error,
    unauthorized_message=AUTHENTICATION_ERROR,
    credits_status=429,  # #errors: 3036, the daily free allocation used up, is a 429
    credits_message=FREE_ALLOCATION,
    rate_limit_message=OUT_OF_CAPACITY,  # #errors: the 429 worth retrying soon (3040)
    missing_fields=lambda: {"result": {}, "success": True, "errors": [], "messages": []},
)


def _refused_auth(request: Request) -> Response | None:
    """#endpoint-and-auth: Bearer token (or the legacy X-Auth-Email + X-Auth-Key pair)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        token = bearer_token(request)
        if token is None:  # [S] a header that is not "Bearer <token>" is a 400, 6003/6111
            chain = [{"code": 6111, "message": "Invalid format for Authorization header"}]
            return _envelope(
                400, [{"code": 6003, "message": "Invalid request headers", "error_chain": chain}]
            )
        return None if key_is_valid(token) else _error(401, AUTHENTICATION_ERROR)
    legacy_key = request.headers.get("x-auth-key")
    if legacy_key is not None and request.headers.get("x-auth-email"):
        return None if key_is_valid(legacy_key) else _error(401, AUTHENTICATION_ERROR)
    return _error(401, AUTHENTICATION_ERROR)


def _unroutable(request: Request) -> Response | None:
    """#endpoint-and-auth [S]: an account id of another form is a 404 that echoes the path."""
    if _ACCOUNT_ID.match(request.path_params["account_id"]):
        return None
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    message = f"Could not route to {path}, perhaps your object identifier is invalid?"
    return _envelope(
        404, [{"code": 7003, "message": message}, {"code": 7000, "message": "No route for that URI"}]
    )


async def _refused(request: Request) -> Response | None:
    """What is refused before the body is read: the route, the token, the model, an empty body."""
    if (refused := _unroutable(request) or _refused_auth(request)) is not None:
        return refused
    if (model := request.path_params["model"]) != MODEL:  # #errors: 5007, 400
        return _envelope(400, [{"code": 5007, "message": f"No such model {model} or task"}])
    if not await request.body():  # #errors: 3003, 400
        return _envelope(400, [{"code": 3003, "message": "Request is missing headers or body: body"}])
    return None


def _validate(body: dict[str, Any], variants: dict[str, str]) -> None:
    prompt = get_prompt(body)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValidationError(f"prompt must NOT have more than {MAX_PROMPT_CHARS} characters", field="prompt")
    get_int(body, "steps", 4, 1, MAX_STEPS)
    extra = sorted(set(body) - _FIELDS)
    if variants["schema"] == "closed" and extra:
        raise ValidationError(f"must NOT have additional properties ({', '.join(extra)})", field=extra[0])


class Cloudflare:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def _fault(self, fault: str, request: Request) -> Response:
        return await respond_with_fault(fault, request, DIALECT, self.state.is_closing)

    async def run(self, request: Request) -> Response:
        self.state.hit(request, NAME, "submit", RUN_ROUTE)
        content_fault = None
        if (queued := self.state.take_fault(NAME, "submit")) is not None:
            if queued not in ("not_image", "truncated"):
                return await self._fault(queued, request)
            content_fault = queued
        if (refused := await _refused(request)) is not None:
            return refused
        try:
            body = await read_json_object(request)
            self.state.log_request(request, NAME, "submit", body)
            directives = parse_directives(get_prompt(body))
            variants = resolve_variants(VARIANT_GROUPS, self.state.take_variants(NAME) + directives.variants)
            _validate(body, variants)
            faults = check_directive_faults(PROVIDER, directives.faults, ("submit",))
        except ValidationError as exc:
            return _bad_input(exc)
        except (DirectiveError, FaultError) as exc:
            return _error(400, f"emulator: {exc}")
        for fault, _ in faults:
            self.state.fired(NAME, fault)
            if fault not in ("not_image", "truncated"):
                return await self._fault(fault, request)
            content_fault = fault
        return await self._image(directives, variants, content_fault)

    async def _image(
        self, directives: Directives, variants: dict[str, str], content_fault: str | None
    ) -> Response:
        # #request: no seed in the schema, so none is taken: each image is drawn with a fresh one.
        spec = ImageSpec(directives.prompt, random.randrange(2**32), SIZE, SIZE, NAME, "jpeg")
        latency = self.state.latency_for(NAME, directives.latency)
        data, _ = await asyncio.gather(self.state.images.get(spec), asyncio.sleep(latency))
        image = base64.b64encode(corrupt(data, content_fault)).decode()  # #response: base64 JPEG
        headers = {"x-emulator-fault": content_fault} if content_fault else None
        if variants["envelope"] == "bare":
            return JSONResponse({"image": image}, headers=headers)
        envelope = {"result": {"image": image}, "success": True, "errors": [], "messages": []}
        return JSONResponse(envelope, headers=headers)

    async def not_found(self, request: Request) -> Response:
        self.state.hit(request, NAME, "unmatched", "/{path}")
        return _envelope(404, [{"code": 7000, "message": "No route for that URI"}])


def routes(state: EmulatorState) -> list[BaseRoute]:
    api = Cloudflare(state)
    return [
        Route(RUN_ROUTE, api.run, methods=["POST"]),
        Route("/{path:path}", api.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]


PROVIDER = EmulatedProvider(
    name=NAME,
    routes=routes,
    stages=("submit",),  # one synchronous call
    # A failed inference is a 500; bad bytes come inside the 200 itself.
    faults={fault: ("submit",) for fault in ("failed_job", "not_image", "truncated")},
    variants=VARIANT_GROUPS,
)
