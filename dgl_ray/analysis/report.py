"""Markdown report: every table that applies to the data, with its figures.

:func:`build_report` takes a tidy frame, decides per section (one per ``family``, else per
``experiment``) which of the paper's reductions apply, writes ``report.md`` and PNG figures into
an output folder, and returns the Markdown text with the tables it computed.

What applies to what (so that a fresh-run sweep does not get a meaningless spinodal table):

- fresh runs (no ``direction``, no ``origin``, no ``observe`` phase): branch table, coexistence map,
  error histograms, bimodality (λ with >= 4 runs), critical point (>= 3 λ values), gap by branch,
  phase diagram (η varies), finite-size curves (width varies);
- ladders with both legs (``direction`` up and down): hysteresis table and loop;
- ladders with one leg per run: spinodal table and points;
- runs with an ``origin`` (from checkpoints): gap table by origin (with W2's paired gaps);
- runs with an ``observe`` phase: survival table and Kaplan–Meier curves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures as F
from . import tables as T


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


def _applicable(d: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Sub-frames on which each kind of reduction applies."""
    out: dict[str, pd.DataFrame] = {}
    observe_runs = set(d.loc[d["phase"].eq("observe"), "run"]) if "phase" in d else set()
    fresh = d[d["direction"].isna() & d["origin"].isna() & ~d["run"].isin(observe_runs)]
    if len(fresh):
        out["fresh"] = fresh
    legs = d[d["direction"].isin(["up", "down"])]
    if len(legs):
        per_run = legs.groupby("run")["direction"].nunique()
        if set(legs["direction"]) == {"up", "down"}:
            out["hysteresis"] = legs
        single = per_run[per_run == 1].index
        if len(single):
            out["spinodal"] = d[d["run"].isin(single)]
    if d["origin"].notna().any():
        out["origin"] = d[d["origin"].notna()]
    if observe_runs:
        out["survival"] = d[d["run"].isin(observe_runs)]
    return out


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

    for section, d in df.groupby(_section_key(df), sort=True):
        md.append(f"## {section}\n")
        md.append(f"{d['run'].nunique()} runs; experiments: "
                  f"{', '.join(sorted(map(str, d['experiment'].dropna().unique())))}\n")
        parts = _applicable(d)
        if "fresh" in parts:
            f = parts["fresh"]
            table(section, "branch_table", T.branch_table(f),
                  "Final error of each run; L <= 0.20, H >= 0.40, T >= 0.85 (T counted in H).")
            figure(section, "coexistence_map", F.coexistence_map, f)
            figure(section, "error_histograms", F.error_histograms, f)
            if f.groupby("run")["epoch"].nunique().max() >= 2:     # runs with a history
                figure(section, "error_trajectories", F.error_trajectories, f)
            bt = T.branch_table(f)
            if (bt["n"] >= 4).any():
                table(section, "bimodality", T.bimodality(f),
                      "Hartigan's dip test (bimodal if p < 0.05) and Sarle's coefficient (> 5/9).")
            if f["lambda"].nunique() >= 3:
                table(section, "critical_point", T.critical_point(f, n_boot=n_boot),
                      f"Variance peak and logistic fit of the H fraction; {n_boot} bootstrap draws.")
            g = T.gap_table(f)
            if g["gap"].notna().any():
                table(section, "gap_table", g, "H and L sides by branch (fresh runs).")
            if f["eta"].nunique() > 1:
                figure(section, "phase_diagram", F.phase_diagram, f)
            if f["width"].nunique() > 1:
                figure(section, "finite_size_curves", F.finite_size_curves, f)
        if "hysteresis" in parts:
            table(section, "hysteresis_table", T.hysteresis_table(parts["hysteresis"]),
                  "Mean error of each λ step, up leg beside down leg; gap = up − down.")
            figure(section, "hysteresis_loop", F.hysteresis_loop, parts["hysteresis"])
        if "spinodal" in parts:
            table(section, "spinodal_table", T.spinodal_table(parts["spinodal"]),
                  "3rd consecutive step with error > 0.40 (up) / < 0.25 (down); censored at the "
                  "ladder's end.")
            figure(section, "spinodal_points", F.spinodal_plot, parts["spinodal"])
        if "origin" in parts:
            table(section, "gap_table_by_origin", T.gap_table(parts["origin"]),
                  "H side = runs from collapse checkpoints, L side = from ordered ones; paired by "
                  "seed (population std).")
        if "survival" in parts:
            table(section, "survival_table", T.survival_table(parts["survival"]),
                  "Dead at 5 consecutive evaluations >= 0.40 (lifetime = epoch of the 5th − 4).")
            figure(section, "survival_curves", F.survival_curves, parts["survival"])
        if not parts:
            md.append("_No table applies to these rows._\n")
    rep.markdown = "\n".join(md)
    rep.path.write_text(rep.markdown)
    return rep
