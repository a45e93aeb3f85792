"""T1a/T13 lifetimes (metastability): an ordered init run, kept if its error <= 0.30, then a long
run at a λ inside the coexistence region from its checkpoint; survival by the paper's rule.

    python -m dgl_ray.sweeps.lifetime --targets 0.46 --observe-epochs 150 --n 50      # T1a (T13: 0.54, 300)
"""
import sys

from ..tune.cli import float_list as parse_range
from ..tune.cli import base_config, main as cli_main, scaled, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import ChainedSearcher
from ._common import chain_dir, const

FAMILY = "lifetime"


def add_args(p):
    p.add_argument("--targets", default="0.46", help="λ of the observation run(s)")
    p.add_argument("--init-lambda", type=float, default=0.35)
    p.add_argument("--init-epochs", type=int, default=None, help="paper 50; digits 30")
    p.add_argument("--init-accept", type=float, default=0.30, help="init kept if error <= this")
    p.add_argument("--observe-epochs", type=int, default=None, help="paper 150 (T1a) / 300 (T13); digits 30")
    p.add_argument("--observe-lr", type=float, default=0.01)
    p.add_argument("--observe-drop", type=int, default=None, help="LR x0.1 after this epoch (paper 25; digits 10)")


def plan(o):
    targets = parse_range(o.targets, "--targets")
    init_e = scaled(o, o.init_epochs, 50, 30)
    obs_e = scaled(o, o.observe_epochs, 150, 30)
    drop = scaled(o, o.observe_drop, 25, 10)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    stages = []
    for seed in seeds(o, 10):
        for eta in o.eta_list:
            for width in o.width_list:
                prep = dict(base, seed=seed, eta=eta, width=width, lambda_schedule=const(o.init_lambda, init_e, "init"))
                kids = [dict(base, seed=seed, eta=eta, width=width, origin="ordered", target_lambda=t,
                             lr=o.observe_lr, lr_milestones=[drop] if drop < obs_e else [],
                             lambda_schedule=const(t, obs_e, "observe")) for t in targets]
                stages.append((prep, ("<=", o.init_accept), kids))
    return SweepSpec(FAMILY, ChainedSearcher(stages, chain_dir(o)), summarize=summary)


def summary(df):
    from ..analysis import survival_table
    return survival_table(df, axes=("eta", "width", "target_lambda"))


def main(argv=None):
    return cli_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
