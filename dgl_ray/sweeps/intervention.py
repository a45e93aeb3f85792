"""W2 causal jump: from ordered and collapse checkpoints, jump to λ in {0.40, 0.50, 0.55} for 30
epochs at LR 0.001, evaluating every 5; the per-seed gap collapse − ordered at each target λ.

    python -m dgl_ray.sweeps.intervention --targets 0.40,0.50,0.55 --n 3
"""
import sys

from ..analysis.tables import gap_table
from ..tune.options import base_config, scaled
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ._common import (ORDERED_LAMBDA_DIGITS, PREP_THRESHOLDS, add_prep_args, chained_searcher, const,
                      with_prep_counts)
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--targets", default="0.40,0.50,0.55", help="λ after the jump")
    p.add_argument("--jump-epochs", type=int, default=None, help="paper 30; digits 15")
    p.add_argument("--jump-lr", type=float, default=0.001)
    add_prep_args(p)


def plan(o):
    targets = parse_range(o.targets, "--targets")
    je = scaled(o, o.jump_epochs, 30, 15)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    ev = o.eval_every if o.eval_every is not None else scaled(o, None, 5, 3)

    def children(b, seed, eta, width):
        return [dict(base, seed=seed, eta=eta, width=width, origin=b, target_lambda=t, lr=o.jump_lr,
                     lr_milestones=[], eval_every=ev, lambda_schedule=const(t, je, "jump")) for t in targets]
    return SweepSpec(FAMILY.name, chained_searcher(o, base, children, 3), summarize=with_prep_counts(summary))


def summary(df):
    return gap_table(df)


FAMILY = register(Family(
    name="intervention",
    paper_ids=("W2",),
    summary="W2 causal jumps from ordered/collapse checkpoints",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("causal_jump", 2, (),
                           ("--prep-epochs", "2", "--jump-epochs", "2", "--targets", "0.5", "--ordered-accept", "none",
                            "--collapse-accept", "none"), "W2 causal jump from ordered / collapse checkpoints"),),
    labels=("target_lambda",),
    thresholds=PREP_THRESHOLDS,
    digits_defaults={"ordered_lambda": (ORDERED_LAMBDA_DIGITS[0], "as hysteresis")},
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
