"""Markdown report: every table that applies to the data, with its figures.

:func:`build_report` takes a tidy frame, decides per section (one per ``family``, else per
``experiment``) which of the paper's reductions apply, writes ``report.md`` and PNG figures into
an output folder, and returns the Markdown text with the tables it computed.

What applies to what (:func:`plan_section`; a table appears only where the data has what it needs,
and every table not shown is listed with the reason):

- a family's own table first: λ schedules (``schedules``, runs with ``schedule_kind``) -> final error
  per schedule, and nothing that pools runs of different schedules by their final λ; trap
  (``trap``, Tδ, runs with an ``intervention`` phase) -> escapes per (λ, LR multiplier);
- fresh runs (no ``direction``, no ``origin``, no ``observe`` phase): branch table, coexistence map,
  error histograms, gap by branch; bimodality (dip test) at λ with >= 5 runs; critical point when
  >= 3 λ have >= 5 runs each; critical slowing (first epoch < 0.20) when runs have histories;
  phase diagram (η varies), finite-size curves (width varies);
- hysteresis: runs holding both legs (in-run loops, R1/R2; one row per experiment), or sweeps from
  checkpoints with both an up and a down leg (Tα); never one-way ladders of two experiments
  (R3 up and down runs are spinodal runs); gap = H leg − L leg;
- spinodal: one-leg ladders that are spinodal runs (family spinodal/R3/T1-spinodal, an ``init``
  phase, or the archive's own spinodal value); other one-leg ladders get no spinodal table;
- runs with an ``origin`` (from checkpoints): gap table by origin (with W2's paired gaps);
- runs with an ``observe`` phase (lifetime): survival table and Kaplan–Meier curves.

Each section says how many runs it has, how many have no evaluation, and which runs no table used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures as F
from . import tables as T
from .frames import final_rows


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A pipe table (no extra dependency); floats with ``floatfmt``, NaN as empty."""
    if df.empty:
        return "_(empty)_\n"

    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return ""
        if isinstance(v, (float, np.floating)):
            return format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


@dataclass
class Report:
    """What :func:`build_report` made: the Markdown text, its path, the tables and figure files."""
    markdown: str
    path: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "all"


def _section_key(df: pd.DataFrame) -> pd.Series:
    fam = df["family"] if "family" in df else pd.Series(None, index=df.index)
    exp = df["experiment"] if "experiment" in df else pd.Series("all", index=df.index)
    return fam.where(fam.notna(), exp).fillna("all").astype(str)


MIN_RUNS_PER_LAMBDA = 5  # a dip test or a variance peak needs many seeds at each λ
MIN_LAMBDAS = 3          # ... and a critical point several λ

SCHEDULE_FAMILIES = {"schedules", "Q2"}
TRAP_FAMILIES = {"trap", "Td", "Td1", "Td2", "Tδ", "Tδ1", "Tδ2"}
SPINODAL_FAMILIES = {"spinodal", "R3", "T1-spinodal", "T2-spinodal"}


@dataclass
class SectionPlan:
    """The parts of a section's rows each reduction uses, and the reductions declined, with why."""
    parts: dict[str, pd.DataFrame] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)


def _runs(d: pd.DataFrame, mask: pd.Series) -> set:
    return set(d.loc[mask, "run"])


def _has(d: pd.DataFrame, col: str) -> bool:
    return col in d and d[col].notna().any()


