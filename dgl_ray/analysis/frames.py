"""Read results into one tidy frame: one row per trial per evaluation.

Two readers, one output shape:

- :func:`load_experiment` reads what a dgl_ray sweep writes (``results.parquet`` and/or Ray Tune's
  experiment folder of trial folders holding ``params.json`` and ``result.json``).
- :func:`load_legacy` reads the paper's archived results (CSV and JSON files, with the
  ``*_config.json`` files that sit beside them) in every shape listed in ``PROTOCOLS.md``.

The tidy frame always has the columns of :data:`CORE_COLUMNS` (missing values as NaN/None); any
other config key or archive column is kept as an extra column.

Conventions chosen for the archive (documented here because tables rely on them):

- ``epoch`` is the number of completed epochs of the run when the evaluation was taken. Archives that
  keep only a final error (S1, S2 CSV, Q1, Ta-prep) get ``epoch`` = the run's length when the paper's
  protocol or a config states it (``epochs`` in a config, else 100 for S1/S2/Q1), otherwise NaN. A
  run with one row is its own final evaluation either way.
- Ladder archives that list steps without epochs get ``epoch = (step + 1) * hold`` when the hold
  is known, ``step + 1`` otherwise; ``step`` (0-based) is kept as a column.
- Phase-relative epochs (T1/T2, T1a/T13 trajectories restart at each phase) are made global by
  offsetting each phase by the end of the previous one; the raw value is kept in ``phase_epoch``.
- ``eta`` missing from a legacy file and its config is filled with 0.4 (PROTOCOLS.md: "η = 0.4 unless
  stated"); pass ``eta_default=None`` to keep NaN.
- S1/S2 CSVs carry the paper's own branch label in ``phase`` (ordered/collapsed/intermediate). It is
  moved to ``paper_branch``; ``phase`` then names the schedule segment like the trainer's (``main``).
- Archive branch labels of sweeps from checkpoints (ordered/collapse/low_error/high_error,
  ordered_up/collapse_down) become ``origin`` (ordered|collapse) and, when present, ``direction``.

Files that are not understood are never skipped in silence: each one is named in a
:class:`SkippedFileWarning` and listed in ``frame.attrs["skipped"]`` as ``(path, reason)`` pairs.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

CORE_COLUMNS = [
    "run", "experiment", "family", "dataset", "model", "width", "eta", "noise", "seed", "lambda",
    "epoch", "test_error", "train_loss", "avg_cos", "gs_norm", "gv_norm", "c_sv", "lr",
    "global_step", "wall_time", "status", "phase", "direction", "origin", "hold",
]

# A run whose last row has one of these statuses is finished; any other run is unfinished (a sweep
# still running, stopped or crashed) or errored, and no table may count it as final.
FINAL_STATUSES = ("completed", "diverged")

# Ray Tune bookkeeping keys in result.json that say nothing about the experiment.
_TUNE_NOISE = {
    "config", "hostname", "node_ip", "pid", "date", "timestamp", "time_since_restore",
    "iterations_since_restore", "time_this_iter_s", "checkpoint_dir_name", "should_checkpoint",
    "experiment_tag", "done", "trial_id",
}

# Tune's trial folder: <trainable>_<5 hex>_<5 digits>_<k>=<v>,..._<date>
_TRIAL_DIR = re.compile(r"^(?P<trainable>.+?)_(?P<id>[0-9a-f]{5}_\d{5})(?:_|$)")

# Legacy column names -> tidy names.
_LEGACY_RENAME = {
    "noise_rate": "eta",
    "experiment_id": "run",
    "width_mult": "width",
    "hold_epochs": "hold",
    "epochs_per_lambda": "hold",
    "error": "test_error",
    "avg_cos_struct_value": "avg_cos",
    "time_seconds": "wall_time",
    "time": "wall_time",
}

# Config keys (of *_config.json "parameters") copied onto rows when the rows lack them.
_CONFIG_RENAME = {
    "noise_rate": "eta", "width_mult": "width", "hold_epochs": "hold", "epochs_per_lambda": "hold",
    "lr": "base_lr",  # the config's starting LR, not the LR in effect at an evaluation
}

# Runs of these families are fresh 100-epoch runs (PROTOCOLS.md), so their single row is epoch 100.
_FRESH_100 = {"S1", "S2", "Q1", "M1", "M2", "M3", "N1", "N2"}


class SkippedFileWarning(UserWarning):
    """A file under a loaded path was not read (unknown shape, duplicate, config without results)."""


def _round_lambda(s: pd.Series) -> pd.Series:
    # Float λ grids (0.1 + 0.2 ...) must compare equal across files and notebooks.
    return pd.to_numeric(s, errors="coerce").round(6)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with every core column present, dtypes set and λ rounded to 1e-6.

    Rows are sorted by run then epoch so that "last evaluation" is the last row of a run.
    """
    df = df.copy()
    for c in CORE_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan if c not in {"run", "experiment", "family", "dataset", "model", "noise",
                                        "status", "phase", "direction", "origin"} else None
    for c in ["width", "eta", "lambda", "epoch", "test_error", "train_loss", "avg_cos", "gs_norm",
              "gv_norm", "c_sv", "lr", "global_step", "wall_time", "hold"]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["lambda"] = _round_lambda(df["lambda"])
    df["eta"] = df["eta"].round(6)
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    df["run"] = df["run"].astype(str)
    for c in ["experiment", "family", "dataset", "model", "noise", "status", "phase", "direction",
              "origin"]:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    order = [c for c in CORE_COLUMNS] + [c for c in df.columns if c not in CORE_COLUMNS]
    df = df[order]
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["run", "epoch", "_order"], na_position="last", kind="stable")
    return df.drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# New sweeps
