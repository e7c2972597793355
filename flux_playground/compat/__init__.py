"""Where the playground changes or leans on another package's internals: one module per package.

    compat/gradio.py    lean sessions, a hardened server, the page's event table (UI layer only)
    compat/uvicorn.py   deadlines and bounds for the connections a server accepts; aborting one
    compat/httpcore.py  a connection pool sharded in parallel pools (httpcore's is quadratic)

Each module states the release it was written against and, for every internal it patches or relies
on, a fingerprint of that internal's source. `require()` refuses to start on anything else, and
`tests/test_compat.py` fails, so an upgrade can never run silently unpatched or mispatched: whoever
upgrades re-reads the internal, adjusts the patch and records the new fingerprint
(`python -m flux_playground.compat` prints them).

`install(settings)` applies every patch; `app.py` calls it once at start-up, before the page is
built (tests call it from their fixtures).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Expectation", "IncompatibleDependency", "fingerprint", "problems", "require"]


class IncompatibleDependency(RuntimeError):
    """An installed package is not the release a compatibility patch was written against."""


@dataclass(frozen=True)
class Expectation:
    """What a compatibility module relies on: a package release and the source of some internals."""

    package: str
    version: str
    #: "module:qualified.name" -> the first 16 hex digits of sha256(inspect.getsource(...)).
    sources: Mapping[str, str] = field(default_factory=dict)
    why: str = ""


def _resolve(target: str) -> object:
    module_name, _, qualname = target.partition(":")
    found: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def fingerprint(target: str) -> str:
    """The fingerprint of one internal's source, e.g. "gradio.http_server:start_server"."""
    return hashlib.sha256(inspect.getsource(_resolve(target)).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def problems(expectation: Expectation) -> list[str]:
    """Everything about the installed package that differs from what the patch was written for."""
    found: list[str] = []
    installed = importlib.metadata.version(expectation.package)
    if installed != expectation.version:
        found.append(f"{expectation.package} {installed} is installed; written for {expectation.version}")
    for target, expected in expectation.sources.items():
        try:
            actual = fingerprint(target)
        except (AttributeError, ImportError, OSError, TypeError) as exc:
            found.append(f"{target} is gone ({type(exc).__name__})")
            continue
        if actual != expected:
            found.append(f"{target} changed (fingerprint {actual}, written for {expected})")
    return found


def require(expectation: Expectation) -> None:
    """Raise IncompatibleDependency, naming every difference, unless the package is as expected."""
    found = problems(expectation)
    if found:
        raise IncompatibleDependency(
            f"flux_playground/compat/ was written for {expectation.package} {expectation.version}"
            f" ({expectation.why}): " + "; ".join(found) + ". Pin the version in requirements.txt, or"
            " re-read those internals, adjust the patch and record the new fingerprints."
        )
