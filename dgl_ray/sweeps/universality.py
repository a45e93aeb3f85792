"""V1–V4 universality: the Tα checkpoint sweeps (0.30–0.70 step 0.05, 3 epochs per λ, LR 0.001) under
another noise, supervision, model or data set.

    python -m dgl_ray.sweeps.universality --variant asymmetric      # V1 (V2: trusted, V3: resnet34, V4: cifar100)
"""
import sys

from ..errors import ConfigError
from ..tune.cli import main as cli_main
from ..tune.runner import SweepSpec
from . import hysteresis
from ._common import add_prep_args, with_prep_counts

FAMILY = "universality"
VARIANTS = ("asymmetric", "trusted", "resnet34", "cifar100")


def add_args(p):
    p.add_argument("--variant", default="asymmetric", help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("--trusted-fraction", type=float, default=0.05, help="V2: trusted fraction (paper 0.01, 0.05)")
    p.add_argument("--holds", default="3")
    p.add_argument("--up-range", default="0.30,0.70")
    p.add_argument("--down-range", default="0.70,0.30")
    p.add_argument("--ladder-step", type=float, default=0.05)
    p.add_argument("--sweep-lr", type=float, default=0.001)
    add_prep_args(p)


def plan(o):
    extra = {"variant": o.variant}
    if o.variant == "asymmetric":
        o.noise = "asymmetric"
    elif o.variant == "trusted":
        extra["trusted_fraction"] = o.trusted_fraction
    elif o.variant == "resnet34":
        o.model = "resnet34"
    elif o.variant == "cifar100":
        if o.dataset == "digits":
            o.dataset = "cifar100"
    else:
        raise ConfigError(f"--variant {o.variant!r}; allowed: {', '.join(VARIANTS)}")
    s = hysteresis.sweep_plan(o, FAMILY, extra_base=extra)
    if o.variant == "trusted":
        s.update_preparations(trusted_fraction=o.trusted_fraction)
    from ..analysis import gap_table
    return SweepSpec(FAMILY, s, summarize=with_prep_counts(gap_table))


def main(argv=None):
    return cli_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
