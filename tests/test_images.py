"""Untrusted provider bytes → checked PNG with metadata; A1111 `parameters`; thumbnails."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from flux_playground.images import (
    BadImage,
    a1111_parameters,
    decode_output_string,
    make_thumbnail,
    read_png_text,
    to_png_with_metadata,
    verify_image,
)

CAP = 4096 * 4096
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def noisy(width: int, height: int, mode: str = "RGB") -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, (width, height), os.urandom(width * height * bands))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    assert png.startswith(PNG_SIGNATURE)
    found, pos = [], len(PNG_SIGNATURE)
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC on {kind!r}"
        found.append((kind, data))
        pos += 12 + length
    return found


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression-bomb shape) without the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def noisy_bytes_of(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


class TestVerifyImage:
    def test_png(self) -> None:
        checked = verify_image(encode(noisy(48, 32), "PNG"), max_pixels=CAP)
        assert (checked.format, checked.width, checked.height) == ("PNG", 48, 32)

    def test_jpeg(self) -> None:
        data = encode(noisy(40, 24), "JPEG")
        checked = verify_image(data, max_pixels=CAP)
        assert (checked.format, checked.width, checked.height, checked.data) == ("JPEG", 40, 24, data)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"error": "nope"}',
            PNG_SIGNATURE,
            b"\xff\xd8\xff",
        ],
    )
    def test_not_an_image(self, data: bytes) -> None:
        with pytest.raises(BadImage):
            verify_image(data, max_pixels=CAP)

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
    def test_truncated(self, fmt: str) -> None:
        data = encode(noisy(128, 128), fmt)
        with pytest.raises(BadImage, match="damaged or truncated"):
            verify_image(data[: len(data) * 2 // 3], max_pixels=CAP)

    def test_png_with_a_damaged_chunk_is_refused(self) -> None:
        data = bytearray(encode(noisy(128, 128), "PNG"))
        data[len(data) // 2] ^= 0xFF  # inside the pixel data: its CRC no longer matches
        with pytest.raises(BadImage, match="damaged or truncated"):
            verify_image(bytes(data), max_pixels=CAP)

    def test_png_without_its_end_is_refused(self) -> None:
        data = encode(noisy(64, 64), "PNG")
        with pytest.raises(BadImage, match="damaged or truncated"):
            verify_image(data[:-12], max_pixels=CAP)  # the IEND chunk is 12 bytes

    def test_png_is_checked_without_decoding_its_pixels(self) -> None:
        """Only formats that are re-encoded get decoded here; a PNG's pixels are left alone."""
        assert verify_image(encode(noisy(48, 32), "PNG"), max_pixels=CAP).image is None
        assert verify_image(encode(noisy(48, 32), "JPEG"), max_pixels=CAP).image is not None

    def test_pixel_cap(self) -> None:
        with pytest.raises(BadImage, match="5000×5000, above the limit of 16777216 pixels"):
            verify_image(declared_png(5000, 5000), max_pixels=CAP)

    def test_pixel_cap_is_checked_before_decoding(self) -> None:
        data = encode(noisy(64, 64), "PNG")
        with pytest.raises(BadImage, match="above the limit"):
            verify_image(data, max_pixels=64 * 64 - 1)
        assert verify_image(data, max_pixels=64 * 64).width == 64

    @pytest.mark.parametrize("size", [(10000, 10000), (20000, 20000), (100000, 100000)])
    def test_decompression_bomb(self, size: tuple[int, int]) -> None:
        # Above Pillow's own bomb limits: refused even when our cap would allow it.
        with pytest.raises(BadImage):
            verify_image(declared_png(*size), max_pixels=10**12)


