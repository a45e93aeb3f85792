"""W2 causal jump: from ordered and collapse checkpoints, jump to λ in {0.40, 0.50, 0.55} for 30
epochs at LR 0.001, evaluating every 5; the per-seed gap collapse − ordered at each target λ.

    python -m dgl_ray.sweeps.intervention --targets 0.40,0.50,0.55 --n 3
"""
import sys

from ..tune.cli import base_config, main as cli_main, scaled, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import ChainedSearcher
from ..tune.cli import float_list as parse_range
from ._common import chain_dir, collapse_prep, const, ordered_prep

FAMILY = "intervention"


def add_args(p):
    p.add_argument("--targets", default="0.40,0.50,0.55", help="λ after the jump")
    p.add_argument("--jump-epochs", type=int, default=None, help="paper 30; digits 15")
    p.add_argument("--jump-lr", type=float, default=0.001)
    p.add_argument("--prep-epochs", type=int, default=None, help="checkpoint epochs (paper 50/100; digits 30)")
    p.add_argument("--ordered-accept", type=float, default=0.20)
    p.add_argument("--collapse-accept", type=float, default=0.40)


def plan(o):
    targets = parse_range(o.targets, "--targets")
    je = scaled(o, o.jump_epochs, 30, 15)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    ev = o.eval_every if o.eval_every is not None else scaled(o, None, 5, 3)
    stages = []
    for seed in seeds(o, 3):
        for eta in o.eta_list:
            for width in o.width_list:
                for prep_fn, origin, acc in ((ordered_prep, "ordered", ("<", o.ordered_accept)),
                                             (collapse_prep, "collapse", (">=", o.collapse_accept))):
                    prep, _ = prep_fn(o, seed, eta, width)
                    kids = [dict(base, seed=seed, eta=eta, width=width, origin=origin, target_lambda=t, lr=o.jump_lr,
                                 lr_milestones=[], eval_every=ev, lambda_schedule=const(t, je, "jump")) for t in targets]
                    stages.append((dict(base, **prep), acc, kids))
    return SweepSpec(FAMILY, ChainedSearcher(stages, chain_dir(o)), summarize=summary)


def summary(df):
    from ..analysis import gap_table
    return gap_table(df)


def main(argv=None):
    return cli_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
