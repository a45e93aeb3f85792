"""An experiment family: one record, registered once, read by every place that needs to know it.

The sweep command line (``dgl_ray.tune.cli``), ``dgl-ray --help``, ``python -m dgl_ray.sweeps --config``, the
report and the campaign all read a family from here; nothing else lists the families. A family module in
``dgl_ray/sweeps/`` defines ``FAMILY = register(Family(...))``; :func:`families` imports every such module once.
A family kept outside the package registers itself the same way when its module is imported.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


def _no_options(group: argparse._ArgumentGroup) -> None:
    """A family without options of its own."""


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
    report: tuple = ()                          # its parts of the report (dgl_ray.analysis.report)
    campaign: tuple = ()                        # its steps in ``dgl_ray.campaign``

    def main(self, argv: list[str] | None = None) -> int:
        """``python -m dgl_ray.sweeps.<name>``: parse, check, plan, run (dgl_ray.tune.cli.main)."""
        from ..tune.cli import main           # the sweep command reads this record: imported at call time
        return main(self, argv)


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` once; a second family of the same name is an error (two records of one concept)."""
    old = _REGISTRY.get(family.name)
    if old is not None and old is not family and old.plan is not family.plan:
        raise ValueError(f"family {family.name!r} is registered twice")
    _REGISTRY[family.name] = family
    return family


def families() -> dict[str, Family]:
    """Every registered family by name: the package's own modules (imported here, once) and any
    registered from outside."""
    from . import __path__ as package_path
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_") and info.name != "family":
            importlib.import_module(f"{__package__}.{info.name}")
    return dict(_REGISTRY)


def get(name: str) -> Family:
    """The family called ``name``; an unknown name is a one-line error listing the known ones."""
    known = families()
    if name not in known:
        from ..errors import ConfigError
        raise ConfigError(f"unknown sweep family {name!r}; expected one of {', '.join(known)}")
    return known[name]
