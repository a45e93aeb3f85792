"""``python -m dgl_ray.sweeps.<family>``: the sweep command, top to bottom.

Parse the options (dgl_ray.tune.options), plan, check the plan, pack it into populations, check the
machine and the storage (dgl_ray.tune.preflight), then either print the plan (``--dry-run``) or write the
manifest and run it (dgl_ray.tune.runner). Every bad input is a one-line ``error: ...`` on stderr and exit
code 2, before ``ray.init``.
"""
from __future__ import annotations

import json
import sys

from ..errors import ConfigError
from . import faults, preflight
from .estimate import print_estimate
from .options import as_family, parse
# The family modules import their plan helpers from here until the families slice retargets them to
# dgl_ray.tune.options (where they live).
from .options import MAX_TRIALS, base_config, check_plan_size, float_list, int_list, scaled, seeds  # noqa: F401
from .runner import run_sweep
from .trackers import check_trackers


def main(family, argv=None) -> int:
    """Run ``family``'s sweep (a dgl_ray.sweeps.family.Family) for ``argv``; the exit code: 0 done, 2 bad
    input (one line on stderr, before Ray starts), else the runner's or the fault's."""
    family = as_family(family)
    try:
        opts = parse(family, sys.argv[1:] if argv is None else argv)
        spec = family.plan(opts)
        opts = spec.opts or opts           # a plan that derived shared options from the family's own
        preflight.validate_configs(spec.searcher.plan_configs())
        if spec.searcher.size < 1:
            raise ConfigError("the plan is empty: no trial to run (check the ranges)")
        check_order(spec, opts)
        spec, group_size = pack_plan(spec, opts)
        opts = opts.replace(group_size=group_size)      # the sizes used: what the manifest records
        check_trackers(opts)
        machine_problems = preflight.check_machine(spec.searcher.plan_configs(), opts)
        preflight.check_address(opts)
        preflight.check_storage(opts)
        manifest = sweep_manifest(opts, spec)
        preflight.check_resume(opts, manifest, spec.searcher.plan_configs())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if opts.dry_run:
        print_plan(spec, opts)
        print_estimate(spec, opts)
        for problem in machine_problems:
            print(f"  warning: {problem} (a run without --dry-run stops here)")
        return 0
    faults.current_opts = opts
    try:
        with faults.signals_end_the_sweep(), faults.compact_ray_logs(opts):   # in every phase
            try:
                if not opts.resume:
                    preflight.start_manifest(opts, manifest)
                outcome = run_sweep(opts, spec)
            except ConfigError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            except faults.Interrupted as e:
                return faults.end_by_signal(opts, e.signum)
            except Exception as e:                  # a fault: one line, the log, the results so far, resume
                return faults.end_by_fault(opts, e)
    except faults.Interrupted as e:         # a signal while the ending above was printed
        return 128 + e.signum
    finally:
        faults.current_opts = None
    return outcome.exit_code


# ---- the plan: printing, packing, its kind (moved to dgl_ray/tune/plan.py by the searchers slice) ----

def print_plan(spec, opts) -> None:
    from .searchers import BoundarySearcher, ChainedSearcher, GridSearcher
    s = spec.searcher
    print(f"{spec.family}: plan for {opts.storage.rstrip('/')}/{opts.name}")
    if isinstance(s, GridSearcher):
        from .trainable import unpack_group
        cfgs = [m for c in s._state["configs"] for m in unpack_group(c)]   # members of grouped Tune trials
        print(f"  {len(cfgs)} trials (grid)")
        _axes(cfgs)
    elif isinstance(s, ChainedSearcher):
        preps = s._state["preps"]
        kids = [c for p in preps for c in p["children"]]
        acc = {str(p["accept"]) for p in preps}
        print(f"  {len(preps)} preparation trials (acceptance {', '.join(sorted(acc))}), "
              f"up to {len(kids)} follow-up trials: {s.members} trials at most")
        print("  preparation:")
        _axes([p["config"] for p in preps])
        print("  follow-ups:")
        _axes(kids)
    elif isinstance(s, BoundarySearcher):
        print(f"  adaptive boundary search: budget {s.members} trials, start grid {s.policy.grid} x {s.policy.n0} seeds, "
              f"min λ step {s.policy.min_step}")
        _axes([s._state["base"]])
    for note in spec.notes:
        print(f"  {note}")
    print(f"  trial size: {s.size}" + (f" Tune trials ({s.members} trials packed)" if s.members > s.size else ""))


