"""The paper in one command: a reduced run of every family on the embedded digits default, then one
report listing each claim of the paper's results README with the number measured here.

    python -m dgl_ray.campaign paper                      # about 30 minutes on 2 CPU cores
    python -m dgl_ray.campaign paper --dry-run            # the plan and its size; runs nothing
    python -m dgl_ray.campaign paper --storage DIR        # one folder: DIR/<step>/, DIR/campaign_report.md

Resumable: a step whose ``results.parquet`` exists is not run again; a step that was interrupted is
continued with the sweep's own ``--resume``. ``--scale F`` multiplies the seeds of every step;
``--smoke`` runs every step at a toy size (tests). ``--only a,b`` runs some steps.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .analysis.tables import branch_table, critical_point, gap_table, hysteresis_table, survival_table
from .errors import ConfigError
from .paper import CONVERGED_BELOW, ESCAPE_BELOW
from .sweeps._common import final_summary, prep_table
from .sweeps.family import Family, families
from .sweeps.spinodal import guarded_table
from .tune.options import parse as parse_sweep


@dataclass(frozen=True)
class Step:
    """One campaign step: a family's :class:`CampaignStep` (``Family.campaign``) with its family."""
    family: Family
    name: str                   # folder under --storage
    seeds: int                  # --n at scale 1
    args: tuple = ()
    smoke: tuple = ()           # added at --smoke: toy epochs and ranges
    why: str = ""


def steps() -> tuple[Step, ...]:
    """Every registered family's steps (each family's reduced size on digits and the paper's claim it
    measures; the families' digits defaults do the rest), in family-name order. The claims below stay
    here, keyed by step name: a claim may read several steps (metastability reads the phase boundary)."""
    return tuple(Step(f, s.name, s.seeds, s.args, s.smoke, s.why)
                 for f in families().values() for s in f.campaign)


def step_argv(s: Step, o) -> list[str]:
    n = 1 if o.smoke else max(1, int(round(s.seeds * o.scale)))
    argv = ["--storage", o.storage, "--name", s.name, "--n", str(n), *s.args,
            "--progress-interval", str(o.progress_interval)]
    if o.smoke:
        argv += list(s.smoke)
    if o.num_cpus is not None:
        argv += ["--num-cpus", str(o.num_cpus)]
    return argv


def step_state(o, s: Step) -> str:
    """done (its results.parquet exists), partial (a sweep folder without results), or new."""
    folder = os.path.join(o.storage, s.name)
    if os.path.exists(os.path.join(folder, "results.parquet")):
        return "done"
    return "partial" if os.path.isdir(folder) else "new"


def plan_size(o, s: Step) -> int:
    """(λ, seed) trials the step plans (at most: chained steps count every follow-up)."""
    opts = parse_sweep(s.family, step_argv(s, o))
    return s.family.plan(opts).searcher.size


def run_steps(o, steps) -> dict[str, int]:
    rcs = {}
    for s in steps:
        state = step_state(o, s)
        if state == "done":
            print(f"[campaign] {s.name}: done, kept", flush=True)
            rcs[s.name] = 0
            continue
        argv = step_argv(s, o) + (["--resume"] if state == "partial" else [])
        print(f"[campaign] {s.name}: python -m dgl_ray.sweeps.{s.family.name} {' '.join(argv)}", flush=True)
        t0 = time.time()
        rcs[s.name] = s.family.main(argv)
        print(f"[campaign] {s.name}: exit {rcs[s.name]} in {time.time() - t0:.0f} s", flush=True)
    return rcs


# ---- claims --------------------------------------------------------------------------------------

@dataclass
class Claim:
    claim: str
    paper: str
    measured: str = "not run"
    shows: str = "n/a"
    rule: str = ""
    extra: list = field(default_factory=list)


def _load(o, name):
    p = os.path.join(o.storage, name, "results.parquet")
    return pd.read_parquet(p) if os.path.exists(p) else None


def _yes(b) -> str:
    return "yes" if b else "no"


def _pct(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:+.1f}%"


