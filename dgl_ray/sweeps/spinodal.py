"""R3 / T1-T2 spinodals: an init phase at a fixed λ, then a one-way λ ladder (up or down).

    python -m dgl_ray.sweeps.spinodal --directions up,down --holds 1,3 --etas 0.4,0.8 --n 10      # R3
    python -m dgl_ray.sweeps.spinodal --config sweeps/R3.toml

R3: init 30 epochs at λ 0.35 (up) or 0.65 (down), constant LR; ladders 0.40->0.70 / 0.60->0.20 step
0.02. T1/T2 (preset): init 50 epochs at 0.35 / 0.70, ladders 0.54->0.70 / 0.54->0.38, hold 10.
"""
import sys

from ..errors import ConfigError
from ..tune.cli import base_config, int_list, main as cli_main, scaled, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import const, grid

FAMILY = "spinodal"


def add_args(p):
    p.add_argument("--directions", default="up,down")
    p.add_argument("--holds", default="1,3", help="epochs per λ step")
    p.add_argument("--init-epochs", type=int, default=None, help="paper 30 (T1/T2: 50); digits 20")
    p.add_argument("--up-init", type=float, default=0.35)
    p.add_argument("--down-init", type=float, default=0.65)
    p.add_argument("--up-ladder", default="0.40,0.70", help="start,stop of the up ladder")
    p.add_argument("--down-ladder", default="0.60,0.20", help="start,stop of the down ladder")
    p.add_argument("--ladder-step", type=float, default=0.02)


def _pts(text, what):
    try:
        pts = [float(v) for v in str(text).split(",")]
    except ValueError:
        pts = []
    if len(pts) != 2:
        raise ConfigError(f"{what}={text!r}; expected start,stop (e.g. 0.40,0.70)")
    return pts


def plan(o):
    dirs = [d.strip() for d in o.directions.split(",") if d.strip()]
    if not dirs or set(dirs) - {"up", "down"}:
        raise ConfigError(f"--directions {o.directions!r}; allowed: up, down")
    holds = int_list(o.holds, "--holds")
    if not holds or min(holds) < 1:
        raise ConfigError(f"--holds {o.holds!r}: each hold must be >= 1 epoch")
    init_e = scaled(o, o.init_epochs, 30, 20)
    base = base_config(o)
    if o.lr_milestones is None:
        base["lr_milestones"] = []                         # R3: constant LR 0.1
    base.setdefault("checkpoint_every", 10)
    cfgs = []
    for c in grid(base, {"seed": seeds(o, 10), "direction": dirs, "hold": holds, "eta": o.eta_list,
                         "width": o.width_list}, o.order, "seed,direction,hold,eta,width"):
        d = c.pop("direction")
        init = o.up_init if d == "up" else o.down_init
        pts = _pts(o.up_ladder if d == "up" else o.down_ladder, f"--{d}-ladder")
        if (pts[1] > pts[0]) != (d == "up"):
            raise ConfigError(f"--{d}-ladder {pts} does not go {d}")
        c["lambda_schedule"] = const(init, init_e, "init") + [
            {"kind": "ladder", "points": pts, "step": o.ladder_step, "hold": c["hold"], "name": "ladder"}]
        cfgs.append(c)
    return SweepSpec(FAMILY, GridSearcher(cfgs), summarize=summary)


def summary(df):
    from ..analysis import spinodal_table
    return spinodal_table(df)


def main(argv=None):
    return cli_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
