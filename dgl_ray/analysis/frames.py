"""Read results into one tidy frame: one row per trial per evaluation.

Two readers, one output shape (:mod:`dgl_ray.tidy` defines it):

- :func:`load_experiment` (from :mod:`dgl_ray.tidy`, the rows layer that Tune's runner writes with)
  reads what a dgl_ray sweep writes (``results.parquet`` and/or Ray Tune's experiment folder).
- :func:`load_legacy` reads the paper's archived results (CSV and JSON files, with the
  ``*_config.json`` files that sit beside them) in every shape listed in ``PROTOCOLS.md``, through the
  shape registry :mod:`dgl_ray.analysis.archive`.

:func:`load` picks the reader.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from ..tidy import (CATEGORICAL_COLUMNS, CORE_COLUMNS, DamagedLineWarning, InvalidValueWarning, SkippedFileWarning,
                    decided, final_rows, for_parquet, is_sweep_path, load_experiment, missing_trials, n_decided,
                    normalise, not_final, outcome_rows, run_status_of)
from .archive import read_folder

# the analysis API: the two readers here, and the tidy frame's names that the analysis reads from here
__all__ = ["CATEGORICAL_COLUMNS", "CORE_COLUMNS", "DamagedLineWarning", "InvalidValueWarning", "SkippedFileWarning",
           "decided", "final_rows", "for_parquet", "is_sweep_path", "load", "load_experiment", "load_legacy",
           "missing_trials", "n_decided", "normalise", "not_final", "outcome_rows", "run_status_of"]


# --------------------------------------------------------------------------------------------------
# The paper's archive
# --------------------------------------------------------------------------------------------------

def load_legacy(path: str | Path, *, eta_default: float | None = None,
                warn: bool = True) -> pd.DataFrame:
    """Read the paper's archived results (a file or a folder of them, recursively) into the tidy frame.

    Every layout of PROTOCOLS.md has a reader in :mod:`dgl_ray.analysis.archive.shapes` (S1/S2/Q1/
    Ta-prep CSVs of final errors, S2 JSON with ``error_history``, R1/R2 loop CSVs, R3 JSON ladders,
    T1/T2 JSON, T1a/T13 JSON, W2 JSON, Tα/Tγ JSON, branch CSVs ``seed, branch, lambda, error``, JSON
    of per-branch λ trajectories); ``*_config.json`` beside them fill missing columns of the results
    whose file name starts with the config's prefix (``R1a_config.json`` -> ``R1a_results.csv``).

    Every run of every file is read or reported: a run without evaluations keeps one row with
    ``status == "no_evaluation"``; a file not read (unknown shape, duplicate: a CSV whose JSON twin
    was read, or a file whose runs were all read already, ``S2_combined``) is named in a
    :class:`SkippedFileWarning` (unless ``warn=False``) and in ``frame.attrs["skipped"]`` as
    ``(path, reason)``. A CSV is never skipped for a JSON twin that could not be read.

    Values a file and its config do not give (η of S1, hold of a ladder) stay NaN and are listed in
    ``frame.attrs["notes"]``; pass ``eta_default`` to state η yourself (PROTOCOLS.md: 0.4 unless
    stated). Rows with an error outside [0, 1] or a non-numeric λ are dropped and counted in
    ``frame.attrs["excluded"]`` (see :func:`normalise`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected a paper archive: CSV/JSON "
                                "results, or a folder of them)")
    frames, skipped, notes = read_folder(path, eta_default=eta_default)
    if warn:
        for f, why in skipped:
            warnings.warn(f"load_legacy skipped {f}: {why}", SkippedFileWarning, stacklevel=2)
    df = normalise(pd.concat(frames, ignore_index=True, sort=False) if frames
                   else pd.DataFrame(columns=CORE_COLUMNS))
    df.attrs["skipped"] = skipped
    df.attrs["notes"] = notes
    return df


def load(path: str | Path, **kw) -> pd.DataFrame:
    """:func:`load_experiment` if ``path`` holds a sweep, else :func:`load_legacy`."""
    return load_experiment(path) if is_sweep_path(path) else load_legacy(path, **kw)
