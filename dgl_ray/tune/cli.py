"""``python -m dgl_ray.sweeps.<family>``: the sweep command, top to bottom.

Parse the options (dgl_ray.tune.options), plan, check the plan, pack it into populations, check the
machine and the storage (dgl_ray.tune.preflight), then either print the plan (``--dry-run``) or write the
manifest and run it (dgl_ray.tune.runner). Every bad input is a one-line ``error: ...`` on stderr and exit
code 2, before ``ray.init``.
"""
from __future__ import annotations

import sys

from ..errors import ConfigError
from . import extend, faults, preflight
from .estimate import print_estimate
from ..manifest import extensions
from .options import parse
from .plan import check_order, members, pack_plan, plan_kind, print_plan
from .runner import run_sweep
from .trackers import check_trackers


def main(family, argv=None) -> int:
    """Run ``family``'s sweep (a dgl_ray.sweeps.family.Family) for ``argv``; the exit code: 0 done, 2 bad
    input (one line on stderr, before Ray starts), else the runner's or the fault's."""
    try:
        opts = parse(family, sys.argv[1:] if argv is None else argv)
        stored = preflight.stored_sweep(opts)      # the folder's manifest for --extend and --resume
        rows = None
        if opts.extend:         # an adaptive search grows from the folder's outcomes
            rows = extend.rows_of(opts.storage, opts.name)
            opts = opts.replace(known=extend.known_outcomes(rows))
        spec = family.plan(opts)
        opts = spec.opts or opts           # a plan that derived shared options from the family's own
        parts, added = None, None
        if opts.extend or extensions(stored):
            parts, added = _parts(family, opts, stored, spec, rows)
            spec = parts[-1].spec
            if opts.extend and not extend.open_trials(rows):
                for part in parts[:-1]:         # nothing left to run there: their Tune state stays untouched
                    part.run = False
            if opts.extend and not added:
                print(f"{family.name}: nothing to add: every trial of this plan is already in "
                      f"{preflight.sweep_path(opts)} (--resume continues its unfinished trials)")
                return 0
        preflight.validate_configs(spec.searcher.plan_configs())
        if spec.searcher.size < 1:
            raise ConfigError("the plan is empty: no trial to run (check the ranges)")
        check_order(spec, opts)
        for part in (parts or [])[:-1]:     # an earlier part starts again only when Tune never saved it
            part.spec, _ = pack_plan(part.spec, opts)
        spec, group_size = pack_plan(spec, opts)
        opts = opts.replace(group_size=group_size)      # the sizes used: what the manifest records
        if parts:
            parts[-1].spec = spec
        check_trackers(opts)
        machine_problems = preflight.check_machine(spec.searcher.plan_configs(), opts)
        preflight.check_address(opts)
        preflight.check_storage(opts)
        manifest = sweep_manifest(opts, spec)
        preflight.check_resume(opts, manifest, spec.searcher.plan_configs())
        if opts.extend:
            manifest = preflight.extended_manifest(stored, opts, manifest, parts[-1].folder, added)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if opts.dry_run:
        if opts.extend:
            print(f"{family.name}: --extend {preflight.sweep_path(opts)}: adds {added} trials ({parts[-1].folder}) "
                  f"to the {manifest['members'] - added} planned there; nothing there reruns (finished trials are "
                  f"kept, unfinished ones resume in their own part)")
        print_plan(spec, opts)
        print_estimate(spec, opts)
        for problem in machine_problems:
            print(f"  warning: {problem} (a run without --dry-run stops here)")
        return 0
    faults.current_opts = opts
    try:
        with faults.signals_end_the_sweep(), faults.compact_ray_logs(opts):   # in every phase
            try:
                if opts.extend:
                    preflight.record_extension(opts, manifest)
                elif not opts.resume:
                    preflight.start_manifest(opts, manifest)
                outcome = run_sweep(opts, spec, parts)
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


def _parts(family, opts, stored: dict, spec, rows):
    """An extended sweep's parts (``--extend``: the stored ones and the new one, checked: only the extensible
    options changed, a plan kind that can grow, an adaptive one from settled outcomes); -> (parts, trials the
    last one adds)."""
    if opts.extend:
        where = preflight.sweep_path(opts)
        extend.check_kinds(where, stored, spec.searcher.kind)
        extend.check_axes_only(where, stored, opts)
        if spec.searcher.kind != "grid":
            extend.check_settled(where, rows)
    return extend.plan_parts(family, opts, stored, spec if opts.extend else None)


def sweep_manifest(opts, spec) -> dict:
    """The manifest a start writes for this packed plan."""
    return {**preflight.sweep_manifest(opts, spec.searcher.plan_configs()),
            "plan_kind": plan_kind(spec), "members": members(spec)}
