"""The package: pyproject.toml pins what requirements.txt pins, the wheel carries every file the app
reads, and `flux-playground` (the console script) serves the page, runs the CLI, the emulator and the
health check.

The slow test builds the wheel (offline: `--no-build-isolation`, the pinned hatchling of
requirements-dev.txt), installs it into a fresh venv with `--no-deps`, and runs the installed command
from an empty directory; the dependencies come from this venv's site-packages through PYTHONPATH
(no `--system-site-packages`), the package itself only from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from ui.appclient import free_port, serve
from ui.conftest import emulator_settings

from flux_playground import app_main, console, healthcheck
from flux_playground.emulator.server import EmulatorServer
from flux_playground.providers import PROVIDERS

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements_txt() -> list[str]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def _normalized(requirements: list[str]) -> list[str]:
    return sorted(str(Requirement(line)) for line in requirements)


def test_pyproject_pins_exactly_what_requirements_txt_pins() -> None:
    # The Space installs requirements.txt, `pip install .` the pyproject: the same versions, always.
    assert _normalized(PYPROJECT["project"]["dependencies"]) == _normalized(_requirements_txt())


def test_every_requirement_is_pinned_to_one_version() -> None:
    pins = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
    assert [str(p.specifier)[:2] for p in pins] == ["=="] * len(pins)


def test_the_build_backend_is_pinned_as_in_requirements_dev() -> None:
    dev = (REPO / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert PYPROJECT["build-system"]["requires"] == [line for line in dev if line.startswith("hatchling")]
    assert PYPROJECT["project"]["scripts"] == {"flux-playground": "flux_playground.console:main"}


def test_no_arguments_serves_the_page_as_app_py_does(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setattr(app_main, "main", lambda: served.append("page"))
    assert console.main([]) == 0
    assert served == ["page"]
    # app.py is only a shim around the same function.
    app_py = (REPO / "app.py").read_text(encoding="utf-8")
    assert "from flux_playground.app_main import main" in app_py


def test_commands_reach_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert console.main(["providers"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == list(PROVIDERS)


def test_help_names_the_page_the_emulator_and_the_health_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        console.main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert out.splitlines()[:4] == console._USAGE.splitlines()
    assert "{generate,prices,providers" in out  # then the CLI's own help


def test_emulator_is_the_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        console.main(["emulator", "--help"])
    assert exited.value.code == 0
    assert "Loopback emulator of the FLUX.1 [schnell] APIs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "port", "url"),
    [
        (None, None, "http://127.0.0.1:7860/"),
        ("0.0.0.0", "9000", "http://127.0.0.1:9000/"),
        ("::", "9000", "http://[::1]:9000/"),
        ("10.1.2.3", "80", "http://10.1.2.3:80/"),
        ("fd00::5", None, "http://[fd00::5]:7860/"),
    ],
)
def test_the_health_check_asks_where_the_page_listens(
    monkeypatch: pytest.MonkeyPatch, name: str | None, port: str | None, url: str
) -> None:
    for variable, value in (("GRADIO_SERVER_NAME", name), ("GRADIO_SERVER_PORT", port)):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    assert healthcheck.default_url() == url


@pytest.mark.slow  # a process of its own, or real seconds of waiting
def test_the_health_check_passes_on_the_real_page(
    emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(emulator_settings(emulator, tmp_path / "data")) as page:
        assert console.main(["healthcheck", "--url", page.url]) == 0
        out = capsys.readouterr().out
    assert out.startswith(f"ok: {page.url} answered in ") and out.endswith(" ms\n")


def test_the_health_check_fails_with_words_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert console.main(["healthcheck", "--url", f"http://127.0.0.1:{port}/"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: http://127.0.0.1:{port}/robots.txt did not answer (")
    assert err.endswith("). Is the app running, on this port? Its log says why not.\n")


def test_the_health_check_never_loads_gradio() -> None:
    # A container runs it every 30 s: Gradio's import alone takes seconds of CPU.
    code = (
        "import sys; from flux_playground.console import main; "
        "main(['healthcheck', '--url', 'http://127.0.0.1:9/']); print('gradio' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert ran.stdout == "False\n"


@pytest.fixture
def other_server() -> Iterator[str]:
    """Some other web server on the port: answers 200, but not as the playground does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200 if self.path == "/robots.txt" else 404)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_health_check_fails_on_another_server(
    other_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert healthcheck.main(["--url", other_server]) == 1
    assert capsys.readouterr().err == (
        f"error: {other_server}/robots.txt answered, but not as the playground does. Is another server "
        "on this port?\n"
    )


def test_the_health_check_names_an_http_error(other_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main(["--url", other_server + "/elsewhere/"]) == 1
    assert capsys.readouterr().err == (
        f"error: {other_server}/elsewhere/robots.txt answered HTTP 404. Is another server on this port, "
        "or a proxy in between?\n"
    )


def test_the_health_check_refuses_a_url_that_is_not_http(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        healthcheck.main(["--url", "file:///etc/passwd"])
    assert exited.value.code == 2
    assert "--url must start with http:// or https://, not 'file:///etc/passwd'" in capsys.readouterr().err


# --- the wheel, installed ----------------------------------------------------------------------------


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload,no-any-return]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_serves_the_page(tmp_path: Path) -> None:
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            REPO,
        ]
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("flux_playground-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        scripts = archive.read("flux_playground-0.1.0.dist-info/entry_points.txt").decode()
    # Every file the app reads at run time, besides the modules (theme.py reads style.css at import).
    assert {
        "flux_playground/ui/style.css",
        "flux_playground/emulator/README.md",
        "flux_playground/py.typed",
    } < names
    assert [
        n for n in names if not n.startswith(("flux_playground/", "flux_playground-0.1.0.dist-info/"))
    ] == []
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []
    assert scripts == "[console_scripts]\nflux-playground = flux_playground.console:main\n"

    venv = tmp_path / "venv"
    # No pip of its own (ensurepip takes 5-25 s here): this pip installs into it (`--python`).
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv]).returncode == 0
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    installed = _run([*pip, "install", "-q", "--no-deps", "--no-index", wheel])
    assert installed.returncode == 0, installed.stderr

    # Run from an empty directory, with this venv's packages as the dependencies and nothing else.
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(workdir),
        "PYTHONPATH": sysconfig.get_paths()["purelib"], "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port),
        "FLUX_PLAYGROUND_DATA_DIR": str(workdir / "data"),
    }  # fmt: skip
    where = _run(
        [venv / "bin" / "python", "-c", "import flux_playground; print(flux_playground.__file__)"],
        env=env,
        cwd=workdir,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    providers = _run(["flux-playground", "providers"], env=env, cwd=workdir)
    assert providers.returncode == 0, providers.stderr
    assert list(json.loads(providers.stdout)) == list(PROVIDERS)

    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "flux-playground"], env=env, cwd=workdir, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 90
        while not _answers(f"http://127.0.0.1:{port}/robots.txt"):
            assert server.poll() is None, (workdir / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the page did not start"
            time.sleep(0.3)
        check = _run(["flux-playground", "healthcheck"], env=env, cwd=workdir)
        assert (check.returncode, check.stderr) == (0, "")
        assert check.stdout.startswith(f"ok: http://127.0.0.1:{port}/ answered in ")
        page = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).json()
        # The installed package's style.css is on the page (demo mode: no key in the environment).
        assert (REPO / "flux_playground" / "ui" / "style.css").read_text(encoding="utf-8") in page["css"]
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        server.terminate()  # SIGTERM, as `docker stop` sends: the page closes and the process exits 0
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    served = (workdir / "server.log").read_text()
    assert server.returncode == 0, served[-3000:]
    assert f"* Running on http://127.0.0.1:{port}/  (MCP: " in served
    assert "Traceback" not in served
    assert "history.sqlite3" in os.listdir(workdir / "data")
