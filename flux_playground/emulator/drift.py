"""Answers that have drifted from the documented contract, for every provider at once.

A provider changes its API without notice: a field is renamed, a status gets a new value. The live
check (`python -m flux_playground check --live`) must name such a drift instead of failing with a
traceback, so the emulator can drift on request, per provider, until reset:

    emu.configure(drift={"atlascloud": "rename"})     # PUT /_emulator/config {"drift": {...}}
    emu.configure(drift={"atlascloud": None})         # back to the documented answers

It works on the answers as they leave the app (EmulatorApp), not inside each provider module, so a
new provider drifts with no code of its own:

- `rename`: in a JSON answer, the key holding the images (a list of URLs, data URIs or base64, or
  one) is renamed (`data.outputs` -> `data.results`, `images[].url` -> `images[].uri`); an answer
  that is the image itself is labelled `application/octet-stream` instead of `image/*`.
- `status`: every `status` or `finishReason` text gets a value the client has never seen
  (`completed` -> `completed_v2`). An answer with neither is unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from starlette.types import Message, Send

__all__ = ["DRIFTS", "Drift", "DriftingSend", "drift_json", "drift_named"]

Drift = Literal["rename", "status"]

DRIFTS: dict[str, str] = {
    "rename": "the answer's image field is renamed (a binary image answer: its Content-Type)",
    "status": "every status / finishReason value is one the client does not know (`<value>_v2`)",
}

_NAMED: dict[str, Drift] = {"rename": "rename", "status": "status"}


def drift_named(value: object) -> Drift:
    """`value` as a drift's name; ValueError says which there are."""
    if isinstance(value, str) and value in _NAMED:
        return _NAMED[value]
    raise ValueError(f"drift must be one of: {', '.join(DRIFTS)} or null; got {value!r}")


# Plausible new names for the fields that carry images; anything else gets `_v2`.
_RENAMED = {"outputs": "results", "output": "results", "images": "results", "url": "uri", "base64": "b64"}
_STATUS_KEYS = ("status", "finishReason")
_IMAGE_URL = re.compile(r"^https?://[^?#]+\.(png|jpe?g|webp)([?#].*)?$", re.IGNORECASE)
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{100,}$")


def _is_image(value: object) -> bool:
    if not isinstance(value, str):
        return False
    return value.startswith("data:image/") or bool(_IMAGE_URL.match(value) or _BASE64.match(value))


def _holds_images(value: object) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_image(item) for item in value)
    return _is_image(value)


def drift_json(body: object, drift: Drift) -> object:
    """`body` as it reads after `drift` (a new object; `body` is left as it is)."""
    if isinstance(body, list):
        return [drift_json(item, drift) for item in body]
    if not isinstance(body, dict):
        return body
    drifted: dict[str, object] = {}
    for key, value in body.items():
        if drift == "rename" and _holds_images(value):
            drifted[_RENAMED.get(key, f"{key}_v2")] = value
        elif drift == "status" and key in _STATUS_KEYS and isinstance(value, str):
            drifted[key] = f"{value}_v2"
        else:
            drifted[key] = drift_json(value, drift)
    return drifted


class DriftingSend:
    """An ASGI `send` that passes every answer on, drifted where it is a successful JSON answer (or,
    for `rename`, an image answer to a POST). Those are held whole first (they are small: a JSON
    answer, one image); downloads and errors stream through untouched."""

    def __init__(self, send: Send, drift: Drift, method: str) -> None:
        self._send, self._drift, self._method = send, drift, method
        self._start: Message | None = None
        self._kind: Literal["json", "image"] | None = None
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._kind = self._kind_of(message)
            if self._kind is None:
                await self._send(message)
            else:
                self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._body += message.get("body", b"")
        if message.get("more_body", False):
            return
        await self._flush()

    def _kind_of(self, start: Message) -> Literal["json", "image"] | None:
        if not 200 <= int(start["status"]) < 300:
            return None
        content_type = _header(start, b"content-type").split(";")[0].strip().lower()
        if content_type == "application/json":
            return "json"
        if content_type.startswith("image/") and self._drift == "rename" and self._method == "POST":
            return "image"
        return None

    async def _flush(self) -> None:
        assert self._start is not None
        body, content_type = bytes(self._body), None
        if self._kind == "image":
            content_type = b"application/octet-stream"
        else:
            try:
                body = json.dumps(drift_json(json.loads(body), self._drift)).encode()
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass  # a `malformed` fault stays malformed
        headers = [
            (name, value)
            for name, value in self._start.get("headers", [])
            if name.lower() not in (b"content-length", *((b"content-type",) if content_type else ()))
        ]
        headers += [(b"content-length", str(len(body)).encode()), (b"x-emulator-drift", self._drift.encode())]
        if content_type:
            headers.append((b"content-type", content_type))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def _header(message: Message, name: bytes) -> str:
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""