class TestDecodeOutputString:
    def test_data_uri_and_bare_base64(self) -> None:
        png = encode(noisy(4, 4), "PNG")
        b64 = base64.b64encode(png).decode()
        assert decode_output_string(f"data:image/png;base64,{b64}") == png
        assert decode_output_string(b64) == png
        assert decode_output_string(b64.rstrip("=")) == png

    @pytest.mark.parametrize("item", ["data:image/png,rawtext", "not base64!", "data:image/png;base64,@@@"])
    def test_refused(self, item: str) -> None:
        with pytest.raises(BadImage):
            decode_output_string(item)


class TestToPngWithMetadata:
    TEXT = {"parameters": "a red fox\nSteps: 4, Seed: 42", "flux_playground": '{"provider": "segmind"}'}

    def provider_png(self) -> bytes:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "provider's own junk")
        info.add_text("Comment", "tracking id 123", zip=True)
        info.add_itxt("Author", "someone", lang="en")
        return encode(noisy(64, 48, "RGBA"), "PNG", pnginfo=info)

    def test_png_pixels_are_kept_byte_for_byte(self) -> None:
        source = self.provider_png()
        out = to_png_with_metadata(verify_image(source, max_pixels=CAP), self.TEXT)
        ours = [c for c in chunks(out) if c[0] in TEXT_CHUNKS]
        assert [c for c in chunks(out) if c[0] not in TEXT_CHUNKS] == [
            c for c in chunks(source) if c[0] not in TEXT_CHUNKS
        ]
        assert [kind for kind, _ in ours] == [b"iTXt", b"iTXt"]
        assert chunks(out)[-1] == (b"IEND", b"")

    def test_provider_text_chunks_are_stripped(self) -> None:
        source = self.provider_png()
        assert set(read_png_text(source)) == {"parameters", "Comment", "Author"}
        out = to_png_with_metadata(verify_image(source, max_pixels=CAP), self.TEXT)
        assert read_png_text(out) == self.TEXT
        assert b"junk" not in out and b"tracking" not in out

    def test_result_decodes_to_the_same_pixels(self) -> None:
        image = noisy(32, 32, "RGBA")
        out = to_png_with_metadata(verify_image(encode(image, "PNG"), max_pixels=CAP), self.TEXT)
        with Image.open(io.BytesIO(out)) as decoded:
            assert decoded.tobytes() == image.tobytes()

    def test_jpeg_becomes_png(self) -> None:
        jpeg = encode(noisy(40, 24), "JPEG", quality=90)
        out = to_png_with_metadata(verify_image(jpeg, max_pixels=CAP), self.TEXT)
        assert out.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(out)) as png, Image.open(io.BytesIO(jpeg)) as original:
            assert (png.format, png.size, png.mode) == ("PNG", (40, 24), "RGB")
            assert png.tobytes() == original.convert("RGB").tobytes()
        assert read_png_text(out) == self.TEXT

    def test_jpeg_exif_orientation_is_applied(self) -> None:
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° clockwise on display
        jpeg = encode(noisy(40, 24), "JPEG", exif=exif.tobytes())
        out = to_png_with_metadata(verify_image(jpeg, max_pixels=CAP), {})
        with Image.open(io.BytesIO(out)) as png:
            assert png.size == (24, 40)

    def test_cmyk_jpeg_becomes_rgb(self) -> None:
        jpeg = encode(noisy(16, 16, "CMYK"), "JPEG")
        out = to_png_with_metadata(verify_image(jpeg, max_pixels=CAP), {})
        with Image.open(io.BytesIO(out)) as png:
            assert png.mode == "RGB"

    def test_webp_becomes_png(self) -> None:
        webp = encode(noisy(20, 20), "WEBP", lossless=True)
        out = to_png_with_metadata(verify_image(webp, max_pixels=CAP), {"k": "v"})
        with Image.open(io.BytesIO(out)) as png:
            assert png.format == "PNG" and png.tobytes() == noisy_bytes_of(webp)
        assert read_png_text(out) == {"k": "v"}

    @pytest.mark.parametrize(
        "prompt",
        [
            "🦊 a fox in the snow ❄️",
            "雪の中の狐、水墨画",
            "лиса в снегу",
            'Fuchs "im" Schnee: ä ö ü ß',
            "line one\nline two",
        ],
    )
    def test_utf8_prompts_round_trip(self, prompt: str) -> None:
        parameters = a1111_parameters(prompt, {"Steps": 4, "Seed": 1})
        provenance = json.dumps({"request": {"prompt": prompt}}, ensure_ascii=False)
        text = {"parameters": parameters, "flux_playground": provenance}
        out = to_png_with_metadata(verify_image(encode(noisy(8, 8), "PNG"), max_pixels=CAP), text)
        assert read_png_text(out) == text
        assert json.loads(read_png_text(out)["flux_playground"])["request"]["prompt"] == prompt


