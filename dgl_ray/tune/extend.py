"""``--extend``: grow a sweep in place (more seeds, λ, η or widths, or more adaptive trials).

A sweep is a list of parts (:class:`Part`; its record: dgl_ray/manifest.py): the first in ``<name>/``, each extension its own Tune
experiment in ``<name>/extend-<k>/``. An extension's trials are the trials of the new command's plan that no
part holds: a trial is known by its identity (every trial field and label; not the run-time keys, the plan
id or the sweep's name), so a finished trial never reruns and an unfinished one is resumed in its own part.
Every plan option but the extensible ones (``options.EXTENSIBLE``: the plan's axes, packing, order, the
adaptive design's settings) must be the stored one. ``--resume`` of an extended sweep re-plans every part
from the stored options the same way, so each part's searcher holds exactly its own trials again.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd

from ..config import RUNTIME_FIELDS
from ..design import run_cost
from ..errors import ConfigError
from ..manifest import extensions, latest_part, next_folder
from ..storage import Location
from ..tidy import load_experiment, missing_trials, outcome_rows
from .options import EXTENSIBLE, PER_PART, plan_options, with_axes
from .searchers import GridSearcher


@dataclasses.dataclass
class Part:
    """One part of a sweep: its Tune experiment folder (relative to ``<name>/``; "" = the folder itself), the
    spec whose searcher hands out exactly the part's trials, the plan options it was planned with, and whether
    this run continues it (``run=False``: an --extend whose earlier parts hold nothing left to run leaves their
    Tune state as it is)."""
    folder: str
    spec: object            # dgl_ray.tune.runner.SweepSpec
    options: dict
    run: bool = True


def identity(cfg: dict) -> str:
    """A trial's identity: its trial fields and labels as canonical JSON, without the run-time keys, the
    plan id, the sweep's name (``experiment``) and the options a part may switch for its own trials
    (``options.PER_PART``: whether it may be decided early): what two parts must not both run."""
    skip = {*RUNTIME_FIELDS, *PER_PART, "plan_id", "experiment"}
    return json.dumps({k: v for k, v in cfg.items() if k not in skip}, sort_keys=True, default=str)


def _shown(v) -> str:
    return "default" if v is None else str(v)


def check_unchanged(where: str, stored: dict, given: dict) -> None:
    """Every plan option that is not extensible is the stored one; else one line naming each changed option."""
    changed = [k for k in sorted(set(stored) | set(given)) if k not in EXTENSIBLE and stored.get(k) != given.get(k)]
    if changed:
        what = ", ".join(f"{k} (stored {_shown(stored.get(k))}, given {_shown(given.get(k))})" for k in changed)
        raise ConfigError(f"--extend cannot change {what}: they define the trials already in {where}; an "
                          f"extension may change only {', '.join(EXTENSIBLE)} (other settings: another --name)")


def stored_parts(manifest: dict) -> list[tuple[str, dict, str]]:
    """(folder, plan options, plan kind) of every part a manifest records, oldest first."""
    base = ("", manifest.get("options", {}), manifest.get("plan_kind", "grid"))
    return [base, *((e["folder"], e["options"], e.get("plan_kind", "grid")) for e in extensions(manifest))]


def changed_axes(before: dict, after: dict) -> dict:
    """{option: [old, new]} of the extensible options an extension changed (the manifest's ``changed``)."""
    return {k: [before.get(k), after.get(k)] for k in EXTENSIBLE
            if k in set(before) | set(after) and before.get(k) != after.get(k)}


def rows_of(storage: str, name: str) -> pd.DataFrame:
    """The sweep's rows so far (every part), an empty frame when it has none."""
    try:
        return load_experiment(Location.of(storage) / name)
    except (FileNotFoundError, ValueError):
        return pd.DataFrame(columns=["run", "lambda", "seed", "eta", "width", "test_error", "run_status"])


def known_outcomes(df: pd.DataFrame) -> tuple:
    """The boundary outcomes of the sweep's ended runs (:func:`dgl_ray.tidy.outcome_rows`): {"lambda",
    "outcome", "seed", "eta", "width", "cost"}. A completed run's outcome is T, H or not_H from its final
    error and its cost 1; a run decided early has its ``decided_branch`` and costs the fraction of its
    epochs it trained (the design's cost, :meth:`dgl_ray.design.BoundaryDesign.add`); unfinished and
    diverged runs have none. The search picks the (η, width) cells it searches."""
    if not len(df):
        return ()
    f = outcome_rows(df)
    width = f["width"].astype(float).fillna(1.0) if "width" in f else pd.Series(1.0, index=f.index)
    cost = pd.Series(1.0, index=f.index)         # the fraction of its epochs a run trained (decided: less)
    if "epochs" in f and f["decided"].any():
        frac = pd.Series([run_cost(e, n) if pd.notna(e) and pd.notna(n) and n else math.nan
                          for e, n in zip(f["epoch"], f["epochs"])], index=f.index)
        cost = cost.where(~f["decided"] | frac.isna(), frac)
    return tuple({"lambda": float(lam), "outcome": str(o), "seed": int(seed), "eta": float(eta), "width": float(w),
                  "cost": float(c)}
                 for lam, o, seed, eta, w, c in zip(f["lambda"], f["outcome"], f["seed"], f["eta"], width, cost))


def _remaining(spec, seen: set):
    """``spec`` with a grid of its trials that no earlier part holds, and how many it keeps (an adaptive
    plan's trials are proposed as it runs: all of its budget is new)."""
    searcher = spec.searcher
    if searcher.kind != "grid":
        return spec, searcher.members
    cfgs = [c for c in searcher.configs if identity(c) not in seen]
    return dataclasses.replace(spec, searcher=GridSearcher(cfgs)), len(cfgs)


def check_kinds(where: str, manifest: dict, new_kind: str) -> None:
    """A grid grows by new grid trials (its trials are known by their fields); an adaptive search by more
    adaptive trials, after a grid or an adaptive part; a chained plan (preparation runs and their children)
    does not grow."""
    kinds = [kind for _, _, kind in stored_parts(manifest)]
    if "ChainedSearcher" in (*kinds, new_kind):
        raise ConfigError(f"--extend grows grid sweeps and adaptive searches (coexistence, bimodality, scan, "
                          f"finite_size, ...); {where} is a chained plan (preparation runs and their follow-ups): "
                          f"start another --name")
    if new_kind == "grid" and "BoundarySearcher" in kinds:
        raise ConfigError(f"--extend: {where} holds an adaptive search, whose trials no grid plan names; grow it "
                          f"with --adaptive BUDGET, or start the grid under another --name")


def open_trials(df: pd.DataFrame) -> int:
    """Trials of the sweep's rows still to run: unfinished, or planned and never started."""
    c = missing_trials(df) if len(df) else {}
    return (c.get("unfinished") or 0) + (c.get("never_started") or 0)


def check_settled(where: str, df: pd.DataFrame) -> None:
    """An adaptive extension starts from the folder's outcomes: every trial there must have ended (a trial
    still to run would take a seed the new search also proposes)."""
    open_ = open_trials(df)
    if open_:
        raise ConfigError(f"--extend --adaptive: {where} has {open_} trial(s) not finished; finish them first "
                          f"with --resume (an adaptive extension starts from the folder's final outcomes)")


def plan_parts(family, opts, manifest: dict, new_spec=None) -> tuple[list[Part], int]:
    """The parts of the sweep ``manifest`` records, each re-planned from its stored axes with ``opts``'s other
    options (an earlier part's grid: its trials no part before it holds); with ``new_spec`` (``--extend``) one
    more part: its trials that none of them holds. Returns the parts and the number of trials the last adds."""
    seen: set = set()
    parts = []
    added = 0
    planned = [(folder, with_axes(opts, options), options) for folder, options, _ in stored_parts(manifest)]
    if new_spec is not None:
        planned.append((next_folder(manifest), None, plan_options(opts)))
    for folder, o, options in planned:
        spec, added = _remaining(new_spec if o is None else family.plan(o), seen)
        parts.append(Part(folder, spec, options))
        if spec.searcher.kind == "grid":
            seen |= {identity(c) for c in spec.searcher.configs}
    return parts, added


def check_axes_only(where: str, manifest: dict, opts) -> None:
    """``--extend``: the command's plan options are the stored ones of the latest part, but the extensible."""
    check_unchanged(where, latest_part(manifest).get("options", {}), plan_options(opts))
