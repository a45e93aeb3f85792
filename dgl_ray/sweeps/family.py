"""An experiment family: one record, registered once, read by every place that needs to know it.

The sweep command line (``dgl_ray.tune.cli``), ``dgl-ray --help``, ``python -m dgl_ray.sweeps --config``, the
report and the campaign all read a family from here; nothing else lists the families. A family module in
``dgl_ray/sweeps/`` defines ``FAMILY = register(Family(...))``; :func:`families` imports every such module once.
A family kept outside the package registers itself the same way when its module is imported
(tests/toy_family.py is one: docs/FAMILIES.md, "Add an experiment family").
"""
from __future__ import annotations

import argparse
import ast
import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..analysis.report_parts import GENERAL_SECTION, SectionSpec
from ..config import register_labels
from ..errors import ConfigError
from . import __path__ as PACKAGE_PATH


def _no_options(group: argparse._ArgumentGroup) -> None:
    """A family without options of its own."""


@dataclass(frozen=True)
class CampaignStep:
    """One step of ``python -m dgl_ray.campaign paper``: this family, reduced on digits."""
    name: str                   # folder under --storage
    seeds: int                  # --n at scale 1
    args: tuple = ()            # the family's options for this step
    smoke: tuple = ()           # added at --smoke: toy epochs and ranges
    why: str = ""               # the paper's claim it measures


@dataclass(frozen=True)
class Family:
    name: str                                   # command-line name, manifest ``family``, the rows' ``family`` label
    paper_ids: tuple[str, ...]                  # the paper's experiment ids it runs ("S1", "R1", ...)
    summary: str                                # one line for ``dgl-ray --help``
    doc: str                                    # module docstring: first paragraph is ``--help``'s description
    plan: Callable[[Any], Any]                  # SweepOptions -> dgl_ray.tune.runner.SweepSpec
    add_args: Callable[[argparse._ArgumentGroup], None] = _no_options   # the family's own options
    defaults: Mapping[str, Any] = field(default_factory=dict)           # shared options' defaults it changes
    digits_defaults: Mapping[str, tuple[Any, str]] = field(default_factory=dict)  # option -> (digits value, why)
    refuses: tuple[str, ...] = ()               # shared options it cannot honour: an error when given
    labels: tuple[str, ...] = ()                # label keys its plans add to trial configs (rows' columns)
    thresholds: tuple[str, ...] = ()            # its options that are error thresholds: numbers in [0, 1]
    report: SectionSpec = GENERAL_SECTION       # its section of the report: parts, and what its runs are
    campaign: tuple[CampaignStep, ...] = ()     # its steps in ``dgl_ray.campaign``

    def main(self, argv: list[str] | None = None) -> int:
        """``python -m dgl_ray.sweeps.<name>``: parse, check, plan, run (dgl_ray.tune.cli.main)."""
        from ..tune.cli import main   # heavy: torch; cli imports this module, and dgl-ray train/report run without it
        return main(self, argv)

    def check_thresholds(self, opts) -> None:
        """Each of its error thresholds, where set to a number, lies in [0, 1] (a one-line ConfigError)."""
        for name in self.thresholds:
            v = opts.get(name) if isinstance(opts, Mapping) else getattr(opts, name, None)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and 0 <= v <= 1):
                raise ConfigError(f"--{name.replace('_', '-')}={v} is an error threshold: it must be in [0, 1]")


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` once; a second family of the same name is an error (two records of one concept).
    Its labels join the trial-config keys ``dgl_ray.config`` accepts."""
    old = _REGISTRY.get(family.name)
    if old is not None:
        if _source(old) != _source(family):
            raise ValueError(f"family {family.name!r} is registered twice ({_source(old)}, {_source(family)})")
        return old          # its module run as __main__ and imported too: one family, one record
    register_labels(family.labels)
    _REGISTRY[family.name] = family
    return family


def _source(family: Family) -> str:
    """The file that defines the family's plan (a module run with ``python -m`` and imported as well
    defines it twice, from one file)."""
    code = getattr(family.plan, "__code__", None)
    return code.co_filename if code is not None else repr(family.plan)


def _family_modules() -> list[str]:
    """The package's family modules by name: every module of dgl_ray.sweeps but this one and the private ones."""
    return [info.name for info in pkgutil.iter_modules(PACKAGE_PATH)
            if not info.name.startswith("_") and info.name != "family"]


def families() -> dict[str, Family]:
    """Every registered family by name, in name order: the package's own modules (imported here, once)
    and any registered from outside."""
    for module in _family_modules():
        importlib.import_module(f"{__package__}.{module}")
    return dict(sorted(_REGISTRY.items()))


def summaries() -> dict[str, str]:
    """{name: one-line summary} of every family, in name order, read from each family module's source
    (the literal ``name=`` and ``summary=`` of its ``Family(...)``) rather than by importing it: a family
    module loads torch, Ray and scipy (about 3 s), and ``dgl-ray --help`` answers in a tenth of that. A
    module whose record is not literal is imported; families registered from outside are added as they are."""
    out = {name: f.summary for name, f in _REGISTRY.items()}
    for module in _family_modules():
        record = _literal_record(Path(PACKAGE_PATH[0]) / f"{module}.py")
        if record is None:
            f = find(module)
            record = (f.name, f.summary) if f is not None else None
        if record is not None:
            out.setdefault(*record)
    return dict(sorted(out.items()))


def _literal_record(source: Path) -> tuple[str, str] | None:
    """(name, summary) of the ``Family(...)`` call in ``source``, when both are literal strings."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Family":
            keywords = {k.arg: k.value for k in node.keywords}
            try:
                name, summary = (ast.literal_eval(keywords[k]) for k in ("name", "summary"))
            except (KeyError, ValueError):
                return None
            return (name, summary) if isinstance(name, str) and isinstance(summary, str) else None
    return None


def find(name: str) -> Family | None:
    """The family called ``name`` if there is one, importing only its own module (the report reads the
    families its rows name, not every family: each import costs Ray's start-up)."""
    if name not in _REGISTRY and name in _family_modules():
        importlib.import_module(f"{__package__}.{name}")
    return _REGISTRY.get(name)


def get(name: str) -> Family:
    """The family called ``name``; an unknown name is a one-line error listing the known ones."""
    family = find(name)
    if family is None:
        raise ConfigError(f"unknown sweep family {name!r}; expected one of {', '.join(families())}")
    return family