def claim_hysteresis(loop, sweeps) -> list[Claim]:
    out = []
    c = Claim("Hysteresis loop (R1)", "H(λ↑) − L(λ↓) +44.7% at λ 0.22, +30.6% at 0.30, +30.0% at 0.40, +20.5% at 0.50",
              rule="shows if H(λ↑) − L(λ↓) > +10% at every one of λ 0.22, 0.30, 0.40")
    if loop is not None:
        t = hysteresis_table(loop).set_index("lambda")
        gaps = {lam: t["gap"].get(lam, np.nan) for lam in (0.22, 0.30, 0.40, 0.50)}   # H leg (up, in a loop) − L leg
        c.measured = ", ".join(f"{_pct(g)} at {lam:.2f}" for lam, g in gaps.items())
        c.shows = _yes(all(gaps[lam] > 0.10 for lam in (0.22, 0.30, 0.40)))
    out.append(c)
    c = Claim("Fixed-λ gap from checkpoints (Tα)", "gap 22–71% between L and H branch",
              rule="shows if the H − L gap by origin at λ 0.50 (hold 1) > +20%")
    s = Claim("Speed dependence (Tβ)", "gap 22% at 3 epochs/λ → 71% at 10 epochs/λ",
              rule="shows if the mean H − L gap over the ladder grows by > 5 points from hold 1 to hold 10")
    if sweeps is not None:
        kids = sweeps[sweeps["role"].eq("child")] if "role" in sweeps else sweeps
        g = gap_table(kids, axes=("hold",))
        at50 = g[np.isclose(g["lambda"], 0.50)].set_index("hold")["gap"]
        if len(at50):
            h0 = at50.index.min()
            c.measured = f"{_pct(at50.loc[h0])} at λ 0.50 (hold {h0:g})"
            c.shows = _yes(at50.loc[h0] > 0.20)
        by_hold = g.groupby("hold")["gap"].mean()
        if len(by_hold) > 1:
            s.measured = ", ".join(f"hold {h:g}: {_pct(v)}" for h, v in by_hold.items()) + " (mean over λ)"
            s.shows = _yes(by_hold.iloc[-1] - by_hold.iloc[0] > 0.05)
    return out + [c, s]


def claim_spinodal(df) -> Claim:
    c = Claim("Spinodal points (R3)", "λ↑ 0.556 (hold 1) → 0.674 (hold 3) at η 0.4; λ↓ 0.200 (the ladder's end)",
              rule="shows if most up ladders of every hold cross (λ↑ measured) and λ↑ moves up with the hold (kinetic lag)")
    if df is None:
        return c
    t = guarded_table(df)
    up = t[t["direction"].eq("up")].set_index("hold")
    dn = t[t["direction"].eq("down")].set_index("hold")
    parts = [f"λ↑ {r['lambda_mean']:.3f} (hold {h:g}, {r['n'] - r['n_censored']}/{r['n']} crossed, "
             f"{r['n_rejected']} rejected starts)" for h, r in up.iterrows()]
    parts += [f"λ↓ {r['lambda_mean']:.3f} (hold {h:g}, {r['n_censored']}/{r['n']} censored)" for h, r in dn.iterrows()]
    notes = sorted(set(t["note"]) - {""})
    c.measured = "; ".join(parts) + (f" [{'; '.join(notes)}]" if notes else "")
    crossed = bool(len(up)) and (up["n_censored"] < up["n"] / 2).all()
    c.shows = _yes(crossed and len(up) > 1 and up["lambda_mean"].iloc[-1] > up["lambda_mean"].iloc[0])
    return c


def claim_phase(df) -> list[Claim]:
    c = Claim("Phase boundary (S1)", "λ_c ≈ 0.48–0.50; L and H coexist at 0.48–0.50",
              rule="shows if some λ has both L and H runs and λ_c (logistic fit of the H fraction) lies in the grid")
    s = Claim("Critical slowing (exp_K)", f"first epoch with error < {CONVERGED_BELOW:.2f}: 51 → 76 epochs near λ_c 0.47",
              rule=f"shows if the runs that reach error < {CONVERGED_BELOW:.2f} need more epochs at the highest such λ "
                   "than at the lowest")
    if df is None:
        return [c, s]
    b = branch_table(df)
    cp = critical_point(df, n_boot=200).iloc[0]
    both = b[(b["L"] > 0) & (b["H"] > 0)]["lambda"].tolist()
    lc = cp["lambda_c_logistic"]
    c.measured = (f"λ_c {lc:.3f} (95% CI {cp['logistic_ci_low']:.3f}–{cp['logistic_ci_high']:.3f}), variance peak at "
                  f"{cp['lambda_c_var']:.2f}; L and H coexist at λ {', '.join(f'{v:.2f}' for v in both) or 'none'}")
    c.shows = _yes(bool(both) and b["lambda"].min() <= lc <= b["lambda"].max())
    d = df.sort_values("epoch")
    reach = d[d["test_error"] < CONVERGED_BELOW].groupby("run").first()
    if len(reach):
        per = reach.groupby("lambda")["epoch"].mean()
        n_at = reach.groupby("lambda").size()
        s.measured = ", ".join(f"λ {lam:.2f}: {per[lam]:.1f} ep (n={n_at[lam]})" for lam in per.index)
        s.shows = _yes(len(per) > 1 and per.iloc[-1] > per.iloc[0])
    return [c, s]


