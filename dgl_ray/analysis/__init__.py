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

# Lazy exports (PEP 562): `from dgl_ray.analysis import branch_table` imports only what it names, so
# the sweep driver, which reads frames, does not pay for matplotlib and scipy at start-up.
_EXPORTS = {
    'coexistence_map': 'figures',
    'error_histograms': 'figures',
    'finite_size_curves': 'figures',
    'hysteresis_loop': 'figures',
    'phase_diagram': 'figures',
    'save_png': 'figures',
    'spinodal_plot': 'figures',
    'survival_curves': 'figures',
    'CORE_COLUMNS': 'frames',
    'InvalidValueWarning': 'frames',
    'DamagedLineWarning': 'frames',
    'missing_trials': 'frames',
    'SkippedFileWarning': 'frames',
    'final_rows': 'frames',
    'outcome_rows': 'frames',
    'is_sweep_path': 'frames',
    'load': 'frames',
    'load_experiment': 'frames',
    'load_legacy': 'frames',
    'normalise': 'frames',
    'build_report': 'report',
    'to_markdown': 'report',
    'fake_sweep_frame': 'synthetic',
    'write_fake_sweep': 'synthetic',
    'bimodality': 'tables',
    'branch_table': 'tables',
    'convergence_table': 'tables',
    'critical_point': 'tables',
    'escape_table': 'tables',
    'final_error_table': 'tables',
    'gap_table': 'tables',
    'hysteresis_table': 'tables',
    'km_curve': 'tables',
    'sarle_coefficient': 'tables',
    'spinodal_points': 'tables',
    'spinodal_table': 'tables',
    'survival_runs': 'tables',
    'survival_table': 'tables',
    'varying_axes': 'tables',
}


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = list(_EXPORTS)      # one list: a new table or figure is exported by its _EXPORTS entry
