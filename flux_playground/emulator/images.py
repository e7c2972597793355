"""Deterministic placeholder images that cannot be mistaken for real FLUX output.

The emulator shares a 2-core machine with benchmarks that fire up to 200 concurrent
1024x1024 requests, so images are cheap by construction: the card is drawn at a
low resolution, upscaled, encoded with fast settings, rendered in a worker thread
(never on the event loop), and kept in a bounded LRU cache keyed by its parameters.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

__all__ = ["NOT_AN_IMAGE", "ImageCache", "ImageSpec", "corrupt", "render"]

ImageFormat = Literal["png", "jpeg"]

_CARD_LONG_SIDE = 512  # low-res canvas; upscaling keeps text legible and work small
_CARD_SHORT_SIDE_MIN = 256
_TITLE = "PLACEHOLDER"
_SUBTITLE = "flux-playground emulator - not a real FLUX image"
NOT_AN_IMAGE = (
    b"<!DOCTYPE html><html><body><h1>Not an image</h1>"
    b"<p>flux-playground emulator fault: these bytes are not an image.</p></body></html>"
)

# FreeType faces are not documented as thread-safe, and the lru_caches below build
# shared images; drawing is the cheap part, so serialise it and leave quantising,
# upscaling and encoding unlocked.
_draw_lock = threading.Lock()


@dataclass(frozen=True)
class ImageSpec:
    prompt: str
    seed: int
    width: int
    height: int
    provider: str
    fmt: ImageFormat = "png"


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, size))


def _colours(spec: ImageSpec) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(f"{spec.prompt}\0{spec.seed}\0{spec.width}x{spec.height}".encode()).digest()
    hue = digest[0] / 255
    shift = 0.25 + digest[1] / 255 * 0.4

    def rgb(h: float, v: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, 0.7, v)
        return int(r * 255), int(g * 255), int(b * 255)

    return rgb(hue, 0.9), rgb(hue + shift, 0.55)


def _fit(text: str, max_width: float, max_size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    probe = _font(100).getlength(text) or 1.0
    return _font(min(max_size, int(100 * max_width / probe)))


def _card_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, max(_CARD_LONG_SIDE / max(width, height), _CARD_SHORT_SIDE_MIN / min(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class _Layout:
    """Where things go on a card of one size. Vertical budget: title 30 %, subtitle
    12 %, six body lines (four of prompt, a gap, the footer)."""

    box: tuple[int, int, int, int]
    x: int
    title_y: float
    sub_y: float
    body_y: float
    step: float
    chars: int
    title: ImageFont.FreeTypeFont | ImageFont.ImageFont
    sub: ImageFont.FreeTypeFont | ImageFont.ImageFont
    body: ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=32)
def _layout(w: int, h: int) -> _Layout:
    pad = max(4, min(w, h) // 24)
    top, bottom = int(h * 0.1), int(h * 0.9)
    room_w, room_h = w - 4 * pad, bottom - top - 2 * pad
    title = _fit(_TITLE, room_w, int(room_h * 0.3))
    sub = _fit(_SUBTITLE, room_w, int(room_h * 0.1))
    body = _font(max(6, min(int(room_h * 0.58 / 6 / 1.25), w // 24)))
    sub_y = top + pad + min(room_h * 0.3, title.getbbox(_TITLE)[3] * 1.5)  # tall: stay compact
    body_y = sub_y + min(room_h * 0.12, sub.getbbox(_SUBTITLE)[3] * 2.0)
    step = min(room_h * 0.58 / 6, body.getbbox("Ag")[3] * 1.5)
    chars = max(12, int(room_w / (body.getlength("n") or 1)))
    return _Layout(
        (pad, top, w - pad, bottom), 2 * pad, top + pad, sub_y, body_y, step, chars, title, sub, body
    )


@lru_cache(maxsize=32)
def _backdrop(w: int, h: int) -> tuple[Image.Image, Image.Image]:
    """The diagonal gradient mask and the box shade, reused by every card of this size."""
    ramp = Image.linear_gradient("L")
    mask = Image.blend(ramp, ramp.transpose(Image.Transpose.ROTATE_90), 0.5).resize((w, h))
    box = _layout(w, h).box
    return mask, Image.new("L", (box[2] - box[0], box[3] - box[1]), 110)


@lru_cache(maxsize=64)
def _text_layer(prompt: str, w: int, h: int) -> Image.Image:
    """Title, subtitle and prompt on a transparent layer: the costly text work, done once."""
    lay = _layout(w, h)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.text((lay.x, lay.title_y), _TITLE, font=lay.title, fill="white", stroke_width=1, stroke_fill="black")
    draw.text((lay.x, lay.sub_y), _SUBTITLE, font=lay.sub, fill=(255, 235, 120))
    lines = textwrap.wrap(prompt or "(empty prompt)", lay.chars, max_lines=4, placeholder=" ...")
    for n, line in enumerate(lines):
        draw.text((lay.x, lay.body_y + n * lay.step), line, font=lay.body, fill="white")
    return layer


def _card(spec: ImageSpec) -> Image.Image:
    w, h = _card_size(spec.width, spec.height)
    lay = _layout(w, h)
    mask, shade = _backdrop(w, h)
    top, bottom = _colours(spec)
    img = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), mask)
    img.paste((0, 0, 0), lay.box[:2], shade)
    layer = _text_layer(spec.prompt, w, h)
    img.paste(layer, (0, 0), layer)
    footer = f"seed {spec.seed} \u00b7 {spec.width}x{spec.height} \u00b7 {spec.provider}"
    ImageDraw.Draw(img).text((lay.x, lay.body_y + 5 * lay.step), footer, font=lay.body, fill="white")
    return img


def render(spec: ImageSpec) -> bytes:
    """Encode the placeholder for ``spec``. Blocking: call it from a worker thread.

    Nearest-neighbour upscaling and, for PNG, a 64-colour palette keep a 1024x1024
    image near 10 ms: zlib on 1 byte per pixel instead of 3 is most of the saving.
    """
    with _draw_lock:
        card = _card(spec)
    out = io.BytesIO()
    if spec.fmt == "jpeg":
        img = card.resize((spec.width, spec.height), Image.Resampling.NEAREST)
        img.save(out, "JPEG", quality=80)
    else:
        img = card.quantize(64, method=Image.Quantize.FASTOCTREE)
        img = img.resize((spec.width, spec.height), Image.Resampling.NEAREST)
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", "flux-playground emulator (placeholder, not FLUX output)")
        img.save(out, "PNG", compress_level=1, pnginfo=info)
    return out.getvalue()


def corrupt(data: bytes, fault: str | None) -> bytes:
    """Apply an image-content fault (``not_image`` / ``truncated``) to encoded bytes."""
    if fault == "not_image":
        return NOT_AN_IMAGE
    if fault == "truncated":
        return data[: len(data) // 2]
    return data


class ImageCache:
    """Bounded LRU of encoded images; concurrent requests for one image share one render.

    Owned by one emulator (one event loop): the in-flight futures belong to that loop.
    """

    def __init__(self, max_items: int = 256, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._items: OrderedDict[ImageSpec, bytes] = OrderedDict()
        self._inflight: dict[ImageSpec, asyncio.Task[bytes]] = {}
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0
        self.renders = 0

    async def get(self, spec: ImageSpec) -> bytes:
        if (data := self._items.get(spec)) is not None:
            self._items.move_to_end(spec)
            self.hits += 1
            return data
        task = self._inflight.get(spec)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._render(spec))
            self._inflight[spec] = task
        else:
            self.hits += 1
        # shield: a client that disconnects must not cancel a render others await
        return await asyncio.shield(task)

    async def _render(self, spec: ImageSpec) -> bytes:
        try:
            data = await asyncio.to_thread(render, spec)
        finally:
            del self._inflight[spec]
        self.renders += 1
        self._store(spec, data)
        return data

    def _store(self, spec: ImageSpec, data: bytes) -> None:
        self._items[spec] = data
        self._bytes += len(data)
        while self._items and (len(self._items) > self._max_items or self._bytes > self._max_bytes):
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
        self.hits = self.renders = 0

    def stats(self) -> dict[str, int]:
        return {"items": len(self._items), "bytes": self._bytes, "hits": self.hits,
                "renders": self.renders}  # fmt: skip