def claim_metastability(df, phase) -> Claim:
    c = Claim("Metastability (T1a/T13)", "ordered runs survive 50/50 at λ 0.46 (150 ep) and 0.54 (300 ep)",
              rule="shows if ≥ 80% of ordered runs survive at a λ at or above the lowest λ where every fresh run "
                   "ends H (phase_boundary)")
    if df is None:
        return c
    t = survival_table(df, axes=("target_lambda",))
    all_h = np.inf                      # the lowest λ of the phase boundary where every fresh run ends H
    if phase is not None:
        b = branch_table(phase)
        all_h = b.loc[(b["H"] == b["n"]) & (b["n"] > 0), "lambda"].min()
    parts, ok = [], False
    for _, r in t.iterrows():
        tag = f" (fresh runs all H from λ {all_h:.2f})" if r["lambda"] >= all_h - 1e-9 else ""
        parts.append(f"{int(r['survived'])}/{int(r['n'])} survive at λ {r['lambda']:.2f}{tag}")
        ok |= bool(tag) and r["survival_fraction"] >= 0.8
    c.measured = ", ".join(parts)
    c.shows = _yes(ok)
    return c


def claim_trap(df) -> Claim:
    c = Claim("Trap (Tδ)", "0 of 18 interventions escape the ≈90% trap",
              rule=f"shows if no intervention escapes (error < {ESCAPE_BELOW:.2f})")
    if df is None:
        return c
    t = final_summary(df[df["phase"].eq("intervention")], ["lambda", "lr_multiplier"], escape_below=ESCAPE_BELOW)
    c.measured = f"{int(t['escaped'].sum())} of {int(t['n'].sum())} escape; mean final error {t['mean_error'].mean():.2f}"
    c.shows = _yes(int(t["escaped"].sum()) == 0 and int(t["n"].sum()) > 0)
    return c


def _gap_at(df, lam):
    kids = df[df["role"].eq("child")] if "role" in df else df
    g = gap_table(kids)
    row = g[np.isclose(g["lambda"], lam)]
    return row["gap"].iloc[0] if len(row) else np.nan


def claim_universality(df) -> Claim:
    c = Claim("Universality (V1)", "gap at λ 0.50: asymmetric noise 46.3% (ResNet-34 53.5%, CIFAR-100 40.6%, η 0.8 44.6%)",
              rule="shows if the H − L gap at λ 0.50 under asymmetric noise > +20%")
    if df is None:
        return c
    g = _gap_at(df, 0.50)
    c.measured = f"{_pct(g)} at λ 0.50 (asymmetric noise)"
    c.shows = _yes(g > 0.20)
    return c


def claim_causal(df) -> Claim:
    c = Claim("Causal jump (W2)", "gap after 30 epochs: 67.2% / 66.3% / 64.4% at λ 0.40 / 0.50 / 0.55",
              rule="shows if the H − L gap > +20% at every target λ")
    if df is None:
        return c
    gaps = {lam: _gap_at(df, lam) for lam in sorted(df.loc[df["role"].eq("child"), "target_lambda"].dropna().unique())}
    c.measured = ", ".join(f"{_pct(g)} at λ {lam:.2f}" for lam, g in gaps.items())
    c.shows = _yes(bool(gaps) and all(g > 0.20 for g in gaps.values()))
    return c


