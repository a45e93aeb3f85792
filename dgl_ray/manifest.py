"""The sweep folder's own record, ``<storage>/<name>/dgl_sweep.json``: the plan's fingerprint and options, the
command that started it and, for a sweep grown in place (``--extend``), one entry per extension.

A sweep is one or more *parts*, each its own Ray Tune experiment: the first in ``<name>/`` itself, each
extension's in ``<name>/extend-<k>/`` (a new Tune experiment beside the finished ones: their Tune state is
never rewritten). ``results.parquet`` in ``<name>/`` holds the rows of every part.

It sits with the storage layer, below both its writer (dgl_ray.tune) and its readers (dgl_ray.tidy reads every
part's trial folders): the record's layout is known here only.
"""
from __future__ import annotations

import json
from .storage import read_text, write_text

MANIFEST = "dgl_sweep.json"
EXTENSION_FOLDER = "extend-{}"


def read_manifest(storage: str, name: str) -> dict | None:
    """The sweep's manifest; None when the folder has none, {} when it cannot be read."""
    text = read_text(storage, f"{name}/{MANIFEST}")
    if text is None:
        return None
    try:
        m = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return m if isinstance(m, dict) else {}


def write_manifest(storage: str, name: str, manifest: dict) -> None:
    write_text(storage, f"{name}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def extensions(manifest: dict | None) -> list[dict]:
    """The extension entries of a manifest, oldest first ([] for a sweep never extended)."""
    return list((manifest or {}).get("extensions", []))


def latest_part(manifest: dict) -> dict:
    """The plan record of the sweep's latest part: its last extension entry, or the manifest itself (the first
    part's options, fingerprint and command are its own top-level fields)."""
    return (extensions(manifest) or [manifest])[-1]


def part_folders(manifest: dict | None) -> list[str]:
    """The Tune experiment folders of the sweep's parts, relative to ``<name>/`` ("" = the folder itself; an
    entry without a folder, hand-edited, names none)."""
    return ["", *(str(e["folder"]) for e in extensions(manifest) if e.get("folder"))]


def next_folder(manifest: dict | None) -> str:
    """The folder of the next extension."""
    return EXTENSION_FOLDER.format(len(extensions(manifest)) + 1)