# A1111's own infotext grammar (modules/infotext_utils.py): the last line is "Key: value, ...".
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_a1111(text: str) -> tuple[str, dict[str, str]]:
    *prompt_lines, last = text.split("\n")
    fields = {}
    for key, value in _A1111_PARAM.findall(last):
        fields[key] = json.loads(value) if value.startswith('"') and value.endswith('"') else value
    return "\n".join(prompt_lines), fields


class TestA1111Parameters:
    def test_exact_format(self) -> None:
        text = a1111_parameters(
            "a red fox",
            {
                "Steps": 4,
                "Sampler": None,
                "Seed": 42,
                "Size": "1024x1024",
                "Model": "FLUX.1-schnell",
                "Provider": "Atlas Cloud",
                "Cost": "$0.003 (estimated)",
            },
        )
        assert text == (
            "a red fox\n"
            "Steps: 4, Seed: 42, Size: 1024x1024, Model: FLUX.1-schnell, Provider: Atlas Cloud, "
            "Cost: $0.003 (estimated)"
        )

    def test_values_with_commas_colons_or_newlines_are_quoted(self) -> None:
        text = a1111_parameters("p", {"Note": "a, b", "Time": "12:30", "Multi": "x\ny", "Plain": "ok"})
        assert text.split("\n", 1)[1] == 'Note: "a, b", Time: "12:30", Multi: "x\\ny", Plain: ok'

    def test_round_trips_through_the_a1111_grammar(self) -> None:
        fields = {
            "Steps": 4,
            "Sampler": "dpmpp_2m",
            "Schedule type": "karras",
            "Seed": 2147483647,
            "Size": "1024x768",
            "Provider model": "black-forest-labs/FLUX-1-schnell",
            "Cost": "$0.002 (reported)",
            "Note": 'say "hi", then: leave',
            "Version": "flux-playground 0.1.0",
        }
        prompt, parsed = parse_a1111(a1111_parameters("a fox,\nin the snow: at night", fields))
        assert prompt == "a fox,\nin the snow: at night"
        assert parsed == {key: str(value) for key, value in fields.items()}


class TestThumbnail:
    def test_noisy_1024_square_is_a_small_webp(self) -> None:
        thumb = make_thumbnail(encode(noisy(1024, 1024), "PNG", compress_level=1))
        assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"
        assert len(thumb) <= 40 * 1024
        with Image.open(io.BytesIO(thumb)) as image:
            assert image.format == "WEBP"
            assert image.size == (320, 320)

    def test_keeps_aspect_ratio_and_handles_jpeg_and_alpha(self) -> None:
        for data in (encode(noisy(1024, 512), "JPEG"), encode(noisy(512, 1024, "RGBA"), "PNG")):
            with Image.open(io.BytesIO(make_thumbnail(data))) as image:
                assert max(image.size) == 320 and min(image.size) == 160
                assert image.mode == "RGB"

    def test_never_upscales(self) -> None:
        with Image.open(io.BytesIO(make_thumbnail(encode(noisy(100, 50), "PNG")))) as image:
            assert image.size == (100, 50)