def claims(o) -> pd.DataFrame:
    ld = {s.name: _load(o, s.name) for s in steps()}
    out = claim_hysteresis(ld["hysteresis_loop"], ld["checkpoint_sweeps"])
    out.append(claim_spinodal(ld["spinodal"]))
    out += claim_phase(ld["phase_boundary"])
    out.append(claim_metastability(ld["metastability"], ld["phase_boundary"]))
    out.append(claim_trap(ld["trap"]))
    out.append(claim_universality(ld["universality"]))
    out.append(claim_causal(ld["causal_jump"]))
    return pd.DataFrame([dict(claim=c.claim, paper=c.paper, digits=c.measured, shows=c.shows, rule=c.rule)
                         for c in out])


def prep_counts(o) -> pd.DataFrame:
    rows = []
    for s in steps():
        df = _load(o, s.name)
        if df is not None:
            t = prep_table(df)
            if len(t):
                rows.append(t.assign(step=s.name))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def write_report(o, rcs: dict, wall: float) -> str:
    from .analysis import to_markdown   # heavy: matplotlib (~0.3 s); --help and option errors answer without it
    c = claims(o)
    lines = ["# The paper's claims on the digits default", "",
             f"`python -m dgl_ray.campaign paper` (scale {o.scale:g}{', smoke' if o.smoke else ''}); "
             f"steps run this time: {len(rcs)}, wall {wall:.0f} s. Each claim: the paper's number, the number "
             f"measured here, and whether it shows by the rule given.", "", to_markdown(c), ""]
    pc = prep_counts(o)
    if len(pc):
        lines += ["## Preparation runs (kept / rejected)", "", to_markdown(pc), ""]
    failed = [k for k, v in rcs.items() if v != 0]
    if failed:
        lines += [f"Steps that did not finish: {', '.join(failed)} (run the command again to resume them).", ""]
    path = os.path.join(o.storage, "campaign_report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


# ---- command line ---------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(prog="python -m dgl_ray.campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("what", help="paper (the only campaign)")
    p.add_argument("--storage", default="./campaign", help="one folder for every step and the report")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every step's seeds (>= 1 seed each)")
    p.add_argument("--smoke", action="store_true", help="toy sizes (1 seed, 1-2 epochs): a check of the plumbing")
    p.add_argument("--only", default=None, help="comma list of steps to run (the report reads every step there is)")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--progress-interval", type=float, default=30.0)
    p.add_argument("--dry-run", action="store_true", help="print the plan and its size; run nothing")
    p.add_argument("--report-only", action="store_true", help="write the report from what is in --storage")
    o = p.parse_args(argv)
    if o.what != "paper":
        raise ConfigError(f"campaign {o.what!r} is unknown; allowed: paper")
    if not (o.scale > 0 and math.isfinite(o.scale)):
        raise ConfigError(f"--scale={o.scale} must be a positive number")
    all_steps = steps()
    names = [s.name for s in all_steps]
    o.steps = list(all_steps)
    if o.only:
        want = [w.strip() for w in o.only.split(",") if w.strip()]
        bad = [w for w in want if w not in names]
        if bad or not want:
            raise ConfigError(f"--only {o.only!r}: unknown steps {bad or 'none given'}; allowed: {', '.join(names)}")
        o.steps = [s for s in all_steps if s.name in want]
    o.storage = os.path.abspath(os.path.expanduser(o.storage))
    return o


def main(argv=None) -> int:
    try:
        o = parse(sys.argv[1:] if argv is None else argv)
        sizes = {}
        for s in o.steps:                      # every step's options are checked before anything runs
            with redirect_stdout(io.StringIO()):
                sizes[s.name] = plan_size(o, s)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if o.dry_run or not o.report_only:
        print(f"campaign paper: {len(o.steps)} steps in {o.storage} (scale {o.scale:g}{', smoke' if o.smoke else ''})")
        for s in o.steps:
            print(f"  {s.name:<18} {s.family.name:<13} {sizes[s.name]:>4} trials at most  [{step_state(o, s)}]  {s.why}")
        print(f"  total: {sum(sizes.values())} trials at most")
    if o.dry_run:
        return 0
    t0 = time.time()
    rcs = {} if o.report_only else run_steps(o, o.steps)
    path = write_report(o, rcs, time.time() - t0)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        print(claims(o)[["claim", "digits", "shows"]].to_string(index=False))
    print(f"report: {path}")
    return 0 if all(v == 0 for v in rcs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
