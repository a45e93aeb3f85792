"""The paper's archived results: files -> tidy rows, through a registry of shapes (:mod:`.shapes`).

:func:`read_folder` finds the files under a path, reads each with the first registered shape that
matches it, applies the ``*_config.json`` beside it, labels its family, and returns the rows of
every file read with, for every file not read, the reason (``skipped``) and, for every value the
files do not give, a note (``notes``). :func:`dgl_ray.analysis.load_legacy` is its public face.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import shapes  # noqa: F401  (registers the shapes)
from .registry import SHAPES, Shape, find_shape, json_objects

# Config keys (of *_config.json "parameters") copied onto rows when the rows lack them.
_CONFIG_RENAME = {
    "noise_rate": "eta", "noise_type": "noise", "width_mult": "width", "hold_epochs": "hold",
    "epochs_per_lambda": "hold",
    "lr": "base_lr",  # the config's starting LR, not the LR in effect at an evaluation
}

# Runs of these families are fresh 100-epoch runs (PROTOCOLS.md), so their single row is epoch 100.
_FRESH_100 = {"S1", "S2", "Q1", "M1", "M2", "M3", "N1", "N2"}

# T-letter series whose numbered files are the two arms of ONE experiment (Tα: Ta1 = ordered
# sweeps, Ta2 = collapse sweeps; Tγ likewise): their gap needs both arms in one family. In the
# other series the number names a different experiment (Tβ1 at η 0.4, Tβ2 at η 0.8).
_ARM_SERIES = {"Ta", "Tα", "Tc", "Tγ"}


def family_of(stem: str) -> str | None:
    """Family label of a results file's stem: S1a -> S1, exp_Q1c1 -> Q1, R3b -> R3, T1a -> T1a,
    T13 -> T13, Ta1-1 -> Ta, Ta-prep-C -> Ta, Tb2_v3 -> Tb2. Labels never merge two experiments."""
    s = re.sub(r"^exp_", "", stem)
    m = re.match(r"^(T[a-zα-ω])(\d*)", s)  # the T-letter series (Tα, Tβ, Tδ...)
    if m:
        return m.group(1) if m.group(1) in _ARM_SERIES else m.group(1) + m.group(2)
    m = re.match(r"^(T\d+[a-z]?)", s)  # T1, T2 (spinodal), T1a, T13 (lifetime) stay apart
    if m:
        return m.group(1)
    m = re.match(r"^([A-Z][a-zα-ω]?\d*)", s)
    return m.group(1) if m else None


def _stem(p: Path) -> str:
    s = p.stem
    return s[: -len("_results")] if s.endswith("_results") else s


def _is_config(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("parameters"), dict)


def _parse(p: Path) -> Any:
    if p.suffix == ".csv":
        return pd.read_csv(p)
    if p.suffix == ".json":
        data = json.loads(p.read_text())
        return json_objects(data) if json_objects(data) is not None else data
    raise ValueError("unknown file type")


def _apply_config(df: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Copy scalar config parameters onto rows that lack them (R1 hold, Q1 width, R3 init λ...)."""
    df = df.copy()
    for k, v in params.items():
        if isinstance(v, (list, dict)):
            continue
        col = _CONFIG_RENAME.get(k, k)
        if col not in df:
            df[col] = v
        elif df[col].isna().any():
            df[col] = df[col].fillna(v)
    if "_init" in df:
        init = df["_init"].fillna(False).astype(bool)
        if "init_lambda" in params:
            df.loc[init & df["lambda"].isna() if "lambda" in df else init, "lambda"] = params["init_lambda"]
        if "init_epochs" in params and ("epoch" not in df or df.loc[init, "epoch"].isna().all()):
            df.loc[init, "epoch"] = params["init_epochs"]
    rng = params.get("lambda_range")
    if isinstance(rng, (list, tuple)) and len(rng) >= 2:
        df["ladder_start"], df["ladder_end"] = rng[0], rng[1]
    lams = params.get("noise_lambda_map")
    if isinstance(lams, dict) and len(lams) == 1 and ("eta" not in df or df["eta"].isna().any()):
        # one η in the config's η -> λ map: that is the file's η
        eta = float(next(iter(lams)))
        df["eta"] = df["eta"].fillna(eta) if "eta" in df else eta
    return df


