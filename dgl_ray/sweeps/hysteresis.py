"""R1/R2 hysteresis loops in one run, and Tα/Tβ/Tγ sweeps from ordered/collapse checkpoints.

    python -m dgl_ray.sweeps.hysteresis --mode loop --holds 1,5 --n 10        # R1 (R2: --etas 0.8 --refine 0.38:0.54:0.01)
    python -m dgl_ray.sweeps.hysteresis --mode sweep --holds 1,3 --n 5       # Tα (Tβ: --holds 10)

loop: a fresh model climbs a λ ladder 0.20->0.64->0.22 (step 0.02, 0.01 inside --refine), --holds
epochs per λ. sweep: per seed an ordered checkpoint (λ 0.35, kept if error < 0.20) and a collapse
checkpoint (λ 0.60, kept if error >= 0.40); from each accepted checkpoint a ladder (ordered: up
--up-range, collapse: down --down-range; Tγ: 0.30->0.90 and 0.70->0.10) at LR 0.001, fresh SGD.
Every number of the preparation runs is a per-branch flag (--ordered-/--collapse- lambda, epochs,
milestones, accept, seed-offset, n, best): sweeps/Tb2.toml is the seed notebook Tβ2 (docs/FAMILIES.md).
"""
import sys

from ..analysis.tables import gap_table, hysteresis_table
from ..errors import ConfigError
from ..schedules import expand_lambda_schedule
from ..tune.options import base_config, int_list, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import (ORDERED_LAMBDA_DIGITS, PREP_THRESHOLDS, add_prep_args, chained_searcher, family_default,
                      grid, with_prep_counts)
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--mode", default="loop", help="loop (R1/R2) or sweep (Tα/Tβ/Tγ from checkpoints)")
    p.add_argument("--holds", default="1", help="epochs per λ step")
    p.add_argument("--points", default="0.20,0.64,0.22", help="loop: ladder waypoints")
    p.add_argument("--ladder-step", type=float, default=0.02)
    p.add_argument("--refine", default=None,
                   help="loop: lo:hi:step finer inside [lo, hi] ('' for none; paper 0.42:0.58:0.01, digits 0.36:0.52:0.01)")
    p.add_argument("--up-range", default="0.30,0.70", help="sweep: the ladder from ordered checkpoints")
    p.add_argument("--down-range", default="0.70,0.30", help="sweep: the ladder from collapse checkpoints")
    p.add_argument("--sweep-lr", type=float, default=0.001, help="sweep: LR after the checkpoint")
    add_prep_args(p)


def floats(text, what, n=None):
    try:
        v = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        v = []
    if not v or (n is not None and len(v) != n):
        raise ConfigError(f"{what}={text!r}; expected {n or 'some'} comma-separated numbers")
    return v


def sweep_plan(o, family, extra_base=None, default_holds=None):
    """Checkpoint sweeps shared by hysteresis --mode sweep and universality."""
    holds = int_list(o.holds if default_holds is None else default_holds, "--holds")
    up, down = floats(o.up_range, "--up-range", 2), floats(o.down_range, "--down-range", 2)
    base = base_config(o, **(extra_base or {}))
    base.setdefault("checkpoint_every", 10)
    ladders = {"ordered": up, "collapse": down}

    def children(b, seed, eta, width):
        return [dict(base, seed=seed, eta=eta, width=width, origin=b, hold=h, lr=o.sweep_lr, lr_milestones=[],
                     lambda_schedule=[{"kind": "ladder", "points": ladders[b], "step": o.ladder_step,
                                       "hold": h, "name": "ladder"}]) for h in holds]
    return chained_searcher(o, base, children, 5)


def plan(o):
    holds = int_list(o.holds, "--holds")
    if not holds or min(holds) < 1:
        raise ConfigError(f"--holds {o.holds!r}: each hold must be >= 1 epoch")
    if o.mode == "sweep":
        return SweepSpec(FAMILY.name, sweep_plan(o, FAMILY.name), summarize=with_prep_counts(gap_table))
    if o.mode != "loop":
        raise ConfigError(f"--mode {o.mode!r}; allowed: loop, sweep")
    pts = floats(o.points, "--points")
    seg = {"kind": "ladder", "points": pts, "step": o.ladder_step, "name": "ladder"}
    refine = family_default(o, "refine", "0.42:0.58:0.01")
    if refine:
        seg["refine"] = floats(refine.replace(":", ","), "--refine", 3)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    cfgs = []
    for c in grid(base, {"seed": seeds(o, 10), "hold": holds, "eta": o.eta_list, "width": o.width_list},
                  o.order, "seed,hold,eta,width"):
        c["lambda_schedule"] = [dict(seg, hold=c["hold"])]
        if o.lr_milestones is None and family_default(o, "loop_decay", False):
            # the paper's LR drops at 50 and 75 of its 100 epochs; on digits at the same fractions of the loop
            n = len(expand_lambda_schedule(c["lambda_schedule"]))
            c["lr_milestones"] = [m for m in (n // 2, (3 * n) // 4) if 1 <= m < n]
        cfgs.append(c)
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=summary)


def summary(df):
    return hysteresis_table(df)


FAMILY = register(Family(
    name="hysteresis",
    paper_ids=("R1", "R2", "Tα", "Tβ", "Tγ"),
    summary="R1/R2 loops in one run; Tα/Tβ/Tγ sweeps from checkpoints",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(
        CampaignStep("hysteresis_loop", 4, ("--mode", "loop"),
                     ("--points", "0.3,0.4,0.3", "--ladder-step", "0.1", "--refine", ""),
                     "R1 hysteresis loop in one run"),
        CampaignStep("checkpoint_sweeps", 2, ("--mode", "sweep", "--holds", "1,3,10"),
                     ("--holds", "1", "--prep-epochs", "2", "--up-range", "0.3,0.4", "--down-range", "0.4,0.3",
                      "--ladder-step", "0.1", "--ordered-accept", "none", "--collapse-accept", "none"),
                     "Tα/Tβ sweeps from ordered / collapse checkpoints: gap and its speed dependence"),
    ),
    labels=("hold",),
    thresholds=PREP_THRESHOLDS,
    digits_defaults={
        "refine": ("0.36:0.52:0.01", "the fine steps around digits' λ_c 0.44, as 0.42-0.58 around CIFAR's 0.50"),
        "loop_decay": (True, "LR x0.1 at 50% and 75% of the loop, as the paper's 50/75 of 100: "
                             "gap at λ 0.22/0.40/0.50 +0.35/+0.29/+0.28 vs +0.19/+0.09/+0.03 at constant LR (4 seeds)"),
        "ordered_lambda": ORDERED_LAMBDA_DIGITS,
    },
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