def plan_section(d: pd.DataFrame, family: str | None = None) -> SectionPlan:
    """Decide which reductions apply to the rows ``d`` of one section (see the module docstring)."""
    plan = SectionPlan()
    fam = str(family) if family is not None else ""
    if fam in SCHEDULE_FAMILIES or _has(d, "schedule_kind"):
        plan.parts["schedules"] = d
        plan.declined["branch/bimodality/critical point/hysteresis/spinodal"] = (
            "runs follow different λ schedules; pooling them by final λ would mix schedules")
        return plan
    # every trial carries an lr_multiplier (1 by default): the intervention phase marks a trap set
    if fam in TRAP_FAMILIES or ("phase" in d and d["phase"].eq("intervention").any()):
        plan.parts["trap"] = d
        plan.declined["critical point/bimodality"] = "an intervention set is not a λ scan"
        return plan
    # lifetime runs: an observe phase (a failed init keeps a flagged observe row, see archive)
    observe = _runs(d, d["phase"].eq("observe")) if "phase" in d else set()
    legs = d[d["direction"].isin(["up", "down"]) & ~d["run"].isin(observe)]
    n_dir = legs.groupby("run")["direction"].nunique()
    loop_runs = set(n_dir[n_dir == 2].index)
    one_leg = set(n_dir[n_dir == 1].index)
    origin_runs = _runs(d, d["origin"].notna()) - observe
    fresh = d[~d["run"].isin(observe | loop_runs | one_leg | origin_runs)]
    if len(fresh):
        plan.parts["fresh"] = fresh
    # hysteresis: runs that hold both legs (in-run loops) are paired by construction; one-leg runs
    # pair only as sweeps from checkpoints (an up leg from ordered, a down leg from collapse)
    loops = legs[legs["run"].isin(loop_runs)]
    if len(loops):
        plan.parts["hysteresis"] = loops
    swept = legs[legs["run"].isin(one_leg & origin_runs)]
    if len(swept):
        if set(swept["direction"]) == {"up", "down"}:
            plan.parts["hysteresis"] = pd.concat([plan.parts.get("hysteresis", swept.iloc[:0]), swept])
        else:
            plan.declined["hysteresis_table"] = (
                f"sweeps from checkpoints go {'/'.join(sorted(set(swept['direction'])))} only")
    if "hysteresis" not in plan.parts and one_leg - origin_runs:
        plan.declined.setdefault("hysteresis_table",
                                 "no run or checkpoint sweep pairs an up leg with a down leg")
    # spinodal: one-leg ladders that are spinodal runs, not any ladder
    ladders = one_leg - origin_runs
    if ladders:
        lad = d[d["run"].isin(ladders)]
        marks = pd.Series(fam in SPINODAL_FAMILIES, index=lad.index)
        if "phase" in lad:
            marks |= lad["run"].isin(_runs(lad, lad["phase"].eq("init")))
        for col in ("paper_spinodal", "ladder_end"):
            if col in lad:
                marks |= lad["run"].isin(_runs(lad, lad[col].notna()))
        if "protocol" in lad:
            marks |= lad["run"].isin(_runs(lad, lad["protocol"].eq("spinodal")))
        spin = set(lad.loc[marks, "run"])
        if spin:
            plan.parts["spinodal"] = d[d["run"].isin(spin)]
        if ladders - spin:
            plan.declined["spinodal_table"] = (
                f"{len(ladders - spin)} one-way ladders are not spinodal runs (no init phase, no "
                "spinodal family or value)")
    elif origin_runs & one_leg:
        plan.declined["spinodal_table"] = "sweeps from checkpoints are not spinodal ladders"
    if origin_runs:
        plan.parts["origin"] = d[d["run"].isin(origin_runs)]
    if observe:
        plan.parts["survival"] = d[d["run"].isin(observe)]
    return plan


def _fresh_decisions(f: pd.DataFrame, plan: SectionPlan) -> tuple[pd.DataFrame, bool, bool]:
    """(rows of the λ with enough runs for a dip test, critical point applies, slowing applies)."""
    per_lam = final_rows(f, ["run"]).groupby("lambda")["run"].nunique()
    many = per_lam[per_lam >= MIN_RUNS_PER_LAMBDA].index
    if not len(many):
        plan.declined["bimodality"] = (f"no λ has >= {MIN_RUNS_PER_LAMBDA} runs "
                                       f"(most: {int(per_lam.max()) if len(per_lam) else 0})")
    crit = len(many) >= MIN_LAMBDAS
    if not crit:
        plan.declined["critical_point"] = (f"needs >= {MIN_LAMBDAS} λ with >= "
                                           f"{MIN_RUNS_PER_LAMBDA} runs each; here {len(many)}")
    main = f[~f["phase"].eq("init")] if "phase" in f else f  # a preparation is not a run to time
    evals = main[main["test_error"].notna()].groupby("run").size()
    slowing = bool(len(evals)) and (evals > 1).mean() >= 0.5
    if not slowing:
        plan.declined["convergence_table"] = (
            "runs keep only a final error (no per-epoch history)" if len(evals)
            else "no evaluation outside an init phase")
    return f[f["lambda"].isin(many)], crit, slowing


def _width_notes(cp: pd.DataFrame) -> str:
    """The reasons, once each, why a critical-point row's logistic width is left empty."""
    notes = cp.loc[~cp["width_identifiable"].astype(bool), "width_note"].unique() \
        if "width_identifiable" in cp else []
    return "".join(f" Logistic width {n}: a mixed λ holds both L and H runs, and with fewer than two "
                   "the fit only returns its lower bound (1/20 of the λ step), so logistic_width is "
                   "left empty." for n in notes)