# --------------------------------------------------------------------------------------------------

def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)  # keep list-valued config visible but hashable
        else:
            out[key] = v
    return out


def _is_trial_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "result.json").exists() or (p / "params.json").exists())


def _read_trial(trial: Path, experiment: str) -> pd.DataFrame:
    """One Tune trial folder -> rows (one per reported evaluation), config as columns."""
    config: dict = {}
    if (trial / "params.json").exists():
        try:
            config = _flatten(json.loads((trial / "params.json").read_text()))
        except (json.JSONDecodeError, OSError):
            config = {}
    rows = []
    if (trial / "result.json").exists():
        for line in (trial / "result.json").read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A trial killed mid-write leaves a truncated last line; the rest is still valid.
                continue
    m = _TRIAL_DIR.match(trial.name)
    folder_id = m.group("id") if m else trial.name
    records = []
    for r in rows:
        rec = {k: v for k, v in r.items() if k not in _TUNE_NOISE and not isinstance(v, dict)}
        # a grouped Tune trial reports each member as its own run; `tune_trial` keeps Tune's id
        rec["tune_trial"] = str(r.get("trial_id") or folder_id)
        rec["run"] = str(r.get("run") or rec["tune_trial"])
        for k, v in config.items():  # the metrics win: lambda in effect beats the config's lambda
            rec.setdefault(k, v)
        if "epoch" not in rec and "training_iteration" in r:
            rec["epoch"] = r["training_iteration"]
        records.append(rec)
    if not records:  # a trial that never reported: still a trial, status unknown
        rec = dict(config)
        rec.update(run=folder_id, status=config.get("status", "pending"))
        records.append(rec)
    out = pd.DataFrame.from_records(records)
    out["experiment"] = out.get("experiment", pd.Series([None] * len(out))).fillna(experiment)
    if "experiment" in config:
        out["experiment"] = out["experiment"].fillna(config["experiment"])
    return out


