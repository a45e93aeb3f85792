"""Q1 finite-size scaling: the coexistence map at several model widths.

    python -m dgl_ray.sweeps.finite_size --widths 0.5,1,2 --lambdas 0.42:0.50:0.02 --n 10
"""
import sys

from ..tune.cli import float_list as parse_range
from ..tune.cli import base_config, main as cli_main, scaled, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import branch_summary, family_default, grid

FAMILY = "finite_size"
DEFAULTS = {"widths": "0.5,1,2"}


def add_args(p):
    p.add_argument("--lambdas", default=None,
                   help="λ values (paper: η=0.4 0.42:0.50:0.02, η=0.8 0.38-0.46; digits: DIGITS_DEFAULTS)")


def plan(o):
    epochs = scaled(o, o.epochs, 100, 30)
    base = base_config(o, epochs=epochs)
    base.setdefault("checkpoint_every", 10)
    cfgs = grid(base, {"seed": seeds(o, 10), "width": o.width_list, "lambda": parse_range(family_default(o, "lambdas", "0.42:0.50:0.02"), "--lambdas"),
                       "eta": o.eta_list}, o.order, "seed,width,lambda,eta")
    return SweepSpec(FAMILY, GridSearcher(cfgs), summarize=branch_summary)


def main(argv=None):
    return cli_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
