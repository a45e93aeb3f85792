"""M/N λ x η phase diagram: fresh runs over λ x η x seeds; H fraction per cell.

    python -m dgl_ray.sweeps.scan --lambdas 0.20,0.30,0.35,0.40,0.45,0.50,0.60 --etas 0.2,0.4,0.6,0.8 --n 5
"""
import sys

from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import branch_summary, grid
from .family import Family, register


def options(p):
    p.add_argument("--lambdas", default="0.20,0.30,0.35,0.40,0.45,0.50,0.60", help="λ values (N1/N2 grid)")


def plan(o):
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("checkpoint_every", 10)
    cfgs = grid(base, {"seed": seeds(o, 5), "eta": o.eta_list, "lambda": parse_range(o.lambdas, "--lambdas"),
                       "width": o.width_list}, o.order, "seed,eta,lambda,width")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=branch_summary)


FAMILY = register(Family(
    name="scan",
    paper_ids=("M1", "M2", "M3", "N1", "N2"),
    summary="M1–M3, N1/N2 λ scans and λ × η phase diagram",
    doc=__doc__,
    plan=plan,
    add_args=options,
    defaults={"etas": "0.2,0.4,0.6,0.8"},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
