"""toy: the smallest experiment family, in one file (tests/test_toy_family.py; docs/FAMILIES.md, "Add an
experiment family"): two λ × one seed, one epoch, fresh runs; its own option --tag, carried by every trial
as the label ``tag``; its own report part, the final error per tag.

    python -m tests.toy_family --storage ./results --tag red
"""
import sys

from dgl_ray.analysis import final_rows
from dgl_ray.analysis.report_parts import ReportPart, SectionSpec
from dgl_ray.sweeps._common import grid
from dgl_ray.sweeps.family import Family, register
from dgl_ray.tune.options import base_config, float_list, scaled, seeds
from dgl_ray.tune.runner import SweepSpec
from dgl_ray.tune.searchers import GridSearcher


def options(p):
    p.add_argument("--tag", default="plain", help="a label every trial of the sweep carries")
    p.add_argument("--lambdas", default="0.3,0.5", help="λ values")


def plan(o):
    base = base_config(o, epochs=scaled(o, o.epochs, 1, 1), tag=o.tag)
    cfgs = grid(base, {"seed": seeds(o, 1), "lambda": float_list(o.lambdas, "--lambdas")}, o.order, "seed,lambda")
    return SweepSpec(FAMILY.name, GridSearcher(cfgs), summarize=tag_table)


def tag_table(rows, ctx=None):
    """Final test error per tag: the toy's own table (the sweep's summary and its report part)."""
    f = final_rows(rows, ["run"])
    return f.groupby("tag")["test_error"].agg(n="size", mean_error="mean").reset_index()


FAMILY = register(Family(
    name="toy",
    paper_ids=(),
    summary="toy family of the tests: 2 λ × 1 seed, 1 epoch",
    doc=__doc__,
    plan=plan,
    add_args=options,
    labels=("tag",),
    report=SectionSpec((ReportPart("tag_table", "fresh", tag_table,
                                   note=lambda rows, t, ctx: ctx.runs_note(rows, "final error per tag")),)),
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
