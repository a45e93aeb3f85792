"""The report's parts as data: every table and figure a section can show, the rows each reads, and what a
family (or an experiment of the paper's archive) says about its section.

:func:`dgl_ray.analysis.report.build_report` draws, per section, the parts of its :class:`SectionSpec` whose
rows the section has (``SectionPlan.parts``: ``fresh``, ``hysteresis_loops``, ``spinodal``, ...). A family's
``Family.report`` is a SectionSpec; the report command passes the registered families' specs in, and the
archive's experiments have theirs here (:data:`ARCHIVE_SECTIONS`): analysis never imports the families.

The part functions import ``tables`` and ``figures`` when drawn: a family module imports this table, and the
sweep driver must not pay for scipy and matplotlib at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..paper import CONVERGED_BELOW, DEATH_MIN, DEATH_RUN, ESCAPE_BELOW, H_MIN, L_MAX, SPINODAL_DOWN, \
    SPINODAL_RUN, SPINODAL_UP, T_MIN

MIN_RUNS_PER_LAMBDA = 5  # a dip test or a variance peak needs many seeds at each λ
MIN_LAMBDAS = 3          # ... and a critical point several λ
# what a decided run (--decide-early) is to every table: said once, in the report and under the tables
DECIDED_NOTE = ("decided early (--decide-early: stopped once the branch classifier was sure of the final "
                "branch; their branch counts in n, frac_H and λ_c, never as a final error)")


@dataclass(frozen=True)
class ReportPart:
    """One table or figure of a section.

    ``make(rows, ctx)`` returns the table (a DataFrame) or the figure, or None where these rows do not
    call for it; ``note(rows, table, ctx)`` is the prose under a table's title (``ctx.runs_note`` counts
    the runs it uses). ``name`` is the table's key and the figure's file stem; a callable gets the
    section's plan (a name that depends on which other parts are there)."""
    name: str | Callable[[Any], str]
    rows: str                               # the key of SectionPlan.parts it reads
    make: Callable[[Any, Any], Any]
    figure: bool = False
    note: Callable[[Any, Any, Any], str] | None = None

    def title(self, plan) -> str:
        return self.name(plan) if callable(self.name) else self.name


@dataclass(frozen=True)
class SectionSpec:
    """A section's parts, in order, and what its runs are where the rows alone do not say:
    ``runs="schedules"`` or ``"trap"``: every run is one (nothing else applies);
    ``runs="spinodal"``: its one-way ladders are spinodal runs."""
    parts: tuple[ReportPart, ...]
    runs: str | None = None


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


# ---- the parts ------------------------------------------------------------------------------------

def _tables():
    from . import tables    # heavy: scipy (~0.4 s); cli imports this module (via family.py) and stays light
    return tables


def _figures():
    from . import figures   # heavy: matplotlib (~0.6 s); as tables above
    return figures


def _schedule_by(f) -> list[str]:
    return [c for c in ("schedule_kind", "schedule") if c in f and f[c].notna().any()] or ["experiment"]


def _schedule_table(f, ctx):
    return _tables().final_error_table(f, by=_schedule_by(f))


def _escape_table(f, ctx):
    return _tables().escape_table(f)


def _branch_table(f, ctx):
    return _tables().branch_table(f)


def _has_history(f) -> bool:
    return f.groupby("run")["epoch"].nunique().max() >= 2


def _figure(name: str, when: Callable[[Any], bool] = lambda rows: True, **kw):
    """A figure function of ``figures`` by name, drawn where ``when(rows)``."""
    def make(rows, ctx):
        return getattr(_figures(), name)(rows, **kw) if when(rows) else None
    return make


def _bimodality(many, ctx):
    return _tables().bimodality(many)


def _decided_note(t) -> str:
    """The branch table's word on decided runs, where it has any."""
    n = int(t["decided"].sum()) if "decided" in t else 0
    return f"; {n} runs {DECIDED_NOTE}: column decided, decided_H" if n else ""


def _critical_point(f, ctx):
    return _tables().critical_point(f, n_boot=ctx.n_boot)