def build_report(df: pd.DataFrame, out_dir: str | Path, *, title: str = "dgl_ray analysis report",
                 figures: bool = True, source: str | None = None, n_boot: int = 200,
                 echo: bool = False) -> Report:
    """Write ``out_dir/report.md`` (and ``out_dir/figures/*.png``) for the tidy frame ``df``.

    One section per family (else experiment); in each, the tables that apply (see the module
    docstring) as Markdown and, with ``figures=True``, their figures. ``echo=True`` prints each table
    to the terminal as it is made. Returns a :class:`Report`.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}\n"]
    if source:
        md.append(f"Source: `{source}`\n")
    md.append(f"{df['run'].nunique()} runs, {len(df)} evaluations.\n")
    from ..provenance import describe
    prov = describe(df.attrs.get("provenance") or [])
    if prov:                                   # which code, packages and machines made these rows
        md.extend(["Provenance:\n", *prov, ""])
        if echo:
            print("provenance:\n" + "\n".join(prov))
    skipped = df.attrs.get("skipped") or []
    if skipped:
        md.append("Files not read:\n")
        md.extend(f"- `{p}`: {why}" for p, why in skipped)
        md.append("")
    excluded = df.attrs.get("excluded") or []
    if excluded:
        md.append("Rows excluded (values no table can use):\n")
        md.extend(f"- {exp}: {n} rows, {why}" for exp, why, n in excluded)
        md.append("")
    damaged = df.attrs.get("damaged_lines") or []
    if damaged:
        md.append(f"Damaged result.json lines ({len(damaged)}; not JSON, their rows are missing):\n")
        md.extend(f"- `{f}`: line {n}" for f, n in damaged)
        md.append("")
    notes = df.attrs.get("notes") or []
    if notes:
        md.append("Values the files do not give (left empty, not assumed):\n")
        md.extend(f"- {n}" for n in notes)
        md.append("")
    rep = Report("", out_dir / "report.md")

    def table(section: str, name: str, t: pd.DataFrame, note: str = ""):
        key = f"{section}/{name}"
        rep.tables[key] = t
        md.append(f"### {name}\n")
        if note:
            md.append(note + "\n")
        md.append(to_markdown(t))
        if echo:
            print(f"\n== {key} ==")
            print(t.to_string(index=False) if len(t) else "(empty)")

    def figure(section: str, name: str, make, *args, **kw):
        if not figures:
            return
        fig = make(*args, **kw)
        p = F.save_png(fig, fig_dir / f"{_slug(section)}_{name}.png")
        rep.figures.append(p)
        md.append(f"![{section} {name}](figures/{p.name})\n")
        caption = F.CAPTIONS.get(name.replace("_from_checkpoints", ""))
        if caption:                            # what the marks, bands and colours are
            md.append(f"_{caption}_\n")

    def runs_note(sub: pd.DataFrame, extra: str = "") -> str:
        n = sub["run"].nunique()
        noeval = sub.loc[sub["status"].astype(object).eq("no_evaluation"), "run"].nunique() \
            if "status" in sub else 0
        used.update(sub["run"])
        return f"Uses {n} runs" + (f" ({noeval} without evaluation, counted)" if noeval else "") + \
            (f"; {extra}" if extra else "") + "."

    for section, d in df.groupby(_section_key(df), sort=True):
        md.append(f"## {section}\n")
        n_noeval = d.loc[d["status"].astype(object).eq("no_evaluation"), "run"].nunique()
        md.append(f"{d['run'].nunique()} runs ({n_noeval} without any evaluation); experiments: "
                  f"{', '.join(sorted(map(str, d['experiment'].dropna().unique())))}\n")
        fam = d["family"].dropna().iloc[0] if d["family"].notna().any() else None
        plan = plan_section(d, fam)
        parts = plan.parts
        used: set = set()
        if "schedules" in parts:
            f = parts["schedules"]
            by = [c for c in ("schedule_kind", "schedule") if c in f and f[c].notna().any()] or ["experiment"]
            table(section, "schedule_table", T.final_error_table(f, by=by),
                  runs_note(f, f"final error of each run per {', '.join(by)}; L <= 0.20, H >= 0.40"))
        if "trap" in parts:
            f = parts["trap"]
            et = T.escape_table(f)
            table(section, "escape_table", et,
                  runs_note(f, f"{int(et['n'].sum()) if len(et) else 0} interventions; escaped if "
                               "the final error < 0.60"))
        if "fresh" in parts:
            f = parts["fresh"]
            table(section, "branch_table", T.branch_table(f),
                  runs_note(f, "final error of each run; L <= 0.20, H >= 0.40, T >= 0.85 (T counted "
                               "in H)"))
            figure(section, "coexistence_map", F.coexistence_map, f)
            figure(section, "error_histograms", F.error_histograms, f)
            if f.groupby("run")["epoch"].nunique().max() >= 2:     # runs with a history
                figure(section, "error_trajectories", F.error_trajectories, f)
            many, crit, slowing = _fresh_decisions(f, plan)
            if len(many):
                table(section, "bimodality", T.bimodality(many),
                      f"Hartigan's dip test (bimodal if p < 0.05) and Sarle's coefficient (> 5/9), "
                      f"at the λ with >= {MIN_RUNS_PER_LAMBDA} runs ({many['run'].nunique()} runs).")
            if crit:
                cp = T.critical_point(f, n_boot=n_boot)
                table(section, "critical_point", cp,
                      f"Variance peak and logistic fit of the H fraction; {n_boot} bootstrap draws."
                      + _width_notes(cp))
            if slowing:
                table(section, "convergence_table", T.convergence_table(f),
                      "Critical slowing: first epoch with error < 0.20 (from each run's history).")
            g = T.gap_table(f)
            if g["gap"].notna().any():
                table(section, "gap_table", g, "H and L sides by branch (fresh runs); gap = H − L.")
            if f["eta"].nunique() > 1:
                figure(section, "phase_diagram", F.phase_diagram, f)
            if f["width"].nunique() > 1:
                figure(section, "finite_size_curves", F.finite_size_curves, f)
        if "hysteresis" in parts:
            # in-run loops (H leg up) and sweeps from checkpoints (H leg from collapse) each get
            # their own table and figure: pooled, one H leg would be wrong for the other
            h_all = parts["hysteresis"]
            kinds = [(h_all[h_all["origin"].isna()], "", tuple(T.DEFAULT_AXES) + ("experiment",)),
                     (h_all[h_all["origin"].notna()], "_from_checkpoints", T.DEFAULT_AXES)]
            kinds = [k for k in kinds if len(k[0])]
            for h, suffix, axes in kinds:
                suffix = suffix if len(kinds) > 1 else ""
                table(section, f"hysteresis_table{suffix}", T.hysteresis_table(h, axes=axes),
                      runs_note(h, "mean error of each λ step, up leg beside down leg; gap = H leg − L "
                                   "leg (H_leg), up_minus_down the signed difference"))
                figure(section, f"hysteresis_loop{suffix}", F.hysteresis_loop, h, axes=axes)
        if "spinodal" in parts:
            sp = parts["spinodal"]
            table(section, "spinodal_table", T.spinodal_table(sp),
                  runs_note(sp, "3rd consecutive step with error > 0.40 (up) / < 0.25 (down); "
                                "censored at the ladder's end; std ddof 0 (the paper's)"))
            figure(section, "spinodal_points", F.spinodal_plot, sp)
        if "origin" in parts:
            o = parts["origin"]
            table(section, "gap_table_by_origin", T.gap_table(o),
                  runs_note(o, "H side = runs from collapse checkpoints, L side = from ordered ones; "
                               "gap = H − L; paired by seed (population std)"))
        if "survival" in parts:
            sv = parts["survival"]
            table(section, "survival_table", T.survival_table(sv),
                  runs_note(sv, "dead at 5 consecutive evaluations >= 0.40 (lifetime = epoch of the "
                                "5th − 4); failed inits counted in n_excluded"))
            figure(section, "survival_curves", F.survival_curves, sv)
        if plan.declined:
            md.append("Not shown here:\n")
            md.extend(f"- {name}: {why}" for name, why in plan.declined.items())
            md.append("")
        unused = set(d["run"]) - used
        if unused:
            md.append(f"{len(unused)} runs used by no table (e.g. "
                      f"{', '.join(sorted(map(str, unused))[:3])}).\n")
        if not parts:
            md.append("_No table applies to these rows._\n")
    rep.markdown = "\n".join(md)
    rep.path.write_text(rep.markdown)
    return rep
