"""The Runware emulator, exercised with raw httpx: the task array, its validation, auth, every
outputType, the error variants and faults (docs/providers/runware.md); then our client against each
error variant."""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from flux_playground import GenerationRequest, Playground, Settings
from flux_playground.demo import point_at
from flux_playground.emulator import EmulatorServer
from flux_playground.errors import AuthenticationFailed, InputRejected, InsufficientCredits, RateLimited

AUTH = {"Authorization": "Bearer test-key"}
MODEL = "runware:100@1"


@pytest.fixture(autouse=True)
def emu(emulator: EmulatorServer) -> EmulatorServer:
    emulator.reset()
    return emulator


def task(**fields: Any) -> dict[str, Any]:
    body = {
        "taskType": "imageInference",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL,
        "positivePrompt": "a lighthouse",
        "width": 512,
        "height": 768,
        "steps": 4,
        "seed": 7,
        "outputType": "base64Data",
        "outputFormat": "PNG",
        "includeCost": True,
    }
    return {key: value for key, value in {**body, **fields}.items() if value is not None}


def post(emu: EmulatorServer, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        emu.base_urls["runware"] + "/v1",
        json=body,
        headers=AUTH if headers is None else headers,
        trust_env=False,
    )


def post_bytes(emu: EmulatorServer, content: bytes, content_type: str) -> httpx.Response:
    headers = {**AUTH, "Content-Type": content_type}
    return httpx.post(emu.base_urls["runware"] + "/v1", content=content, headers=headers, trust_env=False)


def get(url: str) -> httpx.Response:
    return httpx.get(url, trust_env=False)


def image(data: bytes) -> Image.Image:
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    return decoded