def _width_notes(cp) -> str:
    """The reasons, once each, why a critical-point row's logistic width is left empty."""
    notes = cp.loc[~cp["width_identifiable"].astype(bool), "width_note"].unique() \
        if "width_identifiable" in cp else []
    return "".join(f" Logistic width {n}: a mixed λ holds both L and H runs, and with fewer than two "
                   "the fit only returns its lower bound (1/20 of the λ step), so logistic_width is "
                   "left empty." for n in notes)


def _decided_fit_note(cp) -> str:
    n = int(cp["n_decided"].sum()) if "n_decided" in cp else 0
    return (f" {n} runs decided early count in the logistic fit by their branch (n_decided), not in the "
            "variance peak (no final error).") if n else ""


def _convergence_table(f, ctx):
    return _tables().convergence_table(f)


def _fresh_gap_table(f, ctx):
    g = _tables().gap_table(f)
    return g if g["gap"].notna().any() else None


def _hysteresis_table(axes_of):
    def make(h, ctx):
        return _tables().hysteresis_table(h, axes=axes_of())
    return make


def _loop_axes():
    return tuple(_tables().DEFAULT_AXES) + ("experiment",)     # in-run loops: one row per experiment


def _checkpoint_axes():
    return _tables().DEFAULT_AXES


def _hysteresis_figure(axes_of):
    def make(h, ctx):
        return _figures().hysteresis_loop(h, axes=axes_of())
    return make


def _from_checkpoints(stem: str):
    """In-run loops (H leg up) and sweeps from checkpoints (H leg from collapse) each get their own
    table and figure; the second is named ``..._from_checkpoints`` only where both are there."""
    return lambda plan: f"{stem}_from_checkpoints" if "hysteresis_loops" in plan.parts else stem


def _spinodal_table(sp, ctx):
    return _tables().spinodal_table(sp)


def _origin_gap_table(o, ctx):
    return _tables().gap_table(o)


def _survival_table(sv, ctx):
    return _tables().survival_table(sv)


_HYSTERESIS_NOTE = ("mean error of each λ step, up leg beside down leg; gap = H leg − L leg (H_leg), "
                    "up_minus_down the signed difference")

SCHEDULE_TABLE = ReportPart(
    "schedule_table", "schedules", _schedule_table,
    note=lambda f, t, ctx: ctx.runs_note(f, f"final error of each run per {', '.join(_schedule_by(f))}; "
                                            f"L <= {L_MAX:.2f}, H >= {H_MIN:.2f}"))
ESCAPE_TABLE = ReportPart(
    "escape_table", "trap", _escape_table,
    note=lambda f, et, ctx: ctx.runs_note(f, f"{int(et['n'].sum()) if len(et) else 0} interventions; escaped "
                                             f"if the final error < {ESCAPE_BELOW:.2f}"))
