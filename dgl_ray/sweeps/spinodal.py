"""R3 / T1-T2 spinodals: an init phase at a fixed λ, then a one-way λ ladder (up or down).

    python -m dgl_ray.sweeps.spinodal --directions up,down --holds 1,3 --etas 0.4,0.8 --n 10      # R3
    python -m dgl_ray.sweeps.spinodal --config sweeps/R3.toml

R3: init 30 epochs at λ 0.35 (up) or 0.65 (down), constant LR; ladders 0.40->0.70 / 0.60->0.20 step
0.02. T1/T2 (preset): init 50 epochs at 0.35 / 0.70, ladders 0.54->0.70 / 0.54->0.38, hold 10.
"""
import sys

from ..analysis.frames import final_rows
from ..analysis.report_parts import SPINODAL_SECTION
from ..analysis.tables import spinodal_table
from ..errors import ConfigError
from ..paper import H_MIN
from ..tune.options import base_config, int_list, seeds
from ..tune.runner import SweepSpec
from ..tune.searchers import GridSearcher
from ._common import const, family_default, grid
from .family import CampaignStep, Family, register


def options(p):
    p.add_argument("--directions", default="up,down")
    p.add_argument("--holds", default="1,3", help="epochs per λ step")
    p.add_argument("--init-epochs", type=int, default=None, help="paper 30 (T1/T2: 50); digits 30")
    p.add_argument("--up-init", type=float, default=None, help="paper 0.35; digits 0.30")
    p.add_argument("--down-init", type=float, default=0.65)
    p.add_argument("--up-ladder", default=None, help="start,stop of the up ladder (paper 0.40,0.70; digits 0.30,0.80)")
    p.add_argument("--down-ladder", default="0.60,0.20", help="start,stop of the down ladder")
    p.add_argument("--ladder-step", type=float, default=0.02)
    p.add_argument("--up-start-max", type=float, default=0.30,
                   help="an up ladder counts only if its init ended ordered: error <= this (paper's init rule)")
    p.add_argument("--down-start-min", type=float, default=H_MIN,
                   help="a down ladder counts only if its init ended collapsed: error >= this (paper's H rule)")


def _pts(text, what):
    try:
        pts = [float(v) for v in str(text).split(",")]
    except ValueError:
        pts = []
    if len(pts) != 2:
        raise ConfigError(f"{what}={text!r}; expected start,stop (e.g. 0.40,0.70)")
    return pts


def plan(o):
    dirs = [d.strip() for d in o.directions.split(",") if d.strip()]
    if not dirs or set(dirs) - {"up", "down"}:
        raise ConfigError(f"--directions {o.directions!r}; allowed: up, down")
    holds = int_list(o.holds, "--holds")
    if not holds or min(holds) < 1:
        raise ConfigError(f"--holds {o.holds!r}: each hold must be >= 1 epoch")
    init_e = family_default(o, "init_epochs", 30)
    up_init, up_ladder = family_default(o, "up_init", 0.35), family_default(o, "up_ladder", "0.40,0.70")
    base = base_config(o)
    if o.lr_milestones is None:
        base["lr_milestones"] = []                         # R3: constant LR 0.1
    base.setdefault("checkpoint_every", 10)
    cfgs = []
    for c in grid(base, {"seed": seeds(o, 10), "direction": dirs, "hold": holds, "eta": o.eta_list,
                         "width": o.width_list}, o.order, "seed,direction,hold,eta,width"):
        d = c.pop("direction")
        init = up_init if d == "up" else o.down_init
        pts = _pts(up_ladder if d == "up" else o.down_ladder, f"--{d}-ladder")
        if (pts[1] > pts[0]) != (d == "up"):
            raise ConfigError(f"--{d}-ladder {pts} does not go {d}")
        c["lambda_schedule"] = const(init, init_e, "init") + [
            {"kind": "ladder", "points": pts, "step": o.ladder_step, "hold": c["hold"], "name": "ladder"}]
        cfgs.append(c)
    return SweepSpec(FAMILY.name, GridSearcher(cfgs),
                     summarize=lambda df: summary(df, o.up_start_max, o.down_start_min))