class TestAnswers:
    def test_base64_answer_per_image_with_seed_and_cost(self, emu: EmulatorServer) -> None:
        sent = task(numberResults=2)
        response = post(emu, [sent])
        assert response.status_code == 200
        first, second = response.json()["data"]
        assert {first["taskUUID"], second["taskUUID"]} == {sent["taskUUID"]}
        assert first["taskType"] == "imageInference" and uuid.UUID(first["imageUUID"]).version == 4
        assert (first["seed"], second["seed"]) == (7, 8)  # "different seeds" (#request)
        decoded = image(base64.b64decode(first["imageBase64Data"]))
        assert (decoded.format, decoded.size) == ("PNG", (512, 768))
        # 0.0018 per megapixel off the table's two sizes (#price)
        assert first["cost"] == second["cost"] == pytest.approx(0.0018 * 512 * 768 / 1e6)

    def test_cost_at_the_tables_sizes_and_only_when_asked(self, emu: EmulatorServer) -> None:
        (priced,) = post(emu, [task(width=512, height=512)]).json()["data"]
        assert priced["cost"] == 0.0006
        (unpriced,) = post(emu, [task(includeCost=None)]).json()["data"]
        assert "cost" not in unpriced

    def test_url_output_is_served_without_auth_as_jpg_by_default(self, emu: EmulatorServer) -> None:
        (item,) = post(emu, [task(outputType=None, outputFormat=None)]).json()["data"]
        assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL", "seed", "cost"}
        assert item["imageURL"].startswith(emu.base_urls["runware"] + "/image/ws/0.5/ii/")
        downloaded = get(item["imageURL"])
        assert downloaded.status_code == 200 and downloaded.headers["content-type"] == "image/jpeg"
        assert image(downloaded.content).size == (512, 768)
        assert get(emu.base_urls["runware"] + "/image/ws/0.5/ii/nothing.jpg").status_code == 404

    def test_data_uri_output_and_lower_case_format(self, emu: EmulatorServer) -> None:
        (item,) = post(emu, [task(outputType="dataURI", outputFormat="jpg")]).json()["data"]
        prefix, _, data = item["imageDataURI"].partition(",")
        assert prefix == "data:image/jpeg;base64" and image(base64.b64decode(data)).format == "JPEG"

    def test_several_tasks_are_answered_each(self, emu: EmulatorServer) -> None:
        first, second = task(), task(numberResults=2)
        items = post(emu, [first, second]).json()["data"]
        assert [item["taskUUID"] for item in items] == [first["taskUUID"], *[second["taskUUID"]] * 2]


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Key test-key"},  # another provider's scheme carries no key
            {"x-api-key": "test-key"},
            {"Authorization": "Bearer invalid-key"},
        ],
    )
    def test_refused_with_the_documented_error(self, emu: EmulatorServer, headers: dict[str, str]) -> None:
        response = post(emu, [task()], headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "errors": [
                {
                    "code": "invalidApiKey",
                    "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                    "parameter": "apiKey",
                    "taskType": "authentication",
                }
            ]
        }

    def test_an_authentication_task_first_is_accepted_and_not_logged(self, emu: EmulatorServer) -> None:
        body = [{"taskType": "authentication", "apiKey": "secret-in-body"}, task()]
        response = post(emu, body, headers={})
        assert response.status_code == 200 and len(response.json()["data"]) == 1
        logged = emu.requests("runware")[-1]["body"]
        assert logged[0]["apiKey"] == "[redacted]" and "secret-in-body" not in str(emu.requests())

    def test_content_type_must_be_json(self, emu: EmulatorServer) -> None:
        response = post_bytes(emu, b"[]", "text/plain")
        assert response.status_code == 400 and "application/json" in response.json()["errors"][0]["message"]


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "code", "words"),
        [
            ({"taskType": "imageInference"}, "invalidRequest", "JSON array of task objects"),
            ([], "invalidRequest", "no task"),
            ([task(taskType="imageUpscale")], "invalidTaskType", "taskType must be 'imageInference'"),
            ([task(taskUUID=None)], "missingTaskUUID", "taskUUID is required"),
            ([task(taskUUID=str(uuid.uuid1()))], "invalidTaskUUID", "UUID v4"),
            ([task(model="runware:101@1")], "invalidModel", "only runware:100@1"),
            ([task(model=None)], "missingModel", "model is required"),
            ([task(positivePrompt=None)], "missingPositivePrompt", "positivePrompt is required"),
            ([task(positivePrompt="x")], "invalidPositivePrompt", "between 2 and 3000"),
            ([task(height=None)], "missingHeight", "must be used together"),
            ([task(width=None)], "missingWidth", "must be used together"),
            ([task(width=None, height=None)], "missingWidth", "width and height are required"),
            ([task(width=100)], "invalidWidth", "between 128 and 2048 in multiples of 64"),
            ([task(height=1000)], "invalidHeight", "in multiples of 64"),
            ([task(steps=101)], "invalidSteps", "between 1 and 100"),
            ([task(seed=0)], "invalidSeed", "between 1 and"),
            ([task(numberResults=21)], "invalidNumberResults", "between 1 and 20"),
            ([task(outputType="bytes")], "invalidOutputType", "URL, base64Data, dataURI"),
            ([task(outputFormat="GIF")], "invalidOutputFormat", "JPG, PNG, WEBP"),
            ([task(outputQuality=10)], "invalidOutputQuality", "between 20 and 99"),
            ([task(includeCost="yes")], "invalidIncludeCost", "boolean"),
        ],
    )
    def test_refused_with_status_400_and_the_parameter(
        self, emu: EmulatorServer, body: Any, code: str, words: str
    ) -> None:
        response = post(emu, body)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["code"] == code and words in error["message"]
        if isinstance(body, list) and body and "taskUUID" in body[0] and code != "invalidTaskUUID":
            assert (error["taskType"], error["taskUUID"]) == ("imageInference", body[0]["taskUUID"])

    def test_task_uuids_are_unique_per_task(self, emu: EmulatorServer) -> None:
        twice = task()
        response = post(emu, [twice, twice])
        assert response.status_code == 400 and "unique" in response.json()["errors"][0]["message"]

    @pytest.mark.parametrize(
        ("fields", "words"), [({"outputFormat": "WEBP"}, "WEBP"), ({"deliveryMethod": "async"}, "async")]
    )
    def test_what_is_documented_but_not_emulated_says_so(
        self, emu: EmulatorServer, fields: dict[str, str], words: str
    ) -> None:
        response = post(emu, [task(**fields)])
        message = response.json()["errors"][0]["message"]
        assert response.status_code == 400 and message.startswith("emulator:") and words in message

    def test_not_json(self, emu: EmulatorServer) -> None:
        response = post_bytes(emu, b"[{", "application/json")
        assert response.status_code == 400 and "not valid JSON" in response.json()["errors"][0]["message"]


