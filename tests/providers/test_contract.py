"""The answer contract (providers/_contract.py): what drift it names, and what it lets pass."""

from __future__ import annotations

import httpx

from flux_playground.providers import PROVIDERS, AnswerContract, AnswerLog, Read, SeenAnswer
from flux_playground.settings import Settings

CONTRACT = AnswerContract(
    every=(
        Read("data", "object"),
        Read("data.id", "text"),
        Read("data.status", "text", values=("starting", "completed")),
    ),
    result=(Read("data.outputs", "list"), Read("data.outputs[]", "text")),
    known=("data.urls",),
)


def seen(body: object, kind: str = "poll") -> SeenAnswer:
    return SeenAnswer(
        "acme", "call" if kind == "call" else "poll", 200, "application/json", body, is_json=True
    )


def test_an_answer_as_declared_has_no_findings() -> None:
    answers = [
        seen({"data": {"id": "p1", "status": "starting", "urls": {"get": "x"}}}, "call"),
        seen({"data": {"id": "p1", "status": "completed", "outputs": ["https://x/0.png"]}}),
    ]
    findings = CONTRACT.compare(answers)
    assert (findings.drift, findings.new_fields) == ([], [])


def test_a_renamed_field_is_named_missing_with_its_new_name() -> None:
    answers = [
        seen({"data": {"id": "p1", "status": "starting"}}, "call"),
        seen({"data": {"id": "p1", "status": "completed", "results": ["https://x/0.png"]}}),
    ]
    findings = CONTRACT.compare(answers)
    # Its items are not named missing again, and a field only of the last answer is read only there.
    assert findings.drift == ["answer field `data.outputs` missing (renamed?)"]
    assert findings.new_fields == ["data.results"]


def test_new_status_values_are_named_once_each_with_the_known_ones() -> None:
    answers = [seen({"data": {"id": "p1", "status": "queued_v2"}}, "call")]
    answers += [seen({"data": {"id": "p1", "status": "done_v2"}}) for _ in range(3)]
    answers.append(seen({"data": {"id": "p1", "status": "done_v2", "outputs": []}}))
    assert CONTRACT.compare(answers).drift == [
        "answer field `data.status` has new values “queued_v2”, “done_v2” (known: starting, completed)"
    ]


def test_a_field_of_another_type_is_named_with_both_types() -> None:
    answers = [seen({"data": {"id": 7, "status": "completed", "outputs": "https://x/0.png"}})]
    assert CONTRACT.compare(answers).drift == [
        "answer field `data.id` is integer, expected text",
        "answer field `data.outputs` is text, expected list",
    ]


def test_new_fields_are_listed_shallowest_first_and_not_below_a_known_one() -> None:
    body = {
        "data": {"id": "p1", "status": "completed", "outputs": ["u"], "urls": {"stream": "s"}, "nsfw": [1]},
        "usage": {"tokens": 1},
    }
    findings = CONTRACT.compare([seen(body)])
    assert (findings.drift, findings.new_fields) == ([], ["usage", "data.nsfw"])


def test_provider_controlled_names_are_printable_and_bounded() -> None:
    hostile = "\x1b[2J" + "x" * 100
    body = {"data": {"id": "p1", "status": "completed\x1b[31m", "outputs": ["u"]}, hostile: 1}
    findings = CONTRACT.compare([seen(body)])
    assert findings.new_fields == ["?[2J" + "x" * 56 + "…"]
    assert findings.drift == [
        "answer field `data.status` has a new value “completed?[31m” (known: starting, completed)"
    ]


def test_an_alternative_field_serves_and_a_missing_one_names_both() -> None:
    either = AnswerContract(result=(Read("data[].b64_json", "text", alternatives=("data[].url",)),))
    assert either.compare([seen({"data": [{"url": "https://x/0.png"}]})]).drift == []
    assert either.compare([seen({"data": [{"b64": "AAAA"}]})]).drift == [
        "answer field `data[].b64_json` or `data[].url` missing (renamed?)"
    ]
    # An empty list has no item that could miss the field.
    assert either.compare([seen({"data": []})]).drift == []


def test_answers_that_are_not_json() -> None:
    image = SeenAnswer("acme", "call", 200, "image/jpeg")
    binary = SeenAnswer("acme", "call", 200, "application/octet-stream")
    broken = SeenAnswer("acme", "poll", 200, "application/json")
    with_images = AnswerContract(result=(Read("image", "text"),), image_body=True)
    assert with_images.compare([image]).drift == []
    assert with_images.compare([binary]).drift == [
        "the answer is `application/octet-stream`, expected JSON or an image"
    ]
    assert CONTRACT.compare([image]).drift == ["the answer is `image/jpeg`, expected JSON"]
    assert CONTRACT.compare([broken]).drift == ["the job status answer is not valid JSON"]


def test_seen_answers_are_read_from_the_response_and_kept_bounded() -> None:
    json_answer = SeenAnswer.of("acme", "call", httpx.Response(201, json={"id": "p1"}))
    assert json_answer == SeenAnswer("acme", "call", 201, "application/json", {"id": "p1"}, is_json=True)
    jpeg = httpx.Response(200, content=b"\xff\xd8", headers={"content-type": "image/jpeg; q=1"})
    assert SeenAnswer.of("acme", "poll", jpeg) == SeenAnswer("acme", "poll", 200, "image/jpeg")
    log = AnswerLog()
    for index in range(250):
        log.record(SeenAnswer("acme", "poll", 200, "application/json", index, is_json=True))
    kept = [answer.body for answer in log.of("acme")]
    assert kept == [0, *range(151, 250)]  # the first, and the latest
    assert log.of("other") == []


def test_every_registered_provider_declares_its_contract() -> None:
    settings = Settings(_env_file=None)
    missing = [name for name, provider in PROVIDERS.items() if provider.answer_contract(settings) is None]
    assert missing == []
