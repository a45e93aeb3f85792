"""S1 coexistence map: fresh runs over λ x seeds (x η x width), final test error per run.

    python -m dgl_ray.sweeps.coexistence --lambdas 0.42:0.56:0.02 --n 50

``--adaptive BUDGET`` replaces the uniform grid with the adaptive boundary searcher: it spends BUDGET
trials where outcomes split between the branches (more seeds, finer λ) and prints λ_c and the
coexistence width with bootstrap confidence intervals.
"""
import math
import sys

from ..analysis.frames import final_rows
from ..boundary import fit_boundary
from ..errors import ConfigError
from ..paper import H_MIN
from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import BoundarySearcher, GridSearcher
from ._common import branch_summary, family_default, grid
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--lambdas", default=None,
                   help="λ values, start:stop:step includes stop (paper 0.42:0.56:0.02; digits: the family's digits default, docs/FAMILIES.md)")
    p.add_argument("--adaptive", type=int, default=None, metavar="BUDGET",
                   help="adaptive boundary search with this many trials instead of the grid")
    p.add_argument("--adaptive-n0", type=int, default=2, help="adaptive: seeds per start λ")
    p.add_argument("--adaptive-step", type=float, default=0.01, help="adaptive: finest λ step")


def plan(o):
    lams = parse_range(family_default(o, "lambdas", "0.42:0.56:0.02"), "--lambdas")
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("checkpoint_every", 10)
    if o.adaptive is not None:
        if o.adaptive < 1:
            raise ConfigError(f"--adaptive={o.adaptive}: the budget must be >= 1 trial")
        if len(o.eta_list) > 1 or len(o.width_list) > 1:
            raise ConfigError("--adaptive searches one (η, width) cell; give one --etas and one --widths value")
        b = dict(base, eta=o.eta_list[0], width=o.width_list[0], seed=(o.seed_list or [0])[0])
        known = [k for k in o.known if math.isclose(k["eta"], b["eta"]) and math.isclose(k["width"], b["width"])]
        s = BoundarySearcher(b, lams, o.adaptive, n0=o.adaptive_n0, min_step=o.adaptive_step,
                              max_ahead=max(2, o.max_concurrent or 2), known=known)
        return SweepSpec(FAMILY.name, s, summarize=lambda df: _adaptive_summary(df, s))
    cfgs = grid(base, {"seed": seeds(o, 50), "lambda": lams, "eta": o.eta_list, "width": o.width_list},
                o.order, "seed,lambda,eta,width")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=branch_summary)


def _adaptive_summary(df, searcher):
    f = final_rows(df, ["run"])
    f = f[f["test_error"].notna()]
    score = (f["test_error"] >= H_MIN).astype(float)        # H fraction, as analysis.critical_point
    est = fit_boundary(f["lambda"].to_numpy(), score.to_numpy())
    print(f"adaptive: λ_c = {est['lambda_c']:.4f} (95% CI {est['lambda_c_ci'][0]:.4f}–{est['lambda_c_ci'][1]:.4f}), "
          f"coexistence width {est['width']:.4f} (95% CI {est['width_ci'][0]:.4f}–{est['width_ci'][1]:.4f}), "
          f"{len(f)} trials")
    return branch_summary(df)


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
