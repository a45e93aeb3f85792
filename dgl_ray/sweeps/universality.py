"""V1–V4 universality: the Tα checkpoint sweeps (0.30–0.70 step 0.05, 3 epochs per λ, LR 0.001) under
another noise, supervision, model or data set.

    python -m dgl_ray.sweeps.universality --variant asymmetric      # V1 (V2: trusted, V3: resnet34, V4: cifar100)
"""
import sys

from ..analysis.tables import gap_table
from ..errors import ConfigError
from ..tune.runner import SweepSpec
from . import hysteresis
from ._common import ORDERED_LAMBDA_DIGITS, PREP_THRESHOLDS, add_prep_args, with_prep_counts
from .family import CampaignStep, Family, register

VARIANTS = ("asymmetric", "trusted", "resnet34", "cifar100")


def options(p):
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
        o = o.replace(noise="asymmetric")
    elif o.variant == "trusted":
        extra["trusted_fraction"] = o.trusted_fraction
    elif o.variant == "resnet34":
        o = o.replace(model="resnet34")
    elif o.variant == "cifar100":
        if o.dataset == "digits":
            o = o.replace(dataset="cifar100")
    else:
        raise ConfigError(f"--variant {o.variant!r}; allowed: {', '.join(VARIANTS)}")
    s = hysteresis.sweep_plan(o, FAMILY.name, extra_base=extra)
    if o.variant == "trusted":
        s.update_preparations(trusted_fraction=o.trusted_fraction)
    return SweepSpec(FAMILY.name, s, summarize=with_prep_counts(gap_table), opts=o)


FAMILY = register(Family(
    name="universality",
    paper_ids=("V1", "V2", "V3", "V4"),
    summary="V1–V4 universality (asymmetric noise, trusted subset, ResNet-34, CIFAR-100)",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("universality", 2, ("--variant", "asymmetric"),
                           ("--prep-epochs", "2", "--up-range", "0.45,0.5", "--down-range", "0.5,0.45", "--holds", "1",
                            "--ordered-accept", "none", "--collapse-accept", "none"), "V1 gap under asymmetric noise"),),
    labels=("hold", "variant"),
    thresholds=PREP_THRESHOLDS,
    digits_defaults={"ordered_lambda": (ORDERED_LAMBDA_DIGITS[0], "as hysteresis")},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
