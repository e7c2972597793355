"""The code in the docs is real code: every Python block of docs/adding-a-provider.md passes ruff and
mypy --strict, as the project's own code does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)

pytestmark = pytest.mark.slow  # runs mypy


def blocks(doc: str) -> list[str]:
    return BLOCK.findall((REPO / doc).read_text(encoding="utf-8"))


def test_the_examples_of_adding_a_provider_pass_ruff_and_mypy(tmp_path: Path) -> None:
    found = blocks("docs/adding-a-provider.md")
    assert len(found) >= 2
    files = []
    for index, code in enumerate(found):
        path = tmp_path / f"example_{index}.py"
        path.write_text(code, encoding="utf-8")
        files.append(str(path))
    config = str(REPO / "pyproject.toml")
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", config, *files], capture_output=True, text=True
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", config, *files],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