def _short(v) -> str:
    if isinstance(v, (list, dict)):
        t = json.dumps(v)
        return t if len(t) <= 60 else t[:57] + "..."
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _axes(cfgs) -> None:
    if not cfgs:
        print("    (none)")
        return
    seen: dict = {}          # key -> {value (or its JSON text when unhashable): value}, in plan order
    for c in cfgs:
        for k, v in c.items():
            d = seen.get(k)
            if d is None:
                d = seen[k] = {}
            try:
                d.setdefault(v, v)
            except TypeError:   # lists/dicts (schedules)
                d.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    for k, d in seen.items():
        if k in ("plan_id",):
            continue
        vals = list(dict.fromkeys(_short(v) for v in d.values()))
        if any(k not in c for c in cfgs):
            vals.append("None")
        shown = ", ".join(vals) if len(vals) <= 6 else f"{', '.join(vals[:3])}, ..., {', '.join(vals[-2:])}"
        print(f"    {k:<18} {len(vals):>4} value{'s' if len(vals) > 1 else ' '}: {shown}")


def group_sizes(trial_cfgs, given: int | None, on_gpu: bool) -> dict:
    """{model: group size} for these resolved trial configs: ``given`` (--group-size) or a fixed
    function of the model and the device kind (dgl_ray.batched.default_group_size); the digits
    TinyCNN's default is capped so that the trials make at least 4 Tune trials (every worker gets work).
    Each row records its population (group_size, member), which is what an exact rerun needs
    (docs/PACKING.md)."""
    from ..batched import default_group_size
    sizes: dict = {}
    for c in trial_cfgs:
        sizes.setdefault(c.model, given if given is not None else default_group_size(c.model, on_gpu))
    if given is None and sizes.get("tinycnn", 1) > 2:
        n = sum(c.model == "tinycnn" for c in trial_cfgs)
        sizes["tinycnn"] = max(2, min(sizes["tinycnn"], -(-n // 4)))
    return sizes


def _sizes_text(sizes: dict, auto: bool) -> str:
    how = "default for" if auto else "--group-size for"
    return ", ".join(f"{s} {how} {m}" for m, s in sizes.items())


def pack_plan(spec, opts):
    """Pack the plan's trials into Tune trials of up to N members trained as one population (same
    data set, model, shapes; see dgl_ray.batched.group_configs). N is --group-size, or by default a
    fixed function of the model and the device kind (``group_sizes``), stated by --dry-run.

    A grid is packed here, plan order kept inside and across groups. A chained plan packs its
    preparation trials and, as they become ready, its children (sizes per phase); the adaptive
    search proposes a population per Tune trial (ChainedSearcher.pack, BoundarySearcher.pack).

    Returns the plan and the group size it was packed with (what the manifest records: one size, or
    per model and phase); ``opts`` is only read."""
    from .searchers import BoundarySearcher, ChainedSearcher, GridSearcher, Shapes, pack_indices
    s = spec.searcher
    if not isinstance(s, (GridSearcher, ChainedSearcher, BoundarySearcher)):
        return spec, opts.group_size
    on_gpu = opts.gpus_per_trial > 0
    device = "GPU" if on_gpu else "CPU"
    auto = opts.group_size is None
    given = opts.group_size
    shapes = Shapes()               # configs that differ only in seed and λ resolve alike (100k plans)
    if isinstance(s, ChainedSearcher):
        preps = [shapes(p["config"]) for p in s._state["preps"]]
        kids = [shapes(c) for p in s._state["preps"] for c in p["children"]]
        prep_sizes = group_sizes(preps, given, on_gpu)
        child_sizes = group_sizes(kids, given, on_gpu)
        # the resolved sizes are what the manifest stores: a --resume that would pack otherwise is named
        group_size = _one_or_all({**{f"prep:{m}": v for m, v in prep_sizes.items()},
                                  **{f"child:{m}": v for m, v in child_sizes.items()}})
        if max([*prep_sizes.values(), *child_sizes.values()]) <= 1:
            if auto:
                spec.notes.append(f"one trial per Tune trial (default group size 1 on {device})")
            return spec, group_size
        s.pack(prep_sizes, child_sizes)
        spec.notes.append(
            f"{len(preps)} preparation trials packed into {len(s._state['prep_groups'])} Tune trials (group size "
            f"{_sizes_text(prep_sizes, auto)} on {device}); follow-ups packed as they become "
            f"ready, the children ready at one time together (group size {_sizes_text(child_sizes, auto)}): "
            f"about {s.size} Tune trials if every preparation trial is accepted")
        return spec, group_size
    if isinstance(s, BoundarySearcher):
        sizes = group_sizes([shapes(c) for c in s.plan_configs()], given, on_gpu)
        group_size = _one_or_all(sizes)
        if max(sizes.values()) <= 1:
            if auto:
                spec.notes.append(f"one trial per Tune trial (default group size 1 on {device})")
            return spec, group_size
        s.pack(sizes)
        g, ahead = s._state["group_size"], s._state["max_ahead"]
        spec.notes.append(
            f"adaptive trials packed: the initial design in Tune trials of up to {s._design_chunk()}, then each "
            f"round proposes up to {g} x {ahead} trials (group size {_sizes_text(sizes, auto)} on "
            f"{device}; {ahead} Tune trials ahead of the results): about {s.size} Tune trials for {s.members} trials")
        return spec, group_size
    cfgs = s.plan_configs()
    trial_cfgs = [shapes(c) for c in cfgs]     # only model and the group key are read from these
    sizes = group_sizes(trial_cfgs, given, on_gpu)
    group_size = _one_or_all(sizes)
    if max(sizes.values()) <= 1:
        if auto:
            spec.notes.append(f"one trial per Tune trial (default group size 1 for {', '.join(sizes)} on {device})")
        return spec, group_size
    groups = pack_indices(trial_cfgs, sizes)
    from .trainable import pack_group
    packed = [cfgs[g[0]] if len(g) == 1 else pack_group([cfgs[i] for i in g]) for g in groups]
    spec.searcher = GridSearcher(packed)
    spec.notes.append(f"{len(cfgs)} trials packed into {len(packed)} Tune trials (group size "
                      f"{_sizes_text(sizes, auto)} on {device})")
    return spec, group_size


def _one_or_all(sizes: dict):
    """One size when every model (and phase) has the same, else the dict (the manifest stores it)."""
    return next(iter(sizes.values())) if len(set(sizes.values())) == 1 else dict(sizes)


def check_order(spec, opts) -> None:
    """--order orders a grid; chained and adaptive plans order their trials themselves."""
    from .searchers import GridSearcher
    if opts.order is not None and not isinstance(spec.searcher, GridSearcher):
        raise ConfigError(f"--order={opts.order} orders grid plans; this {opts.family} plan is "
                          f"{type(spec.searcher).__name__.replace('Searcher', '').lower()} (drop --order)")


def plan_kind(spec) -> str:
    """The manifest's plan_kind: "grid", or the searcher's class name."""
    from .searchers import GridSearcher
    return "grid" if isinstance(spec.searcher, GridSearcher) else type(spec.searcher).__name__


def members(spec) -> int:
    """The plan's trials (members of grouped Tune trials counted one each)."""
    return sum(len(c.get("group", [c])) for c in spec.searcher.plan_configs())


def sweep_manifest(opts, spec) -> dict:
    """The manifest a start writes for this packed plan."""
    return {**preflight.sweep_manifest(opts, spec.searcher.plan_configs()),
            "plan_kind": plan_kind(spec), "members": members(spec)}
