"""Markdown report: every table that applies to the data, with its figures.

:func:`build_report` takes a tidy frame, decides per section (one per ``family``, else per
``experiment``) which of the paper's reductions apply, writes ``report.md`` and PNG figures into
an output folder, and returns the Markdown text with the tables it computed.

What applies to what (:func:`plan_section`; a table appears only where the data has what it needs,
and every table not shown is listed with the reason):

- a family's own table first: λ schedules (a section whose family says so, runs with ``schedule_kind``) -> final error
  per schedule, and nothing that pools runs of different schedules by their final λ; trap
  (a trap family, Tδ, runs with an ``intervention`` phase) -> escapes per (λ, LR multiplier);
- fresh runs (no ``direction``, no ``origin``, no ``observe`` phase): branch table, coexistence map,
  error histograms, gap by branch; bimodality (dip test) at λ with >= 5 runs; critical point when
  >= 3 λ have >= 5 runs each; critical slowing (first epoch < 0.20) when runs have histories;
  phase diagram (η varies), finite-size curves (width varies);
- hysteresis: runs holding both legs (in-run loops, R1/R2; one row per experiment), or sweeps from
  checkpoints with both an up and a down leg (Tα); never one-way ladders of two experiments
  (R3 up and down runs are spinodal runs); gap = H leg − L leg;
- spinodal: one-leg ladders that are spinodal runs (a spinodal family, R3/T1-spinodal, an ``init``
  phase, or the archive's own spinodal value); other one-leg ladders get no spinodal table;
- runs with an ``origin`` (from checkpoints): gap table by origin (with W2's paired gaps);
- runs with an ``observe`` phase (lifetime): survival table and Kaplan–Meier curves.

Each section says how many runs it has, how many have no evaluation, and which runs no table used.

The parts are data (:mod:`dgl_ray.analysis.report_parts`): each table and figure, the rows it reads and its
note. A section draws the parts of its family's :class:`SectionSpec` (``Family.report``, handed in by the
report command; the archive's experiments have theirs in ``ARCHIVE_SECTIONS``) whose rows it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..provenance import describe
from . import figures as F
from .frames import final_rows, n_decided, outcome_rows
from .report_parts import (ARCHIVE_SECTIONS, DECIDED_NOTE, GENERAL_SECTION, MIN_LAMBDAS, MIN_RUNS_PER_LAMBDA,
                           ReportPart, SectionSpec)


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


@dataclass
class SectionPlan:
    """The parts of a section's rows each reduction uses, and the reductions declined, with why."""
    parts: dict[str, pd.DataFrame] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)


def _runs(d: pd.DataFrame, mask: pd.Series) -> set:
    return set(d.loc[mask, "run"])


def _has(d: pd.DataFrame, col: str) -> bool:
    return col in d and d[col].notna().any()


def plan_section(d: pd.DataFrame, runs: str | None = None) -> SectionPlan:
    """Decide which reductions apply to the rows ``d`` of one section (see the module docstring);
    ``runs`` is what the section's family says its runs are (:class:`SectionSpec`)."""
    plan = SectionPlan()
    if runs == "schedules" or _has(d, "schedule_kind"):
        plan.parts["schedules"] = d
        plan.declined["branch/bimodality/critical point/hysteresis/spinodal"] = (
            "runs follow different λ schedules; pooling them by final λ would mix schedules")
        return plan
    # every trial carries an lr_multiplier (1 by default): the intervention phase marks a trap set
    if runs == "trap" or ("phase" in d and d["phase"].eq("intervention").any()):
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
        marks = pd.Series(runs == "spinodal", index=lad.index)
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


def _fresh_decisions(plan: SectionPlan) -> None:
    """The fresh runs' reductions that need enough of them: a dip test at the λ with many runs
    (``bimodal``), a critical point (``critical``), critical slowing (``slowing``); each one that
    does not apply is declined with why."""
    f = plan.parts["fresh"]
    per_lam = final_rows(f, ["run"]).groupby("lambda")["run"].nunique()
    many = per_lam[per_lam >= MIN_RUNS_PER_LAMBDA].index
    if not len(many):
        plan.declined["bimodality"] = (f"no λ has >= {MIN_RUNS_PER_LAMBDA} runs "
                                       f"(most: {int(per_lam.max()) if len(per_lam) else 0})")
    # the critical point's logistic fit also counts decided runs, by their branch
    early = outcome_rows(f)
    early = early[early["decided"]].groupby("lambda")["run"].nunique()
    n_crit = int((per_lam.add(early, fill_value=0) >= MIN_RUNS_PER_LAMBDA).sum())
    crit = n_crit >= MIN_LAMBDAS
    if not crit:
        plan.declined["critical_point"] = (f"needs >= {MIN_LAMBDAS} λ with >= "
                                           f"{MIN_RUNS_PER_LAMBDA} runs each; here {n_crit}")
    main = f[~f["phase"].eq("init")] if "phase" in f else f  # a preparation is not a run to time
    evals = main[main["test_error"].notna()].groupby("run").size()
    slowing = bool(len(evals)) and (evals > 1).mean() >= 0.5
    if not slowing:
        plan.declined["convergence_table"] = (
            "runs keep only a final error (no per-epoch history)" if len(evals)
            else "no evaluation outside an init phase")
    if len(many):
        plan.parts["bimodal"] = f[f["lambda"].isin(many)]
    if crit:
        plan.parts["critical"] = f
    if slowing:
        plan.parts["slowing"] = f


