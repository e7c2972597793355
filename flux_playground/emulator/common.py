"""Small helpers shared by the provider modules: auth, body parsing, field validation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

__all__ = [
    "ValidationError",
    "bearer_token",
    "get_bool",
    "get_choice",
    "get_int",
    "get_number",
    "get_prompt",
    "iso",
    "key_is_valid",
    "new_id",
    "prefix_url",
    "read_json_object",
    "sleep_until",
]


class ValidationError(ValueError):
    """A request the provider would refuse; ``status`` is the HTTP status it answers.

    ``field`` and ``kind`` are what a FastAPI provider reports as ``loc`` and ``type``
    in its 422 list; other providers only use the message.
    """

    def __init__(
        self, message: str, status: int = 400, *, field: str | None = None, kind: str = "value_error"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.kind = kind


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; the scheme is case-insensitive
    (DeepInfra's own docs write both ``Bearer`` and ``bearer``: docs/providers/deepinfra.md)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def key_is_valid(key: str | None) -> bool:
    """Emulator rule: any non-empty key works, except keys starting with ``invalid``,
    so tests can get a genuine 401 without fault injection."""
    return bool(key) and not (key or "").startswith("invalid")


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValidationError("request body is not valid JSON", kind="json_invalid") from exc
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    return data


def prefix_url(request: Request, path: str) -> str:
    """Absolute URL under the provider's mount (``root_path`` is the mount prefix)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}{path}"


def iso(timestamp: float) -> str:
    """RFC 3339 UTC as in the Atlas examples (``2025-01-01T00:00:00Z``)."""
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


async def sleep_until(deadline: float, closing: Callable[[], bool]) -> None:
    """Sleep until ``time.monotonic() >= deadline``, waking early when the server stops."""
    while (left := deadline - time.monotonic()) > 0 and not closing():
        await asyncio.sleep(min(left, 0.5))


# A JSON null counts as an absent field in every getter below (it gets the default).


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def get_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        kind = "missing" if prompt is None else "value_error"
        raise ValidationError("prompt is required and must be a non-empty string", field="prompt", kind=kind)
    return prompt


def get_int(
    body: dict[str, Any], name: str, default: int | None, low: int, high: int, multiple_of: int = 1
) -> int | None:
    value = default if body.get(name) is None else body[name]
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high or value % multiple_of:
        step = f" in multiples of {multiple_of}" if multiple_of > 1 else ""
        message = f"{name} must be an integer between {low} and {high}{step}, got {value!r}"
        raise ValidationError(message, field=name)
    return int(value)


def get_number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = default if body.get(name) is None else body[name]
    if not (_is_int(value) or isinstance(value, float)) or not low <= value <= high:
        message = f"{name} must be a number between {low:g} and {high:g}, got {value!r}"
        raise ValidationError(message, field=name)
    return float(value)


def get_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = default if body.get(name) is None else body[name]
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be a boolean, got {value!r}", field=name)
    return value


def get_choice(body: dict[str, Any], name: str, default: str, choices: Sequence[str]) -> str:
    value = default if body.get(name) is None else body[name]
    if value not in choices:
        message = f"{name} must be one of: {', '.join(choices)}; got {value!r}"
        raise ValidationError(message, field=name, kind="enum")
    return str(value)
