"""Source paths: ``customer.addresses[0].zip``, ``properties.email``, ``lines[-1].sku``,
``["key.with.dots"]``. Parsed once when a spec is compiled; looking a path up in a record is a
loop over a tuple of keys and indexes."""

from __future__ import annotations

import re
from typing import Any, Final


class _Missing:
    """The value of a path that is not in the record (different from an explicit null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

Step = str | int
_TOKEN = re.compile(r'\[(-?\d+)\]|\["((?:[^"\\]|\\.)*)"\]|([^.\[\]"]+)|(\.)')


class PathError(ValueError):
    pass


def parse_path(path: str) -> tuple[Step, ...]:
    """``"a.b[0].c"`` → ``("a", "b", 0, "c")``. Raises PathError on malformed text."""
    if not isinstance(path, str) or not path.strip():
        raise PathError("a path cannot be empty")
    steps: list[Step] = []
    pos = 0
    expect_key = True  # at the start and after a dot a key must follow
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise PathError(f"cannot read path {path!r} at position {pos + 1}")
        index, quoted, key, dot = match.groups()
        if dot is not None:
            if expect_key:
                raise PathError(f"path {path!r} has an empty part")
            expect_key = True
        elif index is not None:
            if expect_key and steps:
                raise PathError(f"path {path!r} has an empty part")
            steps.append(int(index))
            expect_key = False
        elif quoted is not None:
            steps.append(re.sub(r"\\(.)", r"\1", quoted))
            expect_key = False
        else:
            if not expect_key:
                raise PathError(f"path {path!r}: a key must follow a dot")
            steps.append(key)
            expect_key = False
        pos = match.end()
    if expect_key:
        raise PathError(f"path {path!r} ends with a dot")
    return tuple(steps)


def lookup(record: Any, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` in ``record``, or MISSING. Never raises."""
    current = record
    for step in steps:
        if type(step) is str:
            if not isinstance(current, dict):
                return MISSING
            current = current.get(step, MISSING)
            if current is MISSING:
                return MISSING
        else:
            if not isinstance(current, list):
                return MISSING
            index: int = step  # type: ignore[assignment]
            if -len(current) <= index < len(current):
                current = current[index]
            else:
                return MISSING
    return current
