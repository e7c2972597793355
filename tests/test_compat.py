"""The compatibility modules (flux_playground/compat/): each patches or leans on a dependency's
internals, so an upgrade must fail here, loudly, instead of running unpatched or mispatched."""

from __future__ import annotations

import importlib

import pytest

from flux_playground.compat import Expectation, IncompatibleDependency, fingerprint, problems, require

MODULES = [
    "flux_playground.compat.gradio",
    "flux_playground.compat.httpcore",
    "flux_playground.compat.uvicorn",
]


@pytest.mark.parametrize("module", MODULES)
def test_the_installed_release_is_the_one_each_patch_was_written_for(module: str) -> None:
    expectation: Expectation = importlib.import_module(module).EXPECTED
    assert expectation.sources, "a compatibility module names the internals it relies on"
    assert problems(expectation) == [], (
        f"{expectation.package} differs from what {module} was written for; re-read the internals, "
        "adjust the patch and record the new fingerprints (python -m flux_playground.compat)"
    )


def test_another_release_or_a_changed_internal_refuses_to_start() -> None:
    wrong_version = Expectation("uvicorn", "0.0.1", {}, why="a test")
    with pytest.raises(IncompatibleDependency, match=r"uvicorn .* is installed; written for 0\.0\.1"):
        require(wrong_version)
    import uvicorn

    changed = Expectation(
        "uvicorn", uvicorn.__version__, {"uvicorn.config:Config.__init__": "0000000000000000"}, why="a test"
    )
    with pytest.raises(IncompatibleDependency, match="uvicorn.config:Config.__init__ changed"):
        require(changed)
    gone = Expectation("uvicorn", uvicorn.__version__, {"uvicorn.config:NoSuchThing": "0" * 16}, why="a test")
    assert problems(gone) == ["uvicorn.config:NoSuchThing is gone (AttributeError)"]


def test_fingerprints_follow_the_source() -> None:
    assert fingerprint("uvicorn.config:Config.__init__") == fingerprint("uvicorn.config:Config.__init__")
    assert fingerprint("uvicorn.config:Config.__init__") != fingerprint("uvicorn.config:Config.load")


def test_the_gradio_patches_are_in_place_once_the_page_is_served() -> None:
    """The patches take effect from app start-up (ui/server.prepare_process), not from building
    the page; they can be applied again (tests launch many pages)."""
    import gradio.http_server
    import gradio.state_holder

    from flux_playground.compat import gradio as gradio_compat
    from flux_playground.compat.uvicorn import ConnectionLimits

    gradio_compat.install(ConnectionLimits())
    gradio_compat.install(ConnectionLimits(read_timeout_s=3))
    assert gradio.state_holder.SessionState is gradio_compat.LeanSessionState
    config = gradio.http_server.uvicorn.Config(app=lambda *a: None)
    assert config.proxy_headers is False and config.http.__name__ == "GuardedHttpToolsProtocol"  # type: ignore[union-attr]
