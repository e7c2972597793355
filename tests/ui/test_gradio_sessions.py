"""LazySessionState: Gradio's per-session state without building every block's config up front.

Each test compares against Gradio's own (eager) SessionState on the real page, so a Gradio upgrade
that changes what a session holds fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.state_holder as state_holder
import pytest
from gradio.blocks import BlocksConfig

from flux_playground.settings import Settings
from flux_playground.ui import create_demo, gradio_sessions
from flux_playground.ui.gradio_sessions import LazySessionState

EagerSessionState = LazySessionState.__mro__[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> gr.Blocks:
    data = tmp_path_factory.mktemp("sessions")
    return create_demo(Settings(_env_file=None, data_dir=data, demo=True), oauth=False)  # type: ignore[call-arg]


@pytest.fixture
def config_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The block ids BlocksConfig.config_for_block is asked for, in order."""
    calls: list[int] = []
    original = BlocksConfig.config_for_block

    def counting(_id: int, rendered_ids: list[int], block: Any, renderable: Any = None) -> dict[str, Any]:
        calls.append(_id)
        return original(_id, rendered_ids, block, renderable)

    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counting))
    yield calls


def test_the_page_installs_it_for_every_new_session(demo: gr.Blocks) -> None:
    assert state_holder.SessionState is LazySessionState
    assert EagerSessionState.__name__ == "SessionState"
    assert gradio_sessions.install() is True  # idempotent


def test_a_new_session_builds_no_block_config(demo: gr.Blocks, config_calls: list[int]) -> None:
    session = LazySessionState(demo)
    assert config_calls == []
    assert len(session.config_values) == len(EagerSessionState(demo).config_values)


def test_reading_one_block_builds_that_block_only(demo: gr.Blocks, config_calls: list[int]) -> None:
    session = LazySessionState(demo)
    block_id = next(iter(demo.blocks))
    config_calls.clear()
    assert block_id in session.config_values
    assert config_calls == []
    value = session.config_values[block_id]
    assert config_calls in ([block_id], [])  # [] when an earlier session built it already
    assert value == EagerSessionState(demo).config_values[block_id]


def test_the_whole_mapping_equals_gradios_own(demo: gr.Blocks) -> None:
    lazy = LazySessionState(demo)
    eager = EagerSessionState(demo)
    last = list(demo.blocks)[-1]
    assert lazy.config_values[last] == eager.config_values[last]  # one block read first...
    assert list(lazy.components) == list(eager.components)  # ...all in the page's order (deep links)
    assert dict(lazy.config_values.items()) == eager.config_values
    assert lazy.STATE_TTL_WHEN_CLOSED == eager.STATE_TTL_WHEN_CLOSED
    assert lazy.state_data == eager.state_data == {}


def test_a_value_set_in_one_session_stays_in_that_session(demo: gr.Blocks) -> None:
    """Gradio writes each call's inputs and outputs into config_values[id]["props"]["value"]."""
    block_id = next(k for k, v in demo.blocks.items() if isinstance(v, gr.Textbox))
    first, second = LazySessionState(demo), LazySessionState(demo)
    first._update_value_in_config(block_id, "only in the first session")
    assert first.config_values[block_id]["props"]["value"] == "only in the first session"
    assert second.config_values[block_id]["props"].get("value") != "only in the first session"
    assert LazySessionState(demo).config_values[block_id] == EagerSessionState(demo).config_values[block_id]


def test_a_block_replaced_by_an_update_gets_its_own_config(demo: gr.Blocks) -> None:
    """What Gradio does for a gr.update(): replace the session's block, then rebuild its config."""
    block_id, block = next((k, v) for k, v in demo.blocks.items() if isinstance(v, gr.Textbox))
    lazy, eager, other = LazySessionState(demo), EagerSessionState(demo), LazySessionState(demo)
    for session in (lazy, eager):
        session[block_id] = gr.Textbox(label="Changed in one session", render=False)
        session._update_config(block_id)
    assert lazy.config_values[block_id]["props"]["label"] == "Changed in one session"
    assert lazy.config_values[block_id] == eager.config_values[block_id]
    assert other.config_values[block_id]["props"]["label"] == block.label


def test_state_values_work_as_before(demo: gr.Blocks) -> None:
    state_id = next(k for k, v in demo.blocks.items() if type(v) is gr.State)
    session = LazySessionState(demo)
    session[state_id] = {"kept": True}
    assert session[state_id] == {"kept": True}
    assert state_id in session


def test_another_gradio_version_keeps_gradios_own_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_holder, "SessionState", EagerSessionState)
    monkeypatch.setattr(gr, "__version__", "99.0.0")
    assert gradio_sessions.install() is False
    assert state_holder.SessionState is EagerSessionState


def test_sessions_of_two_pages_each_get_their_own_page(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, demo=True)  # type: ignore[call-arg]
    one, two = create_demo(settings, oauth=False), create_demo(settings, oauth=False)
    for page in (one, two):
        assert dict(LazySessionState(page).config_values.items()) == EagerSessionState(page).config_values