class TestVariantsAndFaults:
    def test_older_single_error_property(self, emu: EmulatorServer) -> None:
        emu.queue_variants("runware", ["error_property"])
        response = post(emu, [task(width=100)])
        assert response.status_code == 400 and set(response.json()) == {"error"}
        assert "width must be" in response.json()["error"]

    def test_errors_inside_a_200(self, emu: EmulatorServer) -> None:
        emu.queue_variants("runware", ["status_200"])  # validation answers before any prompt is read
        refused = post(emu, [task(steps=500)])
        assert refused.status_code == 200 and refused.json()["errors"][0]["code"] == "invalidSteps"
        faulted = post(emu, [task(positivePrompt="a fox [variant:status_200] [fault:credits]")])
        assert faulted.status_code == 200 and faulted.json()["errors"][0]["code"] == "insufficientCredits"

    def test_out_of_credits_is_402(self, emu: EmulatorServer) -> None:
        emu.inject("runware", "credits")
        response = post(emu, [task()])
        assert response.status_code == 402
        assert response.json()["errors"][0]["message"] == "Your account balance is insufficient"

    def test_rate_limit_with_and_without_retry_after(self, emu: EmulatorServer) -> None:
        emu.inject("runware", "429")
        emu.inject("runware", "429_no_retry_after")
        with_header, without = post(emu, [task()]), post(emu, [task()])
        assert (with_header.status_code, with_header.headers.get("retry-after")) == (429, "1")
        assert (without.status_code, without.headers.get("retry-after")) == (429, None)

    def test_missing_fields_is_an_item_without_an_image(self, emu: EmulatorServer) -> None:
        emu.inject("runware", "missing_fields")
        assert post(emu, [task()]).json() == {"data": [{"taskType": "imageInference"}]}

    def test_a_bad_image_behind_a_url(self, emu: EmulatorServer) -> None:
        (item,) = post(emu, [task(outputType="URL", positivePrompt="a fox [fault:truncated]")]).json()["data"]
        half = get(item["imageURL"]).content
        emu.inject("runware", "not_image", stage="download")
        assert b"<html" in get(item["imageURL"]).content.lower()
        with pytest.raises(OSError):
            image(half)

    def test_download_stage_faults(self, emu: EmulatorServer) -> None:
        (item,) = post(emu, [task(outputType="URL")]).json()["data"]
        emu.inject("runware", "500", stage="download")
        assert get(item["imageURL"]).status_code == 500
        assert get(item["imageURL"]).status_code == 200
        assert emu.stats()["requests"]["runware"]["download"] == 2


@pytest.mark.parametrize(
    ("variants", "fault", "kind"),
    [
        (["status_200"], "credits", InsufficientCredits),
        (["status_200"], "401", AuthenticationFailed),
        (["status_200"], "429", RateLimited),
        (["error_property"], "credits", InsufficientCredits),
        (["error_property", "status_200"], "401", AuthenticationFailed),
    ],
)
async def test_our_client_understands_every_error_variant(
    emu: EmulatorServer, tmp_path: Path, variants: list[str], fault: str, kind: type[Exception]
) -> None:
    settings = point_at(Settings(_env_file=None, data_dir=tmp_path, request_timeout=5), emu.base_urls, "k")
    emu.queue_variants("runware", variants)
    emu.inject("runware", fault)
    async with Playground(settings) as playground:
        with pytest.raises(kind):
            await playground.generate(GenerationRequest(prompt="a fox", width=512, height=512), "runware")
    assert emu.stats()["requests"]["runware"]["submit"] == 1


async def test_our_client_shows_runwares_validation_error(emu: EmulatorServer, tmp_path: Path) -> None:
    settings = point_at(Settings(_env_file=None, data_dir=tmp_path, request_timeout=5), emu.base_urls, "k")
    async with Playground(settings) as playground:
        with pytest.raises(InputRejected, match="positivePrompt must be between 2 and 3000"):
            await playground.generate(GenerationRequest(prompt="x", width=512, height=512), "runware")
        emu.queue_variants("runware", ["status_200"])
        result = await playground.generate(
            GenerationRequest(prompt="a fox", width=512, height=512, seed=9),
            "runware",
            api_key=SecretStr("own"),
        )
    assert result.reported_cost_usd == result.estimated_cost_usd and result.images[0].seed == 9
