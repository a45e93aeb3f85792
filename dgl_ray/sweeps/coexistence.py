"""S1 coexistence map: fresh runs over λ x seeds (x η x width), final test error per run.

    python -m dgl_ray.sweeps.coexistence --lambdas 0.42:0.56:0.02 --n 50

``--adaptive BUDGET`` replaces the uniform grid with the adaptive boundary search (λ within the --lambdas
range): a Bayesian logistic model of P(H | λ) proposes whole populations where λ_c and the coexistence width
are learnt together; ``--target-sd SD`` stops it once both are known (SD(λ_c) <= SD, width ±25%). It prints
λ_c, its posterior SD and the width with its 95% interval.
"""
import sys

from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import add_adaptive_args, adaptive_plan, branch_summary, family_default, grid
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--lambdas", default=None,
                   help="λ values, start:stop:step includes stop (paper 0.42:0.56:0.02; digits: the family's digits default, docs/FAMILIES.md)")
    # --adaptive, --adaptive-n0 and --adaptive-step are in every coexistence manifest since 2026-12: their
    # defaults stay, so that those sweeps resume; the newer adaptive options are recorded only when given
    p.add_argument("--adaptive", type=int, default=None, metavar="BUDGET",
                   help="adaptive boundary search with at most this many trials instead of the grid (λ within the "
                        "--lambdas range)")
    p.add_argument("--adaptive-n0", type=int, default=2,
                   help="adaptive: trials at each --lambdas value first (0: the design starts from its prior)")
    p.add_argument("--adaptive-step", type=float, default=0.01, help="adaptive: λ step of the proposals (0: continuous)")
    add_adaptive_args(p, budget=False)


def plan(o):
    lams = parse_range(family_default(o, "lambdas", "0.42:0.56:0.02"), "--lambdas")
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("checkpoint_every", 10)
    if o.adaptive is not None:
        return adaptive_plan(FAMILY.name, o, base, lams, n0=o.adaptive_n0, step=o.adaptive_step)
    cfgs = grid(base, {"seed": seeds(o, 50), "lambda": lams, "eta": o.eta_list, "width": o.width_list},
                o.order, "seed,lambda,eta,width")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=branch_summary)



FAMILY = register(Family(
    name="coexistence",
    paper_ids=("S1",),
    summary="S1 coexistence map: fresh runs, λ × seeds",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("phase_boundary", 8, (), ("--lambdas", "0.3,0.5", "--epochs", "2"),
                           "S1 phase boundary, critical point and critical slowing (fresh runs over λ)"),),
    digits_defaults={"lambdas": ("0.36:0.52:0.02", "L/H counts 6/1 at 0.40, 2/4 at 0.44, 0/10 at 0.48 (10 seeds): "
                                                 "0.42-0.56 is all H")},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
