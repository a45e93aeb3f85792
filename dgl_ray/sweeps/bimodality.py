"""S2 deep bimodality: many seeds at a few λ, test error every few epochs, dip test per λ.

    python -m dgl_ray.sweeps.bimodality --lambdas 0.50 --n 300        # paper: λ=0.50 seeds 0-299
"""
import sys

from ..analysis.tables import bimodality, branch_table
from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import family_default, grid
from .family import Family, register


def options(p):
    p.add_argument("--lambdas", default=None, help="λ values (paper 0.48,0.50,0.52; digits: the family's digits default, docs/FAMILIES.md)")


def plan(o):
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("eval_every", max(1, epochs // 10))      # paper: every 10 of 100 epochs
    base.setdefault("checkpoint_every", 5)
    cfgs = grid(base, {"seed": seeds(o, 50), "lambda": parse_range(family_default(o, "lambdas", "0.48,0.50,0.52"), "--lambdas"), "eta": o.eta_list,
                       "width": o.width_list}, o.order, "seed,lambda,eta,width")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=summary)


def summary(df):
    b = branch_table(df)[["lambda", "n", "L", "intermediate", "H", "mean_error", "std_error"]]
    try:
        d = bimodality(df)
        cols = [c for c in ("lambda", "dip", "p_value", "bimodal", "sarle") if c in d.columns]
        b = b.merge(d[cols], on="lambda", how="left")
    except Exception as e:  # dip test needs a few runs per λ
        print(f"(bimodality test skipped: {e})")
    return b


FAMILY = register(Family(
    name="bimodality",
    paper_ids=("S2",),
    summary="S2 deep bimodality: many seeds at a few λ",
    doc=__doc__,
    plan=plan,
    add_args=options,
    digits_defaults={"lambdas": ("0.42,0.44,0.46", "both branches at 0.42 (4 L / 2 H) and 0.44 (2 / 4) of 10 seeds")},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