FRESH_PARTS = (
    ReportPart("branch_table", "fresh", _branch_table,
               note=lambda f, t, ctx: ctx.runs_note(f, f"final error of each run; L <= {L_MAX:.2f}, "
                                                       f"H >= {H_MIN:.2f}, T >= {T_MIN:.2f} (T counted in H)"
                                                       + _decided_note(t))),
    ReportPart("coexistence_map", "fresh", _figure("coexistence_map"), figure=True),
    ReportPart("error_histograms", "fresh", _figure("error_histograms"), figure=True),
    ReportPart("error_trajectories", "fresh", _figure("error_trajectories", _has_history), figure=True),
    ReportPart("bimodality", "bimodal", _bimodality,
               note=lambda many, t, ctx: "Hartigan's dip test (bimodal if p < 0.05) and Sarle's coefficient "
                                         f"(> 5/9), at the λ with >= {MIN_RUNS_PER_LAMBDA} runs "
                                         f"({many['run'].nunique()} runs)."),
    ReportPart("critical_point", "critical", _critical_point,
               note=lambda f, cp, ctx: f"Variance peak and logistic fit of the H fraction; {ctx.n_boot} "
                                       "bootstrap draws." + _width_notes(cp) + _decided_fit_note(cp)),
    ReportPart("convergence_table", "slowing", _convergence_table,
               note=lambda f, t, ctx: f"Critical slowing: first epoch with error < {CONVERGED_BELOW:.2f} "
                                      "(from each run's history)."),
    ReportPart("gap_table", "fresh", _fresh_gap_table,
               note=lambda f, t, ctx: "H and L sides by branch (fresh runs); gap = H − L."),
    ReportPart("phase_diagram", "fresh", _figure("phase_diagram", lambda f: f["eta"].nunique() > 1), figure=True),
    ReportPart("finite_size_curves", "fresh", _figure("finite_size_curves", lambda f: f["width"].nunique() > 1),
               figure=True),
)
HYSTERESIS_PARTS = (
    ReportPart("hysteresis_table", "hysteresis_loops", _hysteresis_table(_loop_axes),
               note=lambda h, t, ctx: ctx.runs_note(h, _HYSTERESIS_NOTE)),
    ReportPart("hysteresis_loop", "hysteresis_loops", _hysteresis_figure(_loop_axes), figure=True),
    ReportPart(_from_checkpoints("hysteresis_table"), "hysteresis_checkpoints", _hysteresis_table(_checkpoint_axes),
               note=lambda h, t, ctx: ctx.runs_note(h, _HYSTERESIS_NOTE)),
    ReportPart(_from_checkpoints("hysteresis_loop"), "hysteresis_checkpoints", _hysteresis_figure(_checkpoint_axes),
               figure=True),
)
SPINODAL_PARTS = (
    ReportPart("spinodal_table", "spinodal", _spinodal_table,
               note=lambda sp, t, ctx: ctx.runs_note(
                   sp, f"{_ordinal(SPINODAL_RUN)} consecutive step with error > {SPINODAL_UP:.2f} (up) / "
                       f"< {SPINODAL_DOWN:.2f} (down); censored at the ladder's end; std ddof 0 (the paper's)")),
    ReportPart("spinodal_points", "spinodal", _figure("spinodal_plot"), figure=True),
)
ORIGIN_GAP_TABLE = ReportPart(
    "gap_table_by_origin", "origin", _origin_gap_table,
    note=lambda o, t, ctx: ctx.runs_note(o, "H side = runs from collapse checkpoints, L side = from ordered "
                                            "ones; gap = H − L; paired by seed (population std)"))
SURVIVAL_PARTS = (
    ReportPart("survival_table", "survival", _survival_table,
               note=lambda sv, t, ctx: ctx.runs_note(
                   sv, f"dead at {DEATH_RUN} consecutive evaluations >= {DEATH_MIN:.2f} (lifetime = epoch of the "
                       f"{_ordinal(DEATH_RUN)} − {DEATH_RUN - 1}); failed inits counted in n_excluded")),
    ReportPart("survival_curves", "survival", _figure("survival_curves"), figure=True),
)

# Every part, in the order a section shows them: a family's own table first, then what the rows hold.
GENERAL_PARTS = (SCHEDULE_TABLE, ESCAPE_TABLE, *FRESH_PARTS, *HYSTERESIS_PARTS, *SPINODAL_PARTS,
                 ORIGIN_GAP_TABLE, *SURVIVAL_PARTS)
GENERAL_SECTION = SectionSpec(GENERAL_PARTS)                  # the rows say which parts apply
SCHEDULES_SECTION = SectionSpec((SCHEDULE_TABLE,), runs="schedules")
TRAP_SECTION = SectionSpec((ESCAPE_TABLE,), runs="trap")
SPINODAL_SECTION = SectionSpec(GENERAL_PARTS, runs="spinodal")

# The paper's archive: experiments whose rows do not say what they are (no schedule_kind, no
# intervention phase, no init phase); their sections as the archive's notebooks made them.
ARCHIVE_SECTIONS = {
    "Q2": SCHEDULES_SECTION,
    **dict.fromkeys(("Td", "Td1", "Td2", "Tδ", "Tδ1", "Tδ2"), TRAP_SECTION),
    **dict.fromkeys(("R3", "T1-spinodal", "T2-spinodal"), SPINODAL_SECTION),
}
