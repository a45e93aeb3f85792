"""The registry of archive shapes: one :class:`Shape` per file layout the paper's notebooks wrote.

A shape is a pair of small functions: ``matches(data)`` says whether a parsed file (a CSV as a
DataFrame, a JSON as a list of objects) has this layout, ``read(data, stem)`` turns it into rows of
the tidy frame (one row per evaluation; at least one row per run, so that a run without evaluations
is still counted). Shapes are tried in registration order, so a more specific shape is registered
before a more general one. Adding a layout means adding one decorated function in
:mod:`.shapes`; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd


@dataclass(frozen=True)
class Shape:
    name: str
    suffix: str                                   # ".csv" or ".json"
    matches: Callable[[Any], bool]
    read: Callable[[Any, str], pd.DataFrame]


SHAPES: list[Shape] = []


def shape(name: str, suffix: str, matches: Callable[[Any], bool]):
    """Register ``read`` as the reader of the files of ``suffix`` for which ``matches`` is true."""
    def register(read: Callable[[Any, str], pd.DataFrame]):
        SHAPES.append(Shape(name, suffix, matches, read))
        return read
    return register


def json_objects(data: Any) -> list[dict] | None:
    """The run objects of a JSON results file (a list, or ``{"results": [...]}``), else None."""
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if isinstance(data, list) and data and all(isinstance(o, dict) for o in data):
        return data
    return None


def keys_of(objs: list[dict]) -> set[str]:
    """Every key used by any object (a key missing from the first object still counts)."""
    out: set[str] = set()
    for o in objs:
        out.update(o)
    return out


def find_shape(data: Any, suffix: str) -> Shape | None:
    for s in SHAPES:
        if s.suffix == suffix and s.matches(data):
            return s
    return None