def _finish(df: pd.DataFrame, stem: str, family: str | None) -> pd.DataFrame:
    df = df.copy()
    if "experiment" in df:  # Q1's long names; the file stem names the sub-experiment (S1a, R1b...)
        df = df.rename(columns={"experiment": "paper_experiment"})
    df["experiment"] = stem
    df["family"] = family
    if "step" in df and ("epoch" not in df or df["epoch"].isna().all()):
        hold = pd.to_numeric(df["hold"], errors="coerce") if "hold" in df else np.nan
        df["epoch"] = (df["step"] + 1) * (hold.fillna(1) if isinstance(hold, pd.Series) else 1)
    if "epoch" not in df or df["epoch"].isna().all():
        total = None
        for key in ("epochs", "total_epochs"):
            if key in df and df[key].notna().any():
                total = df[key]
                break
        if total is None and family in _FRESH_100:
            total = 100
        df["epoch"] = total if total is not None else np.nan
    if "_obj" in df:
        # two objects that the shape named alike (same seed twice) stay two runs
        clash = df.groupby("run")["_obj"].transform("nunique") > 1
        df.loc[clash, "run"] = df.loc[clash, "run"].astype(str) + "#" + df.loc[clash, "_obj"].astype(str)
    df = df.drop(columns=[c for c in ("_init", "_obj") if c in df])
    if "status" not in df:
        df["status"] = "completed"
    df["status"] = df["status"].fillna("completed")
    return _place_unevaluated(df)


def _place_unevaluated(df: pd.DataFrame) -> pd.DataFrame:
    """A run without evaluations (a failed init) whose file gives no λ takes the λ its protocol would
    have started at (the ladder's start, else the init λ of the config): tables by λ then count it as
    missing there instead of showing it as a row of its own at λ NaN."""
    lost = df["status"].eq("no_evaluation") & (df["lambda"].isna() if "lambda" in df else True)
    for col in ("ladder_start", "init_lambda"):
        if col in df and bool(lost.any()):
            df.loc[lost, "lambda"] = pd.to_numeric(df.loc[lost, col], errors="coerce")
            lost &= df["lambda"].isna()
    return df


def _family_label(rows: pd.DataFrame, stem: str) -> str | None:
    fam = family_of(stem)
    # T1/T2 are spinodal runs; T1a/T13 lifetime runs: the labels must not meet as "T1"
    if fam and "protocol" in rows and rows["protocol"].eq("spinodal").any() and re.fullmatch(r"T\d", fam):
        fam = f"{fam}-spinodal"
    return fam


def _config_for(p: Path, configs: dict[Path, dict]) -> tuple[Path, dict] | None:
    """The config in p's folder whose prefix is the longest prefix of p's stem."""
    stem, best = _stem(p), None
    for cp, params in configs.items():
        prefix = cp.stem[: -len("_config")]
        if cp.parent == p.parent and stem.startswith(prefix):
            if best is None or len(prefix) > len(best[0].stem):
                best = (cp, params)
    return best


def list_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    # hidden files and folders below `path` are skipped; the path itself may hold '..'
    return sorted(p for p in path.rglob("*") if p.is_file()
                  and not any(s.startswith(".") for s in p.relative_to(path).parts))


