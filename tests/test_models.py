"""GenerationRequest: limits, messages and normalisation; Capabilities arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flux_playground.errors import InvalidRequest
from flux_playground.models import MAX_SEED, Capabilities, GenerationRequest, parse_request


def errors(**fields: Any) -> list[tuple[tuple[str | int, ...], str, str]]:
    with pytest.raises(ValidationError) as info:
        GenerationRequest(**fields)
    return [(e["loc"], e["type"], e["msg"]) for e in info.value.errors()]


class TestGenerationRequest:
    def test_defaults(self) -> None:
        request = GenerationRequest(prompt="a red fox")
        assert request.model_dump() == {
            "prompt": "a red fox",
            "width": 1024,
            "height": 1024,
            "steps": 4,
            "seed": None,
            "num_images": 1,
            "sampler": None,
            "scheduler": None,
        }
        assert request.megapixels == pytest.approx(1.048576)

    @pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
    def test_empty_prompt(self, prompt: str) -> None:
        assert errors(prompt=prompt) == [
            (("prompt",), "string_too_short", "String should have at least 1 character")
        ]

    def test_prompt_is_stripped(self) -> None:
        assert GenerationRequest(prompt="  a fox \n").prompt == "a fox"

    @pytest.mark.parametrize("prompt", ["a\x00fox", "a\x1bfox", "a\x7ffox", "a\x08fox"])
    def test_control_characters(self, prompt: str) -> None:
        assert errors(prompt=prompt) == [
            (("prompt",), "value_error", "Value error, contains control characters; remove them")
        ]

    def test_line_breaks_and_tabs_are_allowed(self) -> None:
        assert GenerationRequest(prompt="a fox\nin snow\r\n\twinter").prompt == "a fox\nin snow\r\n\twinter"

    def test_unicode_prompt(self) -> None:
        assert GenerationRequest(prompt="🦊 狐狸 im Schnee").prompt == "🦊 狐狸 im Schnee"

    def test_prompt_too_long(self) -> None:
        GenerationRequest(prompt="x" * 4000)
        assert errors(prompt="x" * 4001) == [
            (("prompt",), "string_too_long", "String should have at most 4000 characters")
        ]

    @pytest.mark.parametrize(
        ("field", "value", "kind", "message"),
        [
            ("width", 255, "greater_than_equal", "Input should be greater than or equal to 256"),
            ("width", -1024, "greater_than_equal", "Input should be greater than or equal to 256"),
            ("height", 2049, "less_than_equal", "Input should be less than or equal to 2048"),
            ("height", 10**12, "less_than_equal", "Input should be less than or equal to 2048"),
            ("steps", 0, "greater_than_equal", "Input should be greater than or equal to 1"),
            ("steps", 51, "less_than_equal", "Input should be less than or equal to 50"),
            ("seed", -1, "greater_than_equal", "Input should be greater than or equal to 0"),
            ("seed", MAX_SEED + 1, "less_than_equal", f"Input should be less than or equal to {MAX_SEED}"),
            ("seed", 2**80, "less_than_equal", f"Input should be less than or equal to {MAX_SEED}"),
            ("num_images", 0, "greater_than_equal", "Input should be greater than or equal to 1"),
            ("num_images", 5, "less_than_equal", "Input should be less than or equal to 4"),
            (
                "width",
                1024.5,
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            ),
            (
                "steps",
                "many",
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            ),
        ],
    )
    def test_number_limits(self, field: str, value: Any, kind: str, message: str) -> None:
        assert errors(prompt="x", **{field: value}) == [((field,), kind, message)]

    def test_limits_are_inclusive(self) -> None:
        GenerationRequest(prompt="x", width=256, height=2048, steps=50, seed=0, num_images=4)
        GenerationRequest(prompt="x", width=2048, height=256, steps=1, seed=MAX_SEED, num_images=1)

    def test_unknown_field_is_forbidden(self) -> None:
        assert errors(prompt="x", guidance_scale=3.5) == [
            (("guidance_scale",), "extra_forbidden", "Extra inputs are not permitted")
        ]

    @pytest.mark.parametrize("blank", ["", "   ", "\t"])
    def test_blank_sampler_and_scheduler_mean_default(self, blank: str) -> None:
        request = GenerationRequest(prompt="x", sampler=blank, scheduler=blank)
        assert (request.sampler, request.scheduler) == (None, None)

    def test_sampler_is_stripped(self) -> None:
        assert GenerationRequest(prompt="x", sampler=" euler ").sampler == "euler"

    def test_sampler_too_long(self) -> None:
        assert errors(prompt="x", sampler="e" * 65)[0][:2] == (("sampler",), "string_too_long")

    def test_frozen(self) -> None:
        request = GenerationRequest(prompt="x")
        with pytest.raises(ValidationError):
            request.steps = 8  # type: ignore[misc]

    def test_several_errors_are_reported_together(self) -> None:
        assert [loc for loc, _, _ in errors(prompt="", width=1, steps=0)] == [
            ("prompt",),
            ("width",),
            ("steps",),
        ]


class TestParseRequest:
    """The person-facing wrapper: one InvalidRequest that lists every problem in plain words."""

    def fails(self, fields: dict[str, Any]) -> InvalidRequest:
        with pytest.raises(InvalidRequest) as info:
            parse_request(fields)
        return info.value

    def test_valid(self) -> None:
        assert parse_request({"prompt": "fox", "steps": "2"}) == GenerationRequest(prompt="fox", steps=2)

    def test_empty_prompt(self) -> None:
        exc = self.fails({"prompt": "  "})
        assert str(exc) == "Write a prompt: describe the image you want."
        assert exc.field == "prompt"

    def test_missing_prompt(self) -> None:
        assert str(self.fails({})) == "The prompt is missing."

    def test_control_characters(self) -> None:
        assert str(self.fails({"prompt": "a\x00b"})) == (
            "The prompt contains control characters; remove them."
        )

    def test_every_problem_is_listed(self) -> None:
        exc = self.fails({"prompt": "fox", "width": 100, "seed": -1, "cfg": 3})
        assert str(exc) == (
            "Width must be greater than or equal to 256. The seed must be greater than or equal to 0. "
            "Unknown setting 'cfg' (check the spelling)."
        )
        assert exc.field == "width"

    def test_too_long(self) -> None:
        assert str(self.fails({"prompt": "x" * 4001})) == "The prompt must have at most 4000 characters."


class TestCapabilities:
    CAPS = Capabilities(
        min_size=512,
        max_size=2048,
        size_multiple=8,
        min_steps=1,
        max_steps=8,
        max_images=4,
        samplers=("euler",),
        schedulers=(),
    )

    def test_no_problems(self) -> None:
        assert self.CAPS.problems(GenerationRequest(prompt="x", sampler="euler")) == []

    def test_problems_name_each_field(self) -> None:
        request = GenerationRequest(
            prompt="x", width=500, height=1001, steps=9, num_images=4, sampler="heun", scheduler="karras"
        )
        assert [(p.field, p.message) for p in self.CAPS.problems(request)] == [
            ("width", "width must be 512–2048 in multiples of 8 (nearest: 512)"),
            ("height", "height must be 512–2048 in multiples of 8 (nearest: 1000)"),
            ("steps", "steps must be 1–8"),
            ("sampler", "sampler must be one of: euler"),
            ("scheduler", "scheduler is not supported"),
        ]

    def test_too_many_images(self) -> None:
        caps = self.CAPS.model_copy(update={"max_images": 1})
        assert [p.message for p in caps.problems(GenerationRequest(prompt="x", num_images=2))] == [
            "at most 1 image(s) per run"
        ]

    @pytest.mark.parametrize(
        ("size", "nearest"),
        [
            ((1000, 700), (1000, 704)),
            ((100, 5000), (512, 2048)),
            ((513, 2047), (512, 2048)),
        ],
    )
    def test_nearest_size(self, size: tuple[int, int], nearest: tuple[int, int]) -> None:
        assert self.CAPS.nearest_size(*size) == nearest

    def test_nearest_never_leaves_the_range(self) -> None:
        caps = Capabilities(
            min_size=250, max_size=1000, size_multiple=16, min_steps=1, max_steps=4, max_images=1
        )
        for value in range(1, 3000, 7):
            nearest = caps.nearest_dimension(value)
            assert 250 <= nearest <= 1000 and nearest % 16 == 0

    def test_nearest_is_a_multiple_even_when_max_is_not(self) -> None:
        caps = Capabilities(
            min_size=256, max_size=1020, size_multiple=16, min_steps=1, max_steps=4, max_images=1
        )
        assert caps.nearest_dimension(1020) == 1008