def run_status_of(df: pd.DataFrame) -> pd.Series:
    """Each row's run status: the run's last status when it is final (completed, diverged), ``error``
    when the run's last row says so, else ``unfinished``. A stored ``run_status`` (the runner's, which
    also knows Tune's errored trials) wins where it says error."""
    if not len(df):
        return pd.Series([], dtype=object, index=df.index)
    run = df["run"].astype(str)
    status_col = df["status"] if "status" in df else pd.Series(None, index=df.index, dtype=object)
    order = pd.to_numeric(df["epoch"], errors="coerce") if "epoch" in df else pd.Series(0, index=df.index)
    d = pd.DataFrame({"run": run, "status": status_col.astype(object), "order": order.fillna(-1)})
    last = d.sort_values("order", kind="stable").drop_duplicates("run", keep="last").set_index("run")["status"]
    per_run = last.where(last.isin(FINAL_STATUSES), "unfinished").astype(object)
    per_run[last.eq("error")] = "error"
    out = run.map(per_run)
    if "run_status" in df:
        out = out.where(~(df["run_status"].eq("error") & ~out.isin(FINAL_STATUSES)), "error")
    return out


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_trial_dir(p))


def _experiment_dirs(root: Path, depth: int = 2) -> list[Path]:
    """Folders under ``root`` that look like one sweep (a results.parquet or trial folders)."""
    found = []
    if (root / "results.parquet").exists() or _trial_dirs(root):
        return [root]
    if depth == 0:
        return []
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            found.extend(_experiment_dirs(p, depth - 1))
    return found


def _load_one_experiment(folder: Path) -> pd.DataFrame:
    parquet = folder / "results.parquet"
    frames = []
    have: dict[str, float] = {}
    if parquet.exists():
        pq = pd.read_parquet(parquet)
        frames.append(pq)
        if len(pq):
            have = pq.groupby(pq["run"].astype(str))["epoch"].max().to_dict()
    # The Parquet is written at the end of a sweep: trials missing from it (sweep still running or
    # killed) or with more evaluations in their folder than in it come from the trial folders.
    for trial in _trial_dirs(folder):
        # a folder holds one run, or one per member of a grouped Tune trial
        for run, t in _read_trial(trial, folder.name).groupby("run", sort=False):
            run = str(run)
            ep = pd.to_numeric(t.get("epoch", pd.Series(dtype=float)), errors="coerce").max()
            if run in have and not (pd.notna(ep) and ep > (have[run] if pd.notna(have[run]) else -1)):
                continue
            if run in have:
                frames[0] = frames[0][frames[0]["run"].astype(str) != run]
            frames.append(t)
    if not frames:
        df = pd.DataFrame(columns=CORE_COLUMNS)
    else:
        df = pd.concat(frames, ignore_index=True, sort=False)
    if "experiment" not in df:
        df["experiment"] = folder.name
    df["experiment"] = df["experiment"].fillna(folder.name)
    df["run_status"] = run_status_of(df).values if len(df) else []
    df.attrs["trials"] = _trial_counts(df, folder)
    return df