def _read_file(p: Path, configs: dict[Path, dict], eta_default: float | None
               ) -> tuple[pd.DataFrame | None, str, Path | None]:
    """One results file -> (rows, "", config used) or (None, why not, None)."""
    try:
        data = _parse(p)
    except Exception as exc:  # a broken file is reported, not fatal for the folder
        return None, ("unknown file type" if p.suffix not in (".csv", ".json")
                      else f"unreadable: {exc.__class__.__name__}: {exc}"), None
    if _is_config(data):
        return None, "config", None
    sh: Shape | None = find_shape(data, p.suffix)
    if sh is None:
        what = "CSV without lambda and error columns" if p.suffix == ".csv" else "JSON of unknown shape"
        return None, f"{what}; known shapes: " + ", ".join(
            s.name for s in SHAPES if s.suffix == p.suffix), None
    stem = _stem(p)
    try:
        rows = sh.read(data, stem)
    except Exception as exc:
        return None, f"{sh.name} reader failed: {exc.__class__.__name__}: {exc}", None
    if rows.empty:
        return None, "no rows", None
    cfg = _config_for(p, configs)
    if cfg is not None:
        rows = _apply_config(rows, cfg[1])
    rows = _finish(rows, stem, _family_label(rows, stem))
    rows["source_shape"] = sh.name
    if eta_default is not None:  # the caller states it; never assumed here
        rows["eta"] = pd.to_numeric(rows["eta"], errors="coerce").fillna(eta_default) \
            if "eta" in rows else eta_default
    return rows, "", cfg[0] if cfg is not None else None


def _absent(rows: pd.DataFrame, name: str) -> list[str]:
    """Notes on the values a file and its config leave out (η; the hold of a ladder)."""
    out = []
    for col, what in (("eta", "η"), ("hold", "hold")):
        if col == "hold" and "step" not in rows:
            continue  # a hold means something for ladders only
        missing = rows[col].isna() if col in rows else pd.Series(True, index=rows.index)
        if missing.any():
            out.append(f"{name}: {what} not given by the file or its config "
                       f"({rows.loc[missing, 'run'].nunique()} runs; left NaN)")
    return out


def read_folder(path: Path, eta_default: float | None = None
                ) -> tuple[list[pd.DataFrame], list[tuple[str, str]], list[str]]:
    """-> (frames of rows, skipped (path, reason), notes). See :func:`dgl_ray.analysis.load_legacy`."""
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    configs: dict[Path, dict] = {}
    candidates = []
    for p in list_files(path):
        if p.suffix == ".json" and p.stem.endswith("_config"):
            try:
                data = json.loads(p.read_text())
            except Exception as exc:
                skipped.append((str(p), f"unreadable config: {exc}"))
                continue
            if _is_config(data):
                configs[p] = data["parameters"]
                continue
        candidates.append(p)
    # JSON before its CSV twin (JSON keeps histories); component files before "combined" ones, so
    # that the combination is the one found duplicate.
    candidates.sort(key=lambda p: ("combined" in p.stem, str(p.with_suffix("")), p.suffix != ".json"))
    frames, seen_runs, used_configs, read_twins = [], {}, set(), {}
    for p in candidates:
        twin = read_twins.get((p.parent, p.stem))
        if p.suffix == ".csv" and twin is not None:  # only a JSON twin that was READ defers a CSV
            skipped.append((str(p), f"duplicate of {twin} (same runs; JSON read instead)"))
            continue
        rows, why, cfg = _read_file(p, configs, eta_default)
        if rows is None:
            skipped.append((str(p), why))
            continue
        used_configs.add(cfg)
        runs = set(rows["run"].astype(str))
        dup = runs & set(seen_runs)
        if dup and dup == runs:
            skipped.append((str(p), f"duplicate: all {len(runs)} runs already read from "
                                    + ", ".join(sorted({seen_runs[r] for r in dup}))))
            continue
        if dup:
            rows = rows[~rows["run"].astype(str).isin(dup)]
            skipped.append((str(p), f"partly duplicate: {len(dup)} runs already read were dropped"))
        for r in runs - dup:
            seen_runs[r] = p.name
        notes.extend(_absent(rows, p.name))
        if p.suffix == ".json":
            read_twins[(p.parent, p.stem)] = p.name
        frames.append(rows)
    for cp in configs:
        if cp not in used_configs:
            skipped.append((str(cp), "config without matching results file"))
    return frames, skipped, notes
