"""`python -m flux_playground check --live`, pointed at the emulator the way an owner's keys point it at
the providers: green for every provider, one line per drift (`drift` in the emulator), the cost and
the confirmation first, the JSON report, and no key anywhere."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from flux_playground import cli
from flux_playground.emulator.server import EmulatorServer
from flux_playground.images import to_png_with_metadata, verify_image
from flux_playground.live_check import PROMPT, SEED, _same_pixels
from flux_playground.models import GenerationRequest
from flux_playground.providers import PROVIDERS
from flux_playground.quotes import quote
from flux_playground.settings import Settings

REPO = Path(__file__).resolve().parents[1]
REQUEST_MIN_SIDE = 256  # GenerationRequest's own smallest width and height
CHARGED = re.compile(
    r"^[a-z0-9-]+: charged \$[0-9.]+, [0-9.]+× the estimate of \$[0-9.]+ "
    r"\(is its price out of date\? FLUX_PLAYGROUND_PRICES overrides it\)$"
)
REFUSED = (
    "error: The live check spends money and there is no terminal to ask on: add --yes to run it anyway.\n"
)


def key_of(name: str) -> str:
    return f"sk-livecheck-DISTINCTIVE-{name}-9f2c"


@pytest.fixture
def server(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    emulator.reset()
    yield emulator
    emulator.reset()  # no drift or latency left for the next test


@pytest.fixture
def owner_env(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every provider configured with its own distinctive key, its origin the emulator."""
    for name, provider in PROVIDERS.items():
        monkeypatch.setenv(provider.base_url_env(), server.base_urls[name])
        monkeypatch.setenv(provider.key_env[0], key_of(name))
        for option in provider.options:
            if option.required:
                monkeypatch.setenv(option.env[0], f"demo-{option.name}")
    return {name: key_of(name) for name in PROVIDERS}


def run_check(capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "", tty: bool = False) -> Any:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return tty

    sys_stdin = sys.stdin
    sys.stdin = Terminal(stdin)
    try:
        code = cli.main(["check", *args])
    finally:
        sys.stdin = sys_stdin
    out = capsys.readouterr()
    return code, out.out, out.err


def submits(server: EmulatorServer) -> int:
    return sum(int(counts.get("submit", 0)) for counts in server.stats()["requests"].values())


def expected_entry(name: str) -> dict[str, Any]:
    """The report of a provider that speaks its contract: the smallest request it takes, priced by
    `quote`, made at the size its `output_size` says, its seed kept."""
    settings = Settings()
    provider = PROVIDERS[name]
    caps = provider.capabilities
    side = math.ceil(max(caps.min_size, REQUEST_MIN_SIDE) / caps.size_multiple) * caps.size_multiple
    request = GenerationRequest(prompt=PROMPT, width=side, height=side, steps=caps.min_steps, seed=SEED)
    priced = next(q for q in quote(request, settings) if q.provider == name)
    made = list(provider.output_size(request, settings))
    seed_ok = True if caps.seed else None
    return {
        "provider": name,
        "label": provider.label,
        "request": {"width": side, "height": side, "steps": caps.min_steps, "seed": SEED},
        "reached": True,
        "error": None,
        "shape": {"checked": True, "drift": [], "new_fields": [], "ok": True},
        "expected_size": made,
        "size": made,
        "seed": {"sent": SEED, "offered": caps.seed, "used": SEED if caps.seed else None,
                 "same_image": seed_ok, "ok": seed_ok},
        "estimated_cost_usd": None if priced.cost is None else float(priced.cost),
        "size_ok": True,
        "ok": True,
    }  # fmt: skip


