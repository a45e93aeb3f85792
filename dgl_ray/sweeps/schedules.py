"""Q2 λ schedules: fixed ordered/collapse λ, quenches up/down at an epoch, linear ramps.

    python -m dgl_ray.sweeps.schedules --kinds fixed-low,fixed-high,quench-up,quench-down,ramp-up,ramp-down --n 5
"""
import sys

from ..analysis.report_parts import SCHEDULES_SECTION
from ..errors import ConfigError
from ..tune.options import base_config, scaled, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import const, final_summary, grid
from .family import Family, register

KINDS = ("fixed-low", "fixed-high", "quench-up", "quench-down", "ramp-up", "ramp-down")


def options(p):
    p.add_argument("--kinds", default=",".join(KINDS), help=f"schedules: {', '.join(KINDS)}")
    p.add_argument("--low", type=float, default=0.35, help="the ordered-side λ")
    p.add_argument("--high", type=float, default=0.60, help="the collapse-side λ")
    p.add_argument("--quench-at", type=int, default=None, help="epoch of the quench (paper 30; digits 10)")


def schedule(kind, lo, hi, epochs, at):
    if kind == "fixed-low":
        return const(lo, epochs)
    if kind == "fixed-high":
        return const(hi, epochs)
    if kind in ("quench-up", "quench-down"):
        a, b = (lo, hi) if kind == "quench-up" else (hi, lo)
        if not 0 < at < epochs:
            raise ConfigError(f"--quench-at={at} must lie inside (0, epochs={epochs})")
        return const(a, at, "before") + const(b, epochs - at, "after")
    a, b = (lo, hi) if kind == "ramp-up" else (hi, lo)
    return [{"kind": "ramp", "start": a, "stop": b, "epochs": epochs}]


def plan(o):
    kinds = [k.strip() for k in o.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise ConfigError(f"--kinds {o.kinds!r}: unknown {bad or 'empty'}; allowed: {', '.join(KINDS)}")
    epochs = scaled(o, o.epochs, 100, 30)
    at = scaled(o, o.quench_at, 30, 10)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    cfgs = []
    for c in grid(base, {"seed": seeds(o, 5), "schedule_kind": kinds, "eta": o.eta_list, "width": o.width_list},
                  o.order, "seed,schedule_kind,eta,width"):
        c["lambda_schedule"] = schedule(c["schedule_kind"], o.low, o.high, epochs, at)
        cfgs.append(c)
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=lambda df: final_summary(df, ["schedule_kind", "eta"]))


FAMILY = register(Family(
    name="schedules",
    paper_ids=("Q2",),
    summary="Q2 λ schedules: quenches and ramps",
    doc=__doc__,
    plan=plan,
    add_args=options,
    labels=("schedule_kind",),
    report=SCHEDULES_SECTION,
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