def _trial_counts(df: pd.DataFrame, folder: Path) -> dict:
    """How many (λ, seed) trials of the sweep are finished, unfinished, errored and never started
    (the plan's size comes from the sweep's ``dgl_sweep.json``; without it, never-started is unknown)."""
    runs = df.groupby(df["run"].astype(str))["run_status"].last() if len(df) else pd.Series([], dtype=object)
    counts = {"finished": int(runs.isin(FINAL_STATUSES).sum()), "unfinished": int((runs == "unfinished").sum()),
              "errored": int((runs == "error").sum()), "never_started": None}
    try:
        manifest = json.loads((folder / "dgl_sweep.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    if isinstance(manifest, dict) and manifest.get("plan_kind") == "grid" and "members" in manifest:
        counts["never_started"] = max(0, int(manifest["members"]) - len(runs))
    return counts


def missing_trials(df: pd.DataFrame) -> dict:
    """The counts of :func:`load_experiment` (summed over sweeps): finished, unfinished, errored and
    never started (None when unknown), and ``missing`` = all but the finished."""
    c = dict(df.attrs.get("trials") or {})
    if not c:
        return {}
    c["missing"] = c["unfinished"] + c["errored"] + (c["never_started"] or 0)
    return c


def load_experiment(path: str | Path) -> pd.DataFrame:
    """Read a sweep's results into the tidy frame (one row per trial per evaluation).

    ``path`` may be the ``results.parquet`` file, a sweep folder ``<storage>/<name>/`` (its Parquet,
    completed by its trial folders when the Parquet is missing or partial), or a storage folder
    holding several sweeps (all are concatenated; ``experiment`` tells them apart).
    Returns a frame with at least :data:`CORE_COLUMNS`, sorted by run and epoch.
    Raises ``FileNotFoundError`` if the path does not exist and ``ValueError`` if it holds no sweep.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected results.parquet, a sweep "
                                "folder or a storage folder of sweeps)")
    if path.is_file():
        if path.suffix != ".parquet":
            raise ValueError(f"{path}: not a Parquet file (expected results.parquet or a sweep folder)")
        df = pd.read_parquet(path)
        if "experiment" not in df:
            df["experiment"] = path.parent.name
        df["run_status"] = run_status_of(df).values if len(df) else []
        counts = _trial_counts(df, path.parent)
        df = normalise(df)
        df.attrs["trials"] = counts
        return df
    dirs = _experiment_dirs(path)
    if not dirs:
        raise ValueError(f"{path}: no results.parquet and no Tune trial folders (params.json/"
                         "result.json) found")
    parts = [_load_one_experiment(d) for d in dirs]
    df = normalise(pd.concat(parts, ignore_index=True, sort=False))
    counts = [p.attrs["trials"] for p in parts]
    df.attrs["trials"] = {k: (None if any(c[k] is None for c in counts) else sum(c[k] for c in counts))
                          for k in counts[0]}
    return df


def is_sweep_path(path: str | Path) -> bool:
    """True if ``path`` holds a dgl_ray sweep (Parquet or Tune trial folders)."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".parquet"
    return path.is_dir() and bool(_experiment_dirs(path))


# --------------------------------------------------------------------------------------------------
# The paper's archive
# --------------------------------------------------------------------------------------------------

def _family_of(stem: str) -> str | None:
    # S1a -> S1, exp_Q1c1 -> Q1, R3b -> R3, T13 -> T13; the T-letter series (Ta1-1, Ta2-3, Tβ2)
    # are one family each (Tα ordered and collapse sweeps must meet in one gap table).
    m = re.match(r"^(?:exp_)?(T[a-zα-ω])", stem)
    if m:
        return m.group(1)
    m = re.match(r"^(?:exp_)?([A-Z][a-zα-ω]?\d*)", stem)
    return m.group(1) if m else None


def _stem(p: Path) -> str:
    s = p.stem
    return s[: -len("_results")] if s.endswith("_results") else s


def _globalise(phases: list, epochs: list) -> list:
    """Phase-relative epochs -> run-global epochs (offset each phase by the end of the previous)."""
    out, offset, last, prev_phase = [], 0.0, 0.0, object()
    for ph, ep in zip(phases, epochs):
        if ph != prev_phase and ep is not None and not pd.isna(ep) and ep + offset <= last:
            offset = last
        prev_phase = ph
        g = (ep + offset) if ep is not None and not pd.isna(ep) else np.nan
        if not pd.isna(g):
            last = g
        out.append(g)
    return out


def _origin_of(label: Any) -> tuple[str | None, str | None]:
    """Archive branch label -> (origin, direction)."""
    if not isinstance(label, str):
        return None, None
    low = label.lower()
    direction = "up" if low.endswith("_up") else "down" if low.endswith("_down") else None
    if low.startswith(("ordered", "low_error", "low")):
        return "ordered", direction
    if low.startswith(("collapse", "high_error", "high")):
        return "collapse", direction
    return None, direction


def _csv_rows(df: pd.DataFrame, stem: str) -> pd.DataFrame | None:
    cols = set(df.columns)
    has_err = bool({"final_error", "test_error", "error"} & cols)
    if "lambda" not in cols or not has_err:
        return None
    df = df.copy()
    if "phase" in df and df["phase"].isin(["ordered", "collapsed", "intermediate", "trap"]).any():
        df = df.rename(columns={"phase": "paper_branch"})
    if "final_error" in df and "test_error" not in df and "error" not in df:
        df["test_error"] = df["final_error"]
    df = df.rename(columns={k: v for k, v in _LEGACY_RENAME.items() if k in df and v not in df})
    if "branch" in df:  # V1/V3/V4/Tβ2 and Tα CSVs: one row per (seed, branch, λ step)
        od = df["branch"].map(_origin_of)
        df["origin"] = [o for o, _ in od]
        df["direction"] = [d for _, d in od]
        if "run" not in df:
            df["run"] = stem + "-" + df["branch"].astype(str) + "-s" + df["seed"].astype(str)
        df["step"] = df.groupby("run", sort=False).cumcount()
        df["phase"] = "ladder"
    elif "step_idx" in df:  # R1/R2 loops: one row per λ step
        df = df.rename(columns={"step_idx": "step"})
        df["phase"] = "ladder"
    else:
        if "run" not in df:
            df["run"] = stem + "-" + df.index.astype(str)
        df["phase"] = "main"
    if "run" not in df:
        df["run"] = stem + "-s" + df["seed"].astype(str)
    return df


def _json_rows(data: Any, stem: str) -> pd.DataFrame | None:
    """Dispatch on the keys of the first object; None when the shape is unknown."""
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if not isinstance(data, list) or not data or not all(isinstance(o, dict) for o in data):
        return None
    keys = set(data[0])
    recs: list[dict] = []
    if "interventions" in keys:  # W2
        for o in data:
            for iv in o["interventions"]:
                lam = iv.get("target_lambda")
                for origin in ("ordered", "collapse"):
                    arm = iv.get(origin)
                    if not isinstance(arm, dict):
                        continue
                    run = f"{stem}-s{o.get('seed')}-l{lam}-{origin}"
                    base = dict(run=run, seed=o.get("seed"), eta=o.get("eta"), origin=origin,
                                phase="main", init_error=arm.get("init_error"),
                                paper_final_error=arm.get("final_error"),
                                paper_final_gap=iv.get("final_gap"))
                    base["lambda"] = lam
                    traj = arm.get("trajectory") or []
                    if not traj:
                        recs.append(dict(base, test_error=arm.get("final_error")))
                    for t in traj:
                        recs.append(dict(base, epoch=t.get("epoch"), test_error=t.get("error")))
        return pd.DataFrame.from_records(recs)
    if "history" in keys and "direction" in keys:  # R3 spinodal ladders
        for i, o in enumerate(data):
            run = (f"{stem}-{o.get('direction')}-eta{o.get('noise_rate')}-"
                   f"{o.get('hold_type', o.get('hold_epochs'))}-s{o.get('seed')}")
            base = dict(run=run, seed=o.get("seed"), eta=o.get("noise_rate", o.get("eta")),
                        direction=o.get("direction"), hold=o.get("hold_epochs"),
                        hold_type=o.get("hold_type"), paper_spinodal=o.get("spinodal_lambda"),
                        init_error=o.get("init_error"))
            if o.get("init_error") is not None:
                recs.append(dict(base, phase="init", test_error=o["init_error"], _init=True))
            for h in o.get("history") or []:
                rec = dict(base, phase="ladder", test_error=h.get("test_error", h.get("error")),
                           epoch=h.get("global_epoch", h.get("epoch")))
                rec["lambda"] = h.get("lambda")
                recs.append(rec)
        return pd.DataFrame.from_records(recs)
    if "observe_trajectory" in keys:  # T1a/T13 lifetime
        for o in data:
            run = f"{stem}-s{o.get('seed')}"
            base = dict(run=run, seed=o.get("seed"), eta=o.get("eta"),
                        init_success=o.get("init_success"), init_error=o.get("init_error"),
                        paper_lifetime=o.get("lifetime"), paper_censored=o.get("censored"),
                        paper_final_error=o.get("final_error"))
            phases, epochs, errs, lams = [], [], [], []
            for t in o.get("init_trajectory") or []:
                phases.append("init"); epochs.append(t.get("epoch")); errs.append(t.get("error"))
                lams.append(o.get("init_lambda", 0.35))  # PROTOCOLS: init at λ 0.35
            for t in o.get("observe_trajectory") or []:
                phases.append("observe"); epochs.append(t.get("epoch")); errs.append(t.get("error"))
                lams.append(o.get("target_lambda"))
            for ph, raw, ge, e, lam in zip(phases, epochs, _globalise(phases, epochs), errs, lams):
                rec = dict(base, phase=ph, phase_epoch=raw, epoch=ge, test_error=e)
                rec["lambda"] = lam
                recs.append(rec)
        return pd.DataFrame.from_records(recs)
    if "trajectory" in keys and ({"lambda_up", "lambda_down", "collapsed", "recovered"} & keys):
        for o in data:  # T1/T2 slow spinodal
            direction = "up" if ("lambda_up" in o or "collapsed" in o) else "down"
            run = f"{stem}-{direction}-s{o.get('seed')}"
            base = dict(run=run, seed=o.get("seed"), eta=o.get("eta"), direction=direction,
                        init_success=o.get("init_success"), init_error=o.get("init_error"),
                        paper_spinodal=o.get("lambda_up", o.get("lambda_down")),
                        paper_final_error=o.get("final_error"), hold=o.get("hold_epochs"))
            traj = o.get("trajectory") or []
            phases = [t.get("phase", "ladder") for t in traj]
            epochs = [t.get("epoch") for t in traj]
            for t, ph, raw, ge in zip(traj, phases, epochs, _globalise(phases, epochs)):
                rec = dict(base, phase=ph, phase_epoch=raw, epoch=ge,
                           test_error=t.get("error", t.get("test_error")))
                rec["lambda"] = t.get("lambda")
                recs.append(rec)
        return pd.DataFrame.from_records(recs)
    if "trajectory" in keys and ("lambda_start" in keys or "checkpoint_source" in keys):
        for o in data:  # Tα/Tγ sweeps from checkpoints
            src = str(o.get("checkpoint_source", ""))
            origin, _ = _origin_of(src.split("/")[-1])
            a, b = o.get("lambda_start"), o.get("lambda_end")
            direction = None if a is None or b is None else ("up" if b > a else "down")
            hold = o.get("epochs_per_lambda", o.get("hold_epochs"))
            run = str(o.get("experiment_id") or f"{stem}-s{o.get('seed')}")
            base = dict(run=run, seed=o.get("seed"), eta=o.get("eta"), origin=origin,
                        direction=direction, hold=hold, phase="ladder",
                        init_error=o.get("init_error"), checkpoint_source=src or None)
            for i, t in enumerate(o.get("trajectory") or []):
                ep = t.get("epoch", (i + 1) * hold if hold else i + 1)
                rec = dict(base, step=i, epoch=ep, test_error=t.get("error", t.get("test_error")))
                rec["lambda"] = t.get("lambda")
                recs.append(rec)
        return pd.DataFrame.from_records(recs)
    if "lambda" in keys and ({"final_error", "test_error", "error"} & keys):  # S2-like runs
        for o in data:
            base = {k: v for k, v in o.items() if not isinstance(v, (list, dict))}
            base = {_LEGACY_RENAME.get(k, k) if _LEGACY_RENAME.get(k, k) not in o else k: v
                    for k, v in base.items()}
            if base.get("phase") in ("ordered", "collapsed", "intermediate", "trap"):
                base["paper_branch"] = base.pop("phase")
            base.setdefault("run", f"{stem}-s{o.get('seed')}")
            base["phase"] = "main"
            hist = o.get("error_history") or o.get("history") or []
            if not hist:
                recs.append(dict(base, test_error=o.get("test_error", o.get("final_error"))))
            for h in hist:
                recs.append(dict(base, epoch=h.get("epoch"),
                                 test_error=h.get("error", h.get("test_error"))))
        return pd.DataFrame.from_records(recs)
    return None


def _is_config(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("parameters"), dict)


def _apply_config(df: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Copy scalar config parameters onto rows that lack them (R1 hold, Q1 width, R3 init λ...)."""
    df = df.copy()
    for k, v in params.items():
        if isinstance(v, (list, dict)):
            continue
        col = _CONFIG_RENAME.get(k, k)
        if col not in df:
            df[col] = v
        else:
            df[col] = df[col].fillna(v) if df[col].isna().any() else df[col]
    if "init_lambda" in params and "_init" in df:
        df.loc[df["_init"].fillna(False).astype(bool), "lambda"] = params["init_lambda"]
    if "init_epochs" in params and "_init" in df:
        df.loc[df["_init"].fillna(False).astype(bool), "epoch"] = params["init_epochs"]
    rng = params.get("lambda_range")
    if isinstance(rng, (list, tuple)) and len(rng) >= 2:
        df["ladder_start"], df["ladder_end"] = rng[0], rng[1]
    return df


def _finish_legacy(df: pd.DataFrame, stem: str, eta_default: float | None) -> pd.DataFrame:
    df = df.copy()
    if "experiment" in df:  # Q1's long names; the file stem names the sub-experiment (S1a, R1b...)
        df = df.rename(columns={"experiment": "paper_experiment"})
    df["experiment"] = stem
    df["family"] = _family_of(stem)
    if eta_default is not None:
        df["eta"] = pd.to_numeric(df["eta"], errors="coerce").fillna(eta_default) \
            if "eta" in df else eta_default
    if "step" in df and ("epoch" not in df or df["epoch"].isna().all()):
        hold = pd.to_numeric(df["hold"], errors="coerce") if "hold" in df else np.nan
        df["epoch"] = (df["step"] + 1) * (hold.fillna(1) if isinstance(hold, pd.Series) else 1)
    if "epoch" not in df or df["epoch"].isna().all():
        total = None
        for key in ("epochs", "total_epochs"):
            if key in df and df[key].notna().any():
                total = df[key]
                break
        if total is None and _family_of(stem) in _FRESH_100:
            total = 100
        df["epoch"] = total if total is not None else np.nan
    if "_init" in df:
        df = df.drop(columns="_init")
    df["status"] = df["status"] if "status" in df else "completed"
    return df


def _read_legacy_file(p: Path) -> tuple[pd.DataFrame | None, str]:
    """-> (rows or None, reason when None)."""
    try:
        if p.suffix == ".csv":
            raw = pd.read_csv(p)
            rows = _csv_rows(raw, _stem(p))
            return rows, "CSV without lambda and error columns"
        if p.suffix == ".json":
            data = json.loads(p.read_text())
            if _is_config(data):
                return None, "config"
            rows = _json_rows(data, _stem(p))
            return rows, "JSON of unknown shape"
    except Exception as exc:  # a broken file is reported, not fatal for the folder
        return None, f"unreadable: {exc.__class__.__name__}: {exc}"
    return None, "unknown file type"


def load_legacy(path: str | Path, *, eta_default: float | None = 0.4,
                warn: bool = True) -> pd.DataFrame:
    """Read the paper's archived results (a file or a folder of them, recursively) into the tidy frame.

    Shapes understood (PROTOCOLS.md): S1/S2/Q1/Ta-prep CSVs of final errors, S2 JSON with
    ``error_history``, R1/R2 loop CSVs (``step_idx``, ``direction``), R3 JSON ladders, T1/T2 JSON,
    T1a/T13 JSON, W2 JSON, Tα/Tγ JSON, V1/V3/V4/Tβ2/Tα CSVs (``seed, branch, lambda, error``), and
    ``*_config.json`` beside them (their scalar ``parameters`` fill missing columns of the results
    whose file name starts with the config's prefix, e.g. ``R1a_config.json`` -> ``R1a_results.csv``).

    Duplicates inside a folder are read once: a CSV with a JSON of the same stem defers to the JSON
    (richer: histories), and a file whose runs were all read already (``S2_combined``) is skipped.
    Every file not read is named in a :class:`SkippedFileWarning` (unless ``warn=False``) and listed
    in ``frame.attrs["skipped"]`` as ``(path, reason)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected a paper archive: CSV/JSON "
                                "results, or a folder of them)")
    files = [path] if path.is_file() else sorted(
        # hidden files and folders below `path` are skipped; the path itself may hold '..'
        p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts))
    skipped: list[tuple[str, str]] = []
    configs: dict[str, tuple[Path, dict]] = {}
    candidates = []
    for p in files:
        if p.suffix == ".json" and p.stem.endswith("_config"):
            try:
                data = json.loads(p.read_text())
            except Exception as exc:
                skipped.append((str(p), f"unreadable config: {exc}"))
                continue
            if _is_config(data):
                configs[str(p.parent / p.stem[: -len("_config")])] = (p, data["parameters"])
                continue
        candidates.append(p)
    json_stems = {(p.parent, p.stem) for p in candidates if p.suffix == ".json"}
    # Component files before "combined" ones so that the combination is the one found duplicate.
    candidates.sort(key=lambda p: ("combined" in p.stem, p.suffix != ".json", str(p)))
    frames, seen_runs, used_configs = [], {}, set()
    for p in candidates:
        if p.suffix == ".csv" and (p.parent, p.stem) in json_stems:
            skipped.append((str(p), f"duplicate of {p.stem}.json (same runs; JSON read instead)"))
            continue
        rows, reason = _read_legacy_file(p)
        if rows is None or rows.empty:
            skipped.append((str(p), reason if rows is None else "no rows"))
            continue
        stem = _stem(p)
        # The config whose prefix is the longest prefix of this results file's stem.
        best = None
        for key, (cp, params) in configs.items():
            cstem = Path(key).name
            if Path(key).parent == p.parent and stem.startswith(cstem):
                if best is None or len(cstem) > len(Path(best[0]).name):
                    best = (key, cp, params)
        if best is not None:
            rows = _apply_config(rows, best[2])
            used_configs.add(best[0])
        if "_init" in rows and best is None:
            rows.loc[rows["_init"].fillna(False).astype(bool), "lambda"] = np.nan
        rows = _finish_legacy(rows, stem, eta_default)
        runs = set(rows["run"].astype(str))
        dup = runs & set(seen_runs)
        if dup and dup == runs:
            skipped.append((str(p), f"duplicate: all {len(runs)} runs already read from "
                                    f"{seen_runs[next(iter(dup))]}"))
            continue
        if dup:
            rows = rows[~rows["run"].astype(str).isin(dup)]
            skipped.append((str(p), f"partly duplicate: {len(dup)} runs already read were dropped"))
        for r in runs - dup:
            seen_runs[r] = p.name
        frames.append(rows)
    for key, (cp, _) in configs.items():
        if key not in used_configs:
            skipped.append((str(cp), "config without matching results file"))
    if warn:
        for f, why in skipped:
            warnings.warn(f"load_legacy skipped {f}: {why}", SkippedFileWarning, stacklevel=2)
    if not frames:
        df = normalise(pd.DataFrame(columns=CORE_COLUMNS))
    else:
        df = normalise(pd.concat(frames, ignore_index=True, sort=False))
    df.attrs["skipped"] = skipped
    return df


def load(path: str | Path, **kw) -> pd.DataFrame:
    """:func:`load_experiment` if ``path`` holds a sweep, else :func:`load_legacy`."""
    return load_experiment(path) if is_sweep_path(path) else load_legacy(path, **kw)


def final_rows(df: pd.DataFrame, by: Iterable[str] = ("run",)) -> pd.DataFrame:
    """The last evaluation (highest epoch; row order breaks ties and NaN epochs) of each group.

    ``by=("run",)`` gives the final error of each run; ``by=("run", "lambda", "direction")`` gives the
    error at the end of each λ step of a ladder (each leg of an up-then-down ladder separately).
    """
    by = [c for c in by if c in df.columns]
    d = df.copy()
    d["_order"] = np.arange(len(d))
    d = d.sort_values(["epoch", "_order"], na_position="first", kind="stable")
    out = d.groupby(by, dropna=False, sort=False).tail(1)
    if by == ["run"] and "run_status" in out:   # an unfinished or errored run has no final error:
        unfinished = out["run_status"].notna() & ~out["run_status"].isin(FINAL_STATUSES)
        out.loc[unfinished, "test_error"] = np.nan   # tables count it as missing, never as final
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)