def start_states(df, up_start_max: float, down_start_min: float):
    """Per ladder run: its direction, the error at the end of its init phase, and whether that start
    is the one its ladder needs (up from an ordered run: error <= up_start_max; down from a collapsed
    one: error >= down_start_min). Runs without an init phase are judged by their first ladder step."""
    import pandas as pd
    lad = df[df["direction"].isin(["up", "down"]) & df["phase"].ne("init")]
    direction = lad.sort_values("epoch").groupby("run")["direction"].first()
    init = df[df["phase"].eq("init")]
    start = (final_rows(init, ["run"]).set_index("run")["test_error"] if len(init)
             else pd.Series(dtype=float))
    first = lad.sort_values("epoch").groupby("run")["test_error"].first()
    out = pd.DataFrame({"direction": direction})
    out["start_error"] = start.reindex(out.index).fillna(first.reindex(out.index))
    ok_up = out["direction"].eq("up") & out["start_error"].le(up_start_max)
    ok_down = out["direction"].eq("down") & out["start_error"].ge(down_start_min)
    out["ok"] = ok_up | ok_down
    return out.reset_index()


def guarded_table(df, up_start_max: float = 0.30, down_start_min: float = H_MIN):
    """The spinodal table of the ladders that start in the right state, with the rejected ones counted
    (``n_rejected``) and a coexistence width only where both directions have crossings: a width from
    an all-censored direction is a bound (``width_at_least``), not a measurement."""
    import numpy as np
    st = start_states(df, up_start_max, down_start_min)
    bad = st[~st["ok"]]
    t = spinodal_table(df[~df["run"].isin(bad["run"])])
    if not len(t):
        return t
    # the table's cell keys are the axes it grouped by: its columns that are also the runs' columns
    cell = [c for c in t.columns if c != "direction" and c in df.columns]
    info = df.drop_duplicates("run").set_index("run")
    bad = bad.assign(**{c: info.loc[bad["run"], c].to_numpy() for c in cell if c in info})
    t["n_rejected"] = [int(((bad["direction"] == r["direction"]) &
                            np.logical_and.reduce([bad[c].eq(r[c]) for c in cell] or [True])).sum())
                       for _, r in t.iterrows()]
    all_cens = t["n_censored"].eq(t["n"])
    t["width_at_least"] = np.nan
    note = []
    for i, r in t.iterrows():
        same = np.logical_and.reduce([t[c].eq(r[c]) for c in cell] or [np.ones(len(t), bool)])
        cens_dirs = sorted(t.loc[same & all_cens, "direction"])
        if cens_dirs and not np.isnan(r["coexistence_width"]):
            t.at[i, "width_at_least"] = r["coexistence_width"]
            t.at[i, "coexistence_width"] = np.nan
        note.append(f"all λ{'↑' if 'up' in cens_dirs else ''}{'↓' if 'down' in cens_dirs else ''} censored: "
                    f"width is a bound" if cens_dirs else "")
    t["note"] = note
    return t


def summary(df, up_start_max: float = 0.30, down_start_min: float = H_MIN):
    st = start_states(df, up_start_max, down_start_min)
    bad = st[~st["ok"]]
    if len(bad):
        print(f"spinodal: {len(bad)} of {len(st)} ladders left out: they start in the wrong state "
              f"({int(bad['direction'].eq('up').sum())} up ladders from an init error > {up_start_max:g}, "
              f"{int(bad['direction'].eq('down').sum())} down ladders from an init error < {down_start_min:g})")
    return guarded_table(df, up_start_max, down_start_min)


FAMILY = register(Family(
    name="spinodal",
    paper_ids=("R3", "T1", "T2"),
    summary="R3, T1/T2 spinodal ladders",
    doc=__doc__,
    plan=plan,
    add_args=options,
    campaign=(CampaignStep("spinodal", 3, (),
                           ("--holds", "1", "--init-epochs", "2", "--up-ladder", "0.4,0.5", "--down-ladder", "0.5,0.4",
                            "--ladder-step", "0.05"), "R3 spinodal points and kinetic lag"),),
    labels=("hold",),
    report=SPINODAL_SECTION,
    digits_defaults={
        "init_epochs": (30, "λ 0.30 for 30 epochs ends ordered (error 0.09-0.11)"),
        "up_init": (0.30, "λ 0.35 for 20 epochs ended at 0.16-0.34; λ_c(η 0.8) ≈ 0.30 (use 0.20 there)"),
        "up_ladder": ("0.30,0.80", "from λ 0.30 inits λ↑ is 0.68 (hold 1) / 0.72 (hold 3), none censored "
                                   "(4 seeds); a ladder ending at 0.70 left 1/3-2/3 censored"),
    },
))


if __name__ == "__main__":
    sys.exit(FAMILY.main())