def test_every_provider_speaks_its_contract(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report_file = tmp_path / "check.json"
    code, out, err = run_check(capsys, "--live", "--yes", "--same-seed", "--json", str(report_file))
    assert (code, err) == (0, "")
    report = json.loads(report_file.read_text())
    assert {k: report[k] for k in ("version", "demo", "same_seed", "ok", "skipped")} == {
        "version": "0.1.0", "demo": False, "same_seed": True, "ok": True, "skipped": {},
    }  # fmt: skip
    entries = {entry["provider"]: entry for entry in report["providers"]}
    assert list(entries) == list(PROVIDERS)
    reported_by: dict[str, float | None] = {}
    for name, entry in entries.items():
        assert entry.pop("latency_s") > 0
        reported_by[name] = entry.pop("reported_cost_usd")
        assert reported_by[name] is None or reported_by[name] > 0  # DeepInfra and Runware report theirs
        assert entry == expected_entry(name), name
    assert submits(server) == 2 * len(PROVIDERS)  # once each, and once more for --same-seed
    lines = out.splitlines()
    assert lines[-2:] == [f"All {len(PROVIDERS)} passed.", f"Report written to {report_file}."]
    table = lines[lines.index("Running…") + 1 : lines.index("Running…") + 2 + len(PROVIDERS)]
    # Below it, only charges far from their estimate (the emulator bills by its own table).
    notes = [line for line in lines[lines.index("Running…") + 2 + len(PROVIDERS) : -2] if line]
    off_price = [
        name
        for name, entry in entries.items()
        if reported_by.get(name) and not 0.8 <= reported_by[name] / entry["estimated_cost_usd"] <= 1.25
    ]
    assert [CHARGED.match(line) is not None for line in notes] == [True] * len(notes)
    assert [line.split(":")[0] for line in notes] == off_price
    assert table[0].split() == ["provider", "reached", "answer", "shape", "size", "seed", "estimated",
                                "reported", "latency"]  # fmt: skip
    for name, row in zip(PROVIDERS, table[1:], strict=False):
        words = row.split()
        assert words[:4] == [name, "yes", "as", "expected"]
        assert words[6:8] == (["same", "image"] if PROVIDERS[name].capabilities.seed else ["not", "taken"])
    everything = out + err + report_file.read_text()
    assert [name for name, key in owner_env.items() if key in everything] == []


RENAMED = {
    "atlascloud": "answer field `data.outputs` or `data.output` missing (renamed?); new field `data.results`",
    "cloudflare": "answer field `result.image` or `image` missing (renamed?); new field `result.image_v2`",
    "deepinfra": "answer field `images` missing (renamed?); new field `results`",
    "fal": "answer field `images[].url` missing (renamed?); new field `images[].uri`",
    "fireworks": "answer field `base64` missing (renamed?); new field `b64`",
    "replicate": "answer field `output` missing (renamed?); new field `results`",
    "runware": "answer field `data[].imageBase64Data` or `data[].imageDataURI` or `data[].imageURL` missing "
    "(renamed?); new field `data[].imageBase64Data_v2`",
    "segmind": "the answer is `application/octet-stream`, expected JSON or an image",
    "together": "answer field `data[].b64_json` or `data[].url` missing (renamed?); "
    "new field `data[].b64_json_v2`",
}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_renamed_field_is_one_line_and_a_failed_check(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    name: str,
) -> None:  # fmt: skip
    server.configure(drift={name: "rename"})
    report_file = tmp_path / "check.json"
    code, out, err = run_check(capsys, "--live", "--yes", "--provider", name, "--json", str(report_file))
    assert (code, err) == (1, "")
    assert "Traceback" not in out
    (entry,) = json.loads(report_file.read_text())["providers"]
    drift = entry["shape"]["drift"]
    assert entry["shape"]["ok"] is False and entry["ok"] is False and drift
    new = [f"new field `{field}`" for field in entry["shape"]["new_fields"]]
    line = f"{name}: " + "; ".join([*drift, *new])
    if name in RENAMED:  # a provider registered later: its own words, checked by the lines above
        assert line == f"{name}: {RENAMED[name]}"
    assert out.splitlines().count(line) == 1
    # The client failed to read it, and says so in its own sentence on the next line.
    assert out.splitlines()[out.splitlines().index(line) + 1] == f"{name}: {entry['error']}"
    assert entry["reached"] is False and entry["error"].startswith(
        f"{PROVIDERS[name].label}: unexpected answer"
    )
    assert [key for key in owner_env.values() if key in out + report_file.read_text()] == []


NEW_STATUS = {
    "atlascloud": "answer field `data.status` has new values “starting_v2”, “completed_v2” (known: created, "
    "starting, processing, completed, succeeded, canceled, cancelled, error, failed, timeout)",
    "deepinfra": "answer field `inference_status.status` has a new value “succeeded_v2” (known: unknown, "
    "succeeded)",
    "fireworks": "answer field `finishReason` has a new value “SUCCESS_v2” (known: SUCCESS, "
    "CONTENT_FILTERED)",
    "replicate": "answer field `status` has a new value “succeeded_v2” (known: starting, processing, "
    "succeeded, failed, canceled)",
}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_new_status_value_is_named_where_the_answer_has_a_status(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, name: str,
) -> None:  # fmt: skip
    # A job whose status the client does not know never ends for it: wait 1 s, not 180.
    monkeypatch.setenv("FLUX_PLAYGROUND_JOB_TIMEOUT", "1")
    server.configure(drift={name: "status"}, latency={name: 0})
    code, out, err = run_check(capsys, "--live", "--yes", "--provider", name)
    assert "Traceback" not in out + err
    named = [line for line in out.splitlines() if line.startswith(f"{name}: answer field")]
    if name in NEW_STATUS:
        assert (code, named) == (1, [f"{name}: {NEW_STATUS[name]}"])
    else:  # no status in its answers: nothing drifted
        assert (code, named) == (0, [])


def test_the_cost_comes_first_and_names_what_is_skipped(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("atlascloud", "deepinfra"):
        monkeypatch.setenv(PROVIDERS[name].base_url_env(), server.base_urls[name])
        monkeypatch.setenv(PROVIDERS[name].key_env[0], key_of(name))
    code, out, err = run_check(capsys)  # no --live: the plan only
    assert (code, err, submits(server)) == (0, "", 0)
    skipped = "; ".join(
        f"{name} (set {', '.join(PROVIDERS[name].missing(Settings()))})"
        for name in PROVIDERS
        if name not in ("atlascloud", "deepinfra")
    )
    # Atlas: $0.003 an image; DeepInfra: $0.0005 × (256/1024)² × 1 step = $0.00003125.
    assert out.splitlines() == [
        "The live check sends one request per provider to its real API:",
        "the smallest image it takes, at its fewest steps, through the spend guard like any run.",
        "  provider    size     steps  estimated cost",
        "  atlascloud  256×256  1      $0.003",
        "  deepinfra   256×256  1      $0.000031",
        "About $0.003 in all.",
        f"Skipped, not configured: {skipped}.",
        "Nothing was sent: add --live to run it.",
    ]
    assert "cloudflare (set CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID)" in skipped


def test_without_a_terminal_it_refuses_unless_told_yes(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(capsys, "--live", "--provider", "fal", stdin="y\n", tty=False)
    assert (code, submits(server)) == (2, 0)
    assert err == REFUSED
    assert "  fal       256×256  1      $0.003" in out.splitlines()  # the cost was shown first


def test_on_a_terminal_it_asks_and_runs_only_on_yes(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for answer in ("\n", "n\n", ""):
        code, out, err = run_check(capsys, "--live", "--provider", "fal", stdin=answer, tty=True)
        assert (code, err, submits(server)) == (1, "Cancelled: nothing was sent.\n", 0)
        assert out.endswith("Run it? [y/N] ")
    code, out, err = run_check(
        capsys, "--live", "--provider", "fal", "--provider", "together", stdin="y\n", tty=True
    )
    assert (code, err, submits(server)) == (0, "", 2)
    assert "Run it? [y/N] \nRunning…" in out and out.endswith("All 2 passed.\n")


def test_a_refused_key_is_the_providers_sentence_not_a_drift(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAL_KEY", "invalid-key-for-the-emulator")  # the emulator answers 401
    report_file = tmp_path / "check.json"
    code, out, _ = run_check(capsys, "--live", "--yes", "--provider", "fal", "--json", str(report_file))
    (entry,) = json.loads(report_file.read_text())["providers"]
    assert (code, entry["reached"], entry["shape"], entry["size"]) == (
        1, False, {"checked": False, "drift": [], "new_fields": [], "ok": None}, None,
    )  # fmt: skip
    assert entry["error"].startswith("fal.ai: the API key was refused")
    assert f"fal: {entry['error']}" in out.splitlines()
    assert "invalid-key-for-the-emulator" not in out + report_file.read_text()


def test_no_configured_provider_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, "--live", "--yes", "--provider", "fal")
    assert (code, out, err) == (
        2, "", "error: No chosen provider is configured. Set fal: FAL_KEY; then run the check again.\n",
    )  # fmt: skip


def test_the_same_seed_check_compares_pixels_not_files() -> None:
    def png(colour: str, note: str) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(out, format="PNG")
        checked = verify_image(out.getvalue(), max_pixels=64)
        return to_png_with_metadata(checked, {"note": note})

    first, same, other = png("red", "1.2 s"), png("red", "0.9 s"), png("blue", "1.2 s")
    assert first != same
    assert (_same_pixels(first, same), _same_pixels(first, other)) == (True, False)


def test_the_command_refuses_without_a_terminal_in_a_real_process(
    server: EmulatorServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FAL_KEY": key_of("fal"),
        "FAL_BASE_URL": server.base_urls["fal"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "flux_playground", "check", "--live", "--provider", "fal"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr, submits(server)) == (2, REFUSED, 0)


def test_a_provider_named_twice_runs_once(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(capsys, "--live", "--yes", "--provider", "fal", "fal", "--provider", "fal")
    assert (code, err, submits(server)) == (0, "", 1)
    assert out.splitlines()[-1] == "All 1 passed."


def test_a_report_path_in_no_folder_is_refused_before_anything_is_sent(
    owner_env: dict[str, str], server: EmulatorServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "check.json"
    code, _, err = run_check(capsys, "--live", "--yes", "--provider", "fal", "--json", str(missing))
    assert (code, submits(server)) == (2, 0)
    assert err == (
        f"error: There is no folder {missing.parent} for the JSON report: "
        "create it or pick another --json path.\n"
    )


def test_an_owner_endpoint_is_checked_against_openais_answer(server: EmulatorServer, tmp_path: Path) -> None:
    """An OpenAI-compatible endpoint from FLUX_PLAYGROUND_OPENAI_PROVIDERS (registered at import, so a
    fresh process), pointed at the emulator's Together route: Together's own fields are news to it."""
    endpoint = {
        "id": "selfhosted", "label": "Self-hosted FLUX", "base_url": server.base_urls["together"],
        "model": "black-forest-labs/FLUX.1-schnell", "key_env": "SELFHOSTED_API_KEY",
        "size_style": "width_height", "steps_field": "steps", "seed_field": "seed",
        "response_format": "base64", "price": {"basis": "per_image", "usd": "0.001"},
    }  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FLUX_PLAYGROUND_OPENAI_PROVIDERS": json.dumps([endpoint]),
        "SELFHOSTED_API_KEY": key_of("selfhosted"),
    }
    report_file = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, "-m", "flux_playground", "check", "--live", "--yes", "--provider", "selfhosted",
         "--json", str(report_file)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    (entry,) = json.loads(report_file.read_text())["providers"]
    assert (entry["provider"], entry["reached"], entry["shape"], entry["size"]) == (
        "selfhosted", True, {"checked": True, "drift": [], "new_fields": ["model", "object", "data[].type"],
                             "ok": True}, [256, 256],
    )  # fmt: skip
    assert (
        "selfhosted: new field `model`; new field `object`; new field `data[].type` "
        "(not read by the client; worth a look)"
    ) in done.stdout.splitlines()
    assert key_of("selfhosted") not in done.stdout + report_file.read_text()