def section_plan(d: pd.DataFrame, spec: SectionSpec) -> SectionPlan:
    """:func:`plan_section`, with the fresh runs' reductions decided and the hysteresis rows split into
    in-run loops and sweeps from checkpoints (pooled, one H leg would be wrong for the other)."""
    plan = plan_section(d, spec.runs)
    if "fresh" in plan.parts:
        _fresh_decisions(plan)
    h = plan.parts.pop("hysteresis", None)
    if h is not None:
        for key, rows in (("hysteresis_loops", h[h["origin"].isna()]),
                          ("hysteresis_checkpoints", h[h["origin"].notna()])):
            if len(rows):
                plan.parts[key] = rows
    return plan


def build_report(df: pd.DataFrame, out_dir: str | Path, *, title: str = "dgl_ray analysis report",
                 figures: bool = True, source: str | None = None, n_boot: int = 200,
                 echo: bool = False, sections: Mapping[str, SectionSpec] | None = None) -> Report:
    """Write ``out_dir/report.md`` (and ``out_dir/figures/*.png``) for the tidy frame ``df``.

    One section per family (else experiment); in each, the tables that apply (see the module
    docstring) as Markdown and, with ``figures=True``, their figures. ``echo=True`` prints each table
    to the terminal as it is made. ``sections``: family name -> its :class:`SectionSpec` (the report
    command passes the registered families'; the archive's experiments have theirs in report_parts).
    Returns a :class:`Report`.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}\n"]
    if source:
        md.append(f"Source: `{source}`\n")
    md.append(f"{df['run'].nunique()} runs, {len(df)} evaluations.\n")
    if n_decided(df):
        md.append(f"{n_decided(df)} runs {DECIDED_NOTE}.\n")
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
    specs = {**ARCHIVE_SECTIONS, **(sections or {})}
    for section, d in df.groupby(_section_key(df), sort=True):
        md.append(f"## {section}\n")
        n_noeval = d.loc[d["status"].astype(object).eq("no_evaluation"), "run"].nunique()
        early = f", {n_decided(d)} decided early" if n_decided(d) else ""
        md.append(f"{d['run'].nunique()} runs ({n_noeval} without any evaluation{early}); experiments: "
                  f"{', '.join(sorted(map(str, d['experiment'].dropna().unique())))}\n")
        fam = d["family"].dropna().iloc[0] if d["family"].notna().any() else None
        spec = specs.get(str(fam), GENERAL_SECTION) if fam is not None else GENERAL_SECTION
        plan = section_plan(d, spec)
        writer = _SectionWriter(section, rep, md, fig_dir if figures else None, echo, n_boot)
        for part in spec.parts:
            rows = plan.parts.get(part.rows)
            if rows is not None:
                writer.draw(part, rows, plan)
        if plan.declined:
            md.append("Not shown here:\n")
            md.extend(f"- {name}: {why}" for name, why in plan.declined.items())
            md.append("")
        unused = set(d["run"]) - writer.used
        if unused:
            md.append(f"{len(unused)} runs used by no table (e.g. "
                      f"{', '.join(sorted(map(str, unused))[:3])}).\n")
        if not plan.parts:
            md.append("_No table applies to these rows._\n")
    rep.markdown = "\n".join(md)
    rep.path.write_text(rep.markdown)
    return rep


class _SectionWriter:
    """Draws one section's parts into the report: a table as Markdown (and on the terminal with
    ``echo``), a figure as a PNG under ``fig_dir`` (None: no figures)."""

    def __init__(self, section: str, rep: Report, md: list[str], fig_dir: Path | None, echo: bool, n_boot: int):
        self.section, self.rep, self.md, self.fig_dir, self.echo = section, rep, md, fig_dir, echo
        self.n_boot = n_boot
        self.used: set = set()                 # runs some table's note counted

    def runs_note(self, sub: pd.DataFrame, extra: str = "") -> str:
        n = sub["run"].nunique()
        noeval = sub.loc[sub["status"].astype(object).eq("no_evaluation"), "run"].nunique() \
            if "status" in sub else 0
        self.used.update(sub["run"])
        early = n_decided(sub)
        counted = [f"{noeval} without evaluation, counted"] * bool(noeval) + [f"{early} decided early"] * bool(early)
        return f"Uses {n} runs" + (f" ({'; '.join(counted)})" if counted else "") + \
            (f"; {extra}" if extra else "") + "."

    def draw(self, part: ReportPart, rows: pd.DataFrame, plan: SectionPlan) -> None:
        if part.figure and self.fig_dir is None:
            return
        made = part.make(rows, self)
        if made is None:
            return
        name = part.title(plan)
        if part.figure:
            self._figure(name, made)
        else:
            self._table(name, made, part.note(rows, made, self) if part.note else "")

    def _table(self, name: str, t: pd.DataFrame, note: str) -> None:
        key = f"{self.section}/{name}"
        self.rep.tables[key] = t
        self.md.append(f"### {name}\n")
        if note:
            self.md.append(note + "\n")
        self.md.append(to_markdown(t))
        if self.echo:
            print(f"\n== {key} ==")
            print(t.to_string(index=False) if len(t) else "(empty)")

    def _figure(self, name: str, fig) -> None:
        p = F.save_png(fig, self.fig_dir / f"{_slug(self.section)}_{name}.png")
        self.rep.figures.append(p)
        self.md.append(f"![{self.section} {name}](figures/{p.name})\n")
        caption = F.CAPTIONS.get(name.replace("_from_checkpoints", ""))
        if caption:                            # what the marks, bands and colours are
            self.md.append(f"_{caption}_\n")
