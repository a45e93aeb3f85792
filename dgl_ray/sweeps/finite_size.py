"""Q1 finite-size scaling: the coexistence map at several model widths.

    python -m dgl_ray.sweeps.finite_size --widths 0.5,1,2 --lambdas 0.42:0.50:0.02 --n 10

``--adaptive BUDGET`` replaces the grid with the two-dimensional boundary search: λ within the --lambdas
range at each --widths value, λ_c(width) smooth in log width (quadratic with 3 or more widths, linear with
2; one logistic width), whole populations proposed where λ_c(width) and the coexistence width are learnt
most; ``--target-sd SD`` stops it once every width has SD(λ_c) <= SD and the coexistence width is known to ±25%.
"""
import sys

from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import add_adaptive_args, adaptive_plan, branch_summary, family_default, grid
from .family import Family, register


def options(p):
    p.add_argument("--lambdas", default=None,
                   help="λ values (paper: η=0.4 0.42:0.50:0.02, η=0.8 0.38-0.46; digits: the family's digits default, docs/FAMILIES.md)")
    add_adaptive_args(p)


def plan(o):
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("checkpoint_every", 10)
    lams = parse_range(family_default(o, "lambdas", "0.42:0.50:0.02"), "--lambdas")
    if getattr(o, "adaptive", None) is not None:
        return adaptive_plan(FAMILY.name, o, base, lams, axis="width")
    cfgs = grid(base, {"seed": seeds(o, 10), "width": o.width_list, "lambda": lams,
                       "eta": o.eta_list}, o.order, "seed,width,lambda,eta")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=branch_summary)



FAMILY = register(Family(
    name="finite_size",
    paper_ids=("Q1",),
    summary="Q1 finite-size scaling: width × λ × seeds",
    doc=__doc__,
    plan=plan,
    add_args=options,
    defaults={"widths": "0.5,1,2"},
    digits_defaults={"lambdas": ("0.32:0.53:0.03", "width shifts λ_c on digits: H fraction 0.67 at 0.38 (w 0.5), "
                                                   "0.33 at 0.44 (w 1), 0.67 at 0.50 (w 2), 6 seeds")},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
