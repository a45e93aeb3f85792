"""T1a/T13 lifetimes (metastability): an ordered init run, kept if its error <= 0.30, then a long
run at a λ inside the coexistence region from its checkpoint; survival by the paper's rule.

    python -m dgl_ray.sweeps.lifetime --targets 0.46 --observe-epochs 150 --n 50      # T1a (T13: 0.54, 300)
"""
import sys

from ..analysis.tables import survival_table
from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import ChainedSearcher
from ._common import chain_dir, const, family_default, with_prep_counts
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--targets", default=None, help="λ of the observation run(s) (paper 0.46 / 0.54; digits 0.46,0.54,0.60)")
    p.add_argument("--init-lambda", type=float, default=None, help="paper 0.35; digits 0.30")
    p.add_argument("--init-epochs", type=int, default=None, help="paper 50; digits 30")
    p.add_argument("--init-accept", type=float, default=0.30, help="init kept if error <= this")
    p.add_argument("--observe-epochs", type=int, default=None, help="paper 150 (T1a) / 300 (T13); digits 30")
    p.add_argument("--observe-lr", type=float, default=None, help="paper 0.01; digits 0.1")
    p.add_argument("--observe-drop", type=int, default=None, help="LR x0.1 after this epoch, 0 for none (paper 25; digits none)")


def plan(o):
    targets = parse_range(family_default(o, "targets", "0.46"), "--targets")
    init_e = scaled(o, o.init_epochs, 50, 30)
    init_lam = family_default(o, "init_lambda", 0.35)
    obs_e = scaled(o, o.observe_epochs, 150, 30)
    drop = family_default(o, "observe_drop", 25)
    lr = family_default(o, "observe_lr", 0.01)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    stages = []
    for seed in seeds(o, 10):
        for eta in o.eta_list:
            for width in o.width_list:
                prep = dict(base, seed=seed, eta=eta, width=width, branch="ordered", accept=f"<={o.init_accept:g}",
                            lambda_schedule=const(init_lam, init_e, "init"))
                kids = [dict(base, seed=seed, eta=eta, width=width, origin="ordered", target_lambda=t,
                             lr=lr, lr_milestones=[drop] if 0 < drop < obs_e else [],
                             lambda_schedule=const(t, obs_e, "observe")) for t in targets]
                stages.append((prep, ("<=", o.init_accept), kids))
    return SweepSpec(FAMILY.name, ChainedSearcher(stages, chain_dir(o)), summarize=with_prep_counts(summary))


def summary(df):
    return survival_table(df, axes=("eta", "width", "target_lambda"))


FAMILY = register(Family(
    name="lifetime",
    paper_ids=("T1a", "T13"),
    summary="T1a/T13 metastable lifetime (survival)",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("metastability", 4, (),
                           ("--init-epochs", "2", "--observe-epochs", "2", "--targets", "0.54", "--init-accept", "1"),
                           "T1a/T13 survival of ordered runs above λ_c"),),
    labels=("target_lambda",),
    thresholds=("init_accept",),
    digits_defaults={
        "init_lambda": (0.30, "ordered inits pass the <= 0.30 rule (0.09-0.11)"),
        "observe_lr": (0.1, "at the paper's 0.01 -> 0.001 nothing moves: 6/6 survive at 0.46, 0.50 and 0.54 "
                            "with the same final error 0.021; at 0.1: 6/6, 6/6, 5/6, 1/6 at 0.46/0.50/0.54/0.60"),
        "observe_drop": (0, "constant LR (see observe_lr)"),
        "targets": ("0.46,0.54,0.60", "survival vs λ above λ_c 0.44: 6/6, 5/6, 1/6 (6 seeds, 30 epochs)"),
    },
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
