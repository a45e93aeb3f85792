"""dgl_ray.analysis: trial results -> the paper's tables and figures, for new sweeps and the archive.

Pure functions: a tidy DataFrame (one row per trial per evaluation) in, a table or a Figure out.

- frames: :func:`load_experiment` (a sweep's Parquet / Tune folder), :func:`load_legacy` (the paper's
  archive), :func:`load` (either), :func:`final_rows`.
- archive: the registry of the archive's file shapes (one reader per layout) behind load_legacy.
- tables: :func:`branch_table`, :func:`gap_table`, :func:`hysteresis_table`, :func:`spinodal_points`,
  :func:`spinodal_table`, :func:`survival_runs`, :func:`survival_table`, :func:`km_curve`,
  :func:`convergence_table`, :func:`escape_table`, :func:`final_error_table`,
  :func:`critical_point`, :func:`bimodality`, :func:`sarle_coefficient`. Gaps are always H-branch − L-branch (positive in the paper's order).
- figures: :func:`hysteresis_loop`, :func:`coexistence_map`, :func:`error_histograms`,
  :func:`survival_curves`, :func:`phase_diagram`, :func:`spinodal_plot`, :func:`finite_size_curves`,
  :func:`save_png`.
- report: :func:`build_report`; CLI ``python -m dgl_ray.analysis report PATH``.
"""

from .figures import (coexistence_map, error_histograms, finite_size_curves, hysteresis_loop,
                      phase_diagram, save_png, spinodal_plot, survival_curves)
from .frames import (CORE_COLUMNS, InvalidValueWarning, SkippedFileWarning, final_rows,
                     is_sweep_path, load, load_experiment, load_legacy, normalise)
from .report import build_report, to_markdown
from .synthetic import fake_sweep_frame, write_fake_sweep
from .tables import (bimodality, branch_table, convergence_table, critical_point, escape_table,
                     final_error_table, gap_table, hysteresis_table, km_curve, sarle_coefficient, spinodal_points,
                     spinodal_table, survival_runs, survival_table, varying_axes)

__all__ = [
    "CORE_COLUMNS", "InvalidValueWarning", "SkippedFileWarning", "load", "load_experiment",
    "load_legacy", "normalise", "final_rows", "is_sweep_path",
    "branch_table", "convergence_table", "escape_table", "final_error_table", "gap_table", "hysteresis_table",
    "spinodal_points", "spinodal_table",
    "survival_runs", "survival_table", "km_curve", "critical_point", "bimodality",
    "sarle_coefficient", "varying_axes",
    "hysteresis_loop", "coexistence_map", "error_histograms", "survival_curves", "phase_diagram",
    "spinodal_plot", "finite_size_curves", "save_png",
    "build_report", "to_markdown", "fake_sweep_frame", "write_fake_sweep",
]
