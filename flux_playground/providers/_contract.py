"""What a provider's answers must hold: the fields its client reads, declared in the provider's own
module next to `parse`, so the live check (live_check.py) can name a drift without a second parser.

    contract = AnswerContract(
        result=(Read("images", "list"), Read("images[].url", "text")),    # the answer with the images
        every=(Read("status", "text", values=("starting", "succeeded")),),  # every answer, polls too
        known=("timings",),                              # documented, not read: not "new"
    )
    contract.compare(answers)   -> Findings(drift=[...], new_fields=[...])

Paths are dotted keys; `[]` stands for every item of a list (`data[].b64_json`). The answers come
from `CallContext.tap`, which only the live check sets: the normal path records nothing.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx

__all__ = ["AnswerContract", "AnswerLog", "Findings", "JsonKind", "Read", "SeenAnswer", "kind_of", "shown"]

JsonKind = Literal["text", "integer", "number", "boolean", "list", "object", "null"]

#: How a provider-controlled name or value is shown: bounded, one line, printable.
_SHOWN_CHARS = 60
#: How much of an answer is walked for new fields, and how many are named.
_MAX_NODES = 20_000
_MAX_DEPTH = 8
_MAX_NEW = 10
#: Answers kept per provider: the first, and the latest ones (a job is polled many times).
_KEPT_ANSWERS = 100


@dataclass(frozen=True)
class Read:
    """A field the client reads. `required`: its absence is a drift (else only its type and values
    are checked when present). `values`: the values the client knows (a status); another is a drift.
    `alternatives`: other paths that serve instead (the client reads `b64_json` or `url`)."""

    path: str
    kind: JsonKind | tuple[JsonKind, ...]
    required: bool = True
    values: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[JsonKind, ...]:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)


@dataclass(frozen=True)
class SeenAnswer:
    """One successful answer as the client received it (the check's record; no request, no key)."""

    provider: str
    #: "call": the billable POST's answer; "poll": a job's status answer.
    kind: Literal["call", "poll"]
    status: int
    content_type: str
    #: The parsed JSON body; None when the answer is not JSON.
    body: object = None
    is_json: bool = False

    @classmethod
    def of(cls, provider: str, kind: Literal["call", "poll"], response: httpx.Response) -> SeenAnswer:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith("image/"):
            return cls(provider, kind, response.status_code, content_type)
        try:
            body = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return cls(provider, kind, response.status_code, content_type)
        return cls(provider, kind, response.status_code, content_type, body, is_json=True)


class AnswerLog:
    """Answers per provider, for `CallContext.tap` (`log.record`); bounded per provider."""

    def __init__(self) -> None:
        self._first: dict[str, SeenAnswer] = {}
        self._rest: dict[str, deque[SeenAnswer]] = {}

    def record(self, answer: SeenAnswer) -> None:
        if answer.provider not in self._first:
            self._first[answer.provider] = answer
            return
        self._rest.setdefault(answer.provider, deque(maxlen=_KEPT_ANSWERS - 1)).append(answer)

    def of(self, provider: str) -> list[SeenAnswer]:
        first = self._first.get(provider)
        return [] if first is None else [first, *self._rest.get(provider, ())]


@dataclass
class Findings:
    #: Each a phrase: "answer field `data.outputs` missing (renamed?)". Empty: the shape is as expected.
    drift: list[str] = field(default_factory=list)
    #: Fields present that the contract neither reads nor knows: worth a look, not a failure.
    new_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AnswerContract:
    result: tuple[Read, ...]
    every: tuple[Read, ...] = ()
    #: Documented fields the client does not read (paths; their insides are not walked).
    known: tuple[str, ...] = ()
    #: An image/* body is a documented answer too (read whole, no fields).
    image_body: bool = False

    def compare(self, answers: Sequence[SeenAnswer]) -> Findings:
        """The drift between these answers (in order; the last carried the images, or should have)
        and this contract."""
        findings = Findings()
        missing: list[str] = []  # paths, in the order found
        new_values: dict[str, list[str]] = {}  # path -> values the client does not know
        for index, answer in enumerate(answers):
            if not answer.is_json:
                if not (answer.content_type.startswith("image/") and self.image_body):
                    _add(findings.drift, _not_json(answer, self.image_body))
                continue
            reads = (*self.every, *(self.result if index == len(answers) - 1 else ()))
            for read, problem in _problems(reads, answer.body):
                if isinstance(problem, _NewValue):
                    _add(new_values.setdefault(read.path, []), problem.value)
                elif problem == "missing":
                    _add(missing, read.path)
                else:
                    _add(findings.drift, problem)
            for path in _new_paths(answer.body, self._declared()):
                _add(findings.new_fields, path)
        renamed = {_parent(path) for path in findings.new_fields}
        declared = {read.path: read for read in (*self.every, *self.result)}
        findings.drift[:0] = [
            _missing(declared[path]) + (" (renamed?)" if _parent(path) in renamed else "") for path in missing
        ]
        findings.drift += [_new_value(declared[path], values) for path, values in new_values.items()]
        if len(findings.new_fields) > _MAX_NEW:
            extra = len(findings.new_fields) - _MAX_NEW
            findings.new_fields = [*findings.new_fields[:_MAX_NEW], f"(+{extra} more)"]
        return findings

    def _declared(self) -> frozenset[str]:
        reads = (*self.every, *self.result)
        paths = [*self.known, *(r.path for r in reads), *(a for r in reads for a in r.alternatives)]
        return frozenset(paths)


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _not_json(answer: SeenAnswer, image_body: bool) -> str:
    expected = "JSON or an image" if image_body else "JSON"
    if answer.content_type in ("application/json", "") or answer.content_type.endswith("+json"):
        return f"the {_stage(answer)} is not valid JSON"
    return f"the {_stage(answer)} is `{shown(answer.content_type)}`, expected {expected}"


def _stage(answer: SeenAnswer) -> str:
    return "answer" if answer.kind == "call" else "job status answer"


# --- reading paths ---------------------------------------------------------------------------------


def _steps(path: str) -> list[str]:
    """ "data[].b64_json" -> ["data", "[]", "b64_json"]."""
    steps: list[str] = []
    for part in path.split("."):
        name, brackets = part, 0
        while name.endswith("[]"):
            name, brackets = name[:-2], brackets + 1
        steps.extend([name] * bool(name) + ["[]"] * brackets)
    return steps


_ABSENT = object()


def _values(body: object, steps: Sequence[str]) -> Iterator[object]:
    """Every value at `steps` (one per list item along the way); `_ABSENT` where a key is missing.
    An empty list yields nothing: there is no item whose field could be missing."""
    if not steps:
        yield body
        return
    step, rest = steps[0], steps[1:]
    if step == "[]":
        if isinstance(body, list):
            for item in body:
                yield from _values(item, rest)
        else:
            yield _ABSENT
    elif isinstance(body, dict) and step in body:
        yield from _values(body[step], rest)
    else:
        yield _ABSENT


def kind_of(value: object) -> JsonKind:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


def _fits(value: object, kinds: tuple[JsonKind, ...]) -> bool:
    kind = kind_of(value)
    return kind in kinds or (kind == "integer" and "number" in kinds)


@dataclass(frozen=True)
class _NewValue:
    value: str


def _problems(reads: Sequence[Read], body: object) -> Iterator[tuple[Read, str | _NewValue]]:
    """Each read that is not as declared, with what is wrong; a field below one that is missing or
    of another type is not named again (`images[]` when `images` is gone)."""
    broken: set[str] = set()
    for read in reads:
        if any(ancestor in broken for ancestor in _ancestors(read.path)):
            continue
        problem = _check(read, body)
        if problem is None:
            continue
        if not isinstance(problem, _NewValue):
            broken.add(read.path)
        yield read, problem


def _check(read: Read, body: object) -> str | _NewValue | None:
    """ "missing", a value the client does not know, a phrase for a wrong type, or None: as expected."""
    found = list(_values(body, _steps(read.path)))
    present = [value for value in found if value is not _ABSENT]
    missing = len(present) < len(found)  # an empty list along the way has no item to miss it
    if missing and read.alternatives:
        # An alternative serves instead (the client reads either); checked as a whole, not item by
        # item: any alternative present means the field was not simply dropped.
        missing = not any(v is not _ABSENT for alt in read.alternatives for v in _values(body, _steps(alt)))
    if read.required and missing:
        return "missing"
    for value in present:
        if not _fits(value, read.kinds):
            return f"answer field `{read.path}` is {kind_of(value)}, expected {' or '.join(read.kinds)}"
        if read.values and isinstance(value, str) and value not in read.values:
            return _NewValue(shown(value))
    return None


def _missing(read: Read) -> str:
    names = " or ".join(f"`{path}`" for path in (read.path, *read.alternatives))
    return f"answer field {names} missing"


def _new_value(read: Read, values: Sequence[str]) -> str:
    said = ", ".join(f"“{value}”" for value in values[:_MAX_NEW])
    known = ", ".join(read.values)
    plural = "a new value" if len(values) == 1 else "new values"
    return f"answer field `{read.path}` has {plural} {said} (known: {known})"


def _new_paths(body: object, declared: frozenset[str]) -> list[str]:
    """Paths in `body` that are not declared nor on the way to a declared path (not walked below a
    declared one), shallowest first."""
    ancestors = {_prefix for path in declared for _prefix in _ancestors(path)}
    found: list[str] = []
    queue: deque[tuple[object, str, int]] = deque([(body, "", 0)])
    visited = 0
    while queue and visited < _MAX_NODES:
        value, path, depth = queue.popleft()
        visited += 1
        if depth > _MAX_DEPTH:
            continue
        if isinstance(value, list):
            item_path = f"{path}[]"
            if item_path in declared and item_path not in ancestors:
                continue
            queue.extend((item, item_path, depth + 1) for item in value[:50])
            continue
        if not isinstance(value, dict):
            continue
        for key, inner in value.items():
            child = f"{path}.{key}" if path else str(key)
            if child in ancestors:  # declared or not: a declared path is below it
                queue.append((inner, child, depth + 1))
            elif child in declared:
                continue
            elif (named := shown(child)) not in found:
                found.append(named)
    return found


def _ancestors(path: str) -> Iterator[str]:
    """ "data[].b64_json" -> "data", "data[]"."""
    built = ""
    for step in _steps(path)[:-1]:
        built = f"{built}[]" if step == "[]" else (f"{built}.{step}" if built else step)
        yield built


def _parent(path: str) -> str:
    steps = path.rsplit(".", 1)
    return steps[0] if len(steps) == 2 else ""


def shown(text: str) -> str:
    """A provider-controlled string as we print it: one line, printable, at most 60 characters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean[:_SHOWN_CHARS] + ("…" if len(clean) > _SHOWN_CHARS else "")
