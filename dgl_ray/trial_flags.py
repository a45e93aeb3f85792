"""TrialConfig's fields as command-line flags, made from one table: the fields' metadata in
dgl_ray/config.py (help, group, whether sweeps share it, the flag's name when it is not the field's).

``python -m dgl_ray.train`` takes every field that has metadata; every sweep family takes those marked
``sweep``. A field's type gives the flag's: int, float and str values are converted by argparse, a bool
is a switch (``--<field>``, or ``--no-<field>`` when its default is True), a list is text the command
line parses itself (``--lr-milestones 50,75``: :func:`parse_milestones`).
"""
from __future__ import annotations

import argparse
import dataclasses

from .config import FAST_PATH_FIELDS, TrialConfig
from .errors import ConfigError

_SCALARS = {"int": int, "float": float, "str": str}


def flag_fields(sweep: bool = False) -> list[dataclasses.Field]:
    """The TrialConfig fields that are flags (of every sweep, with ``sweep``), in declaration order."""
    return [f for f in dataclasses.fields(TrialConfig)
            if f.metadata and (f.metadata["sweep"] or not sweep)]


def flag_name(f: dataclasses.Field) -> str:
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    dashed = f.name.replace("_", "-")
    return f"--no-{dashed}" if f.default is True else f"--{dashed}"


def add_trial_flags(parser: argparse.ArgumentParser, fields: list[dataclasses.Field],
                    groups: dict | None = None, defaults: dict | None = None) -> None:
    """A flag per field, in the argument group of its metadata (``groups`` maps a metadata group to an
    existing argparse group; others are made here). ``defaults`` overrides a field's default. A fast-path
    switch not given is absent from the parsed options, so a plan or a --resume that names none stays
    as it was."""
    groups = dict(groups or {})
    defaults = defaults or {}
    for f in fields:
        title = f.metadata["group"]
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        name = flag_name(f)
        kind = str(f.type).split("|")[0].strip()
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        kwargs: dict = {"dest": f.name, "help": f.metadata["help"]}
        if kind == "bool":
            kwargs.update(action="store_const", const=not name.startswith("--no-"),
                          default=argparse.SUPPRESS if f.name in FAST_PATH_FIELDS else default)
        else:
            kwargs.update(type=_SCALARS.get(kind, str), default=default)
        groups[title].add_argument(name, *f.metadata["aliases"], **kwargs)


def fast_path_fields(a) -> dict:
    """The fast-path switches given on the command line (absent or None: not given), as trial config fields."""
    return {k: getattr(a, k) for k in FAST_PATH_FIELDS if getattr(a, k, None) is not None}


def parse_milestones(text, option: str = "--lr-milestones", hint: str = "") -> list[int]:
    """An LR-milestone flag's comma list of epochs ('' for constant LR) as integers; a one-line
    ConfigError naming ``option`` otherwise."""
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option}={text!r}; expected a comma list of epochs{hint}") from None
