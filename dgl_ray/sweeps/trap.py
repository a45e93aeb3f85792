"""Tδ trap escape: a run at λ 0.60 kept if trapped (error >= 0.85), then interventions from its
checkpoint: λ x LR multiplier; escaped if the final error < 0.60.

    python -m dgl_ray.sweeps.trap --intervention-lambdas 0.60,0.0,0.20 --lr-multipliers 0.01,0.1,1 --n 5
"""
import sys

from ..analysis.report_parts import TRAP_SECTION
from ..analysis.tables import escape_table
from ..paper import ESCAPE_BELOW, TRAP_ACCEPT
from ..tune.options import base_config, scaled, seeds
from ..tune.options import float_list as parse_range
from ..tune.runner import SweepSpec
from ..tune.searchers import ChainedSearcher
from ._common import chain_dir, const, with_prep_counts
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--trap-lambda", type=float, default=0.60)
    p.add_argument("--trap-epochs", type=int, default=None, help="paper 100; digits 30")
    p.add_argument("--trap-accept", type=float, default=TRAP_ACCEPT, help="trapped if error >= this")
    p.add_argument("--intervention-lambdas", default="0.60,0.0,0.20")
    p.add_argument("--lr-multipliers", default="0.01,0.1,1")
    p.add_argument("--intervention-epochs", type=int, default=None, help="paper 50; digits 15")
    p.add_argument("--escape-below", type=float, default=ESCAPE_BELOW)


def plan(o):
    lams = parse_range(o.intervention_lambdas, "--intervention-lambdas")
    mults = parse_range(o.lr_multipliers, "--lr-multipliers")
    te = scaled(o, o.trap_epochs, 100, 30)
    ie = scaled(o, o.intervention_epochs, 50, 15)
    base = base_config(o)
    base.setdefault("checkpoint_every", 10)
    stages = []
    for seed in seeds(o, 5):
        for eta in o.eta_list:
            prep = dict(base, seed=seed, eta=eta, branch="trap", accept=f">={o.trap_accept:g}",
                        lambda_schedule=const(o.trap_lambda, te, "init"))
            kids = [dict(base, seed=seed, eta=eta, origin="collapse", lr_multiplier=m, lr_milestones=[],
                         intervention=f"λ={lam:g} lr×{m:g}", lambda_schedule=const(lam, ie, "intervention"))
                    for lam in lams for m in mults]
            stages.append((prep, (">=", o.trap_accept), kids))
    s = ChainedSearcher(stages, chain_dir(o))
    # the paper's Tδ table: escapes per intervention (λ × LR multiplier), the same table the report shows
    return SweepSpec(FAMILY.name, s, summarize=with_prep_counts(lambda df: escape_table(
        df, escape_below=o.escape_below, by=("lambda", "lr_multiplier"))))


FAMILY = register(Family(
    name="trap",
    paper_ids=("Tδ",),
    summary="Tδ trap escape interventions",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("trap", 2, (),
                           ("--trap-epochs", "2", "--trap-accept", "0", "--intervention-epochs", "1",
                            "--intervention-lambdas", "0.0", "--lr-multipliers", "1"), "Tδ escapes from the trap"),),
    refuses=("widths",),      # the trap protocol trains one width
    labels=("intervention",),
    thresholds=("trap_accept", "escape_below"),
    report=TRAP_SECTION,
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
