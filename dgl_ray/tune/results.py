"""A sweep's rows, gathered: Tune's trial folders (and the checkpoints of evaluations a killed trial did not
report) read into the tidy frame, joined with the finished runs of the last ``results.parquet``, and written
back atomically. The runner calls :func:`collect` at the end of a sweep, the fault endings
(``tune/faults.py``) with the rows so far.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pandas as pd

from ..provenance import attach
from ..rows import CKPT_FILE, SETTLED_STATUSES, member_file, member_run, read_results_parquet, trial_id_of
from ..storage import Location, join, local_copy as _local_copy, storage_fs, write_parquet_atomic
from ..tidy import for_parquet, load_experiment, normalise, run_status_of
from ..manifest import part_folders, read_manifest


def _latest_checkpoints(trial_dir: str, tid: str) -> list[tuple[str, str]]:
    """(run id, checkpoint file) pairs of a trial folder's last checkpoint: one for a single trial,
    one per member for a grouped Tune trial."""
    cks = sorted(d for d in os.listdir(trial_dir) if d.startswith("checkpoint_"))
    for d in reversed(cks):
        f = os.path.join(trial_dir, d, CKPT_FILE)
        if os.path.exists(f):
            return [(tid, f)]
        members, i = [], 0
        while os.path.exists(os.path.join(trial_dir, d, member_file(i))):
            members.append((member_run(tid, i), os.path.join(trial_dir, d, member_file(i))))
            i += 1
        if members:
            return members
    return []


def _complete_runs(df: pd.DataFrame) -> set[str]:
    """Runs whose rows already hold every evaluation: a completed status and as many distinct epochs as
    the trainer evaluates (every ``eval_every`` epochs and the last)."""
    if not {"status", "epochs"} <= set(df.columns):
        return set()
    d = pd.DataFrame({"run": df["run"].astype(str), "epoch": pd.to_numeric(df["epoch"], errors="coerce"),
                      "n": pd.to_numeric(df["epochs"], errors="coerce"),
                      "k": pd.to_numeric(df["eval_every"], errors="coerce") if "eval_every" in df else 1,
                      "done": df["status"].eq("completed")})
    a = d.groupby("run").agg(n=("n", "max"), k=("k", "max"), done=("done", "any"), seen=("epoch", "nunique"))
    want = (a["n"] // a["k"]) + (a["n"] % a["k"] > 0)
    return set(a.index[a["done"] & (a["seen"] >= want)])


def fill_from_checkpoints(df: pd.DataFrame, exp: str) -> pd.DataFrame:
    """Add evaluations that Tune's result.json lost but the trial's last checkpoint holds.

    Tune re-downloads a trial's result.json from storage when the trial restarts (a retry after a
    failure, or ``--resume``), so reports made since the last storage sync are dropped from it (seen
    with Ray 2.60). Every dgl_ray checkpoint carries the trial's whole history of evaluations: each
    (run, epoch) it holds that the frame lacks is added, with the run's config columns."""
    import torch
    if not len(df):
        return df
    have = df.groupby(df["run"].astype(str))["epoch"].apply(lambda e: set(pd.to_numeric(e, errors="coerce")))
    complete = _complete_runs(df)           # nothing to fill: their checkpoints are not read (10k loads)
    extra = []
    for d in sorted(os.listdir(exp)):
        tid = trial_id_of(d)
        full = os.path.join(exp, d)
        if not tid or not os.path.isdir(full):
            continue
        for run, ck in _latest_checkpoints(full, tid):
            if run not in have.index or run in complete:
                continue
            try:
                hist = torch.load(ck, map_location="cpu", weights_only=False).get("history", [])
            except Exception:
                continue
            missing = [h for h in hist if h.get("epoch") not in have[run]]
            if not missing:
                continue
            template = df[df["run"].astype(str) == run].iloc[-1].to_dict()
            for h in missing:
                rec = dict(template)
                rec.update(h)
                rec["filled_from_checkpoint"] = True
                extra.append(rec)
    if not extra:
        return df
    out = pd.concat([df, pd.DataFrame(extra)], ignore_index=True, sort=False)
    out["filled_from_checkpoint"] = out["filled_from_checkpoint"].fillna(False).astype(bool)
    return normalise(out)


def collect(storage: str, name: str, known_runs: set[str] | None,
            errored_tune_trials: set[str] = frozenset(), checked_parts=("",)) -> tuple[pd.DataFrame, str]:
    """Read the sweep's Tune folders (every part of an extended sweep, dgl_ray/manifest.py) into the tidy
    frame, keep only runs Tune knows (``known_runs``: the Tune trial ids of the parts in ``checked_parts``, the
    parts this driver ran; None: every run), one row per (run, epoch) (a trial retried from a checkpoint
    reports some epochs twice: the last report wins), and write ``<name>/results.parquet``, the union of the
    parts. Returns (frame, where the Parquet is)."""
    fs, root = storage_fs(storage)
    with tempfile.TemporaryDirectory() as tmp:
        exp = _local_copy(storage, name, tmp)
        pq = os.path.join(exp, "results.parquet")
        previous = _read_previous(pq)               # its finished runs are kept (a trial folder may be gone)
        frames = []
        for part in part_folders(read_manifest(storage, name)):
            part_dir = os.path.join(exp, part)
            if not os.path.isdir(part_dir):
                continue                            # an extension recorded, not started yet
            checked = known_runs is not None and part in checked_parts
            frames.append(_part_rows(part_dir, known_runs if checked else None, fs is None))
        df = pd.concat(frames, ignore_index=True, sort=False) if frames else _no_rows()
        df = keep_finished(df, previous)
        if len(df):
            df = df.drop_duplicates(["run", "epoch"], keep="last").reset_index(drop=True)
            df = drop_superseded_errors(df, run_statuses(df, errored_tune_trials))
            df["run_status"] = run_statuses(df, errored_tune_trials).values
            for c in df.columns:       # mixed-type object columns would break Parquet
                if df[c].dtype == object:
                    kinds = {type(v) for v in df[c].dropna()}
                    if len(kinds) > 1:
                        df[c] = df[c].map(lambda v: None if v is None else str(v))
        # provenance in the Parquet metadata; written beside, read back, renamed: a killed write or a
        # full disk leaves the previous results.parquet, never a truncated one
        where = join(storage, name, "results.parquet") if fs is not None else os.path.join(exp, "results.parquet")
        write_parquet_atomic(attach(for_parquet(df)), where)
        return df, where


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame(columns=["run", "epoch", "status", "run_status"])


def _part_rows(exp: str, known_runs: set[str] | None, local: bool) -> pd.DataFrame:
    """The rows of one Tune experiment folder (a sweep's part), rebuilt from its trial folders; with
    ``known_runs``, its trial folders Tune does not know are moved to ``.orphaned/`` (local storage) and
    their rows left out."""
    if known_runs is not None and local:
        for d in sorted(os.listdir(exp)):
            tid = trial_id_of(d)
            full = os.path.join(exp, d)
            if tid and os.path.isdir(full) and tid not in known_runs:
                os.makedirs(os.path.join(exp, ".orphaned"), exist_ok=True)
                shutil.move(full, os.path.join(exp, ".orphaned", d))
    try:        # rebuilt from the trial folders; the old results.parquet stays until replaced
        df = load_experiment(exp, trial_folders_only=True)
    except ValueError:
        return _no_rows()
    if known_runs is not None and len(df):
        key = df["tune_trial"].fillna(df["run"]) if "tune_trial" in df else df["run"]
        df = df[key.astype(str).isin(known_runs)]
    return fill_from_checkpoints(df, exp)


def _read_previous(pq: str) -> pd.DataFrame | None:
    """The rows of the sweep's last ``results.parquet`` in the tidy frame's types (lists, categoricals), as
    the rebuilt rows it joins; None when there is none, or, warned, when it cannot be read: the trial
    folders are then the only source (:func:`dgl_ray.rows.read_results_parquet`, the analysis' reader)."""
    folders = sum(trial_id_of(d) is not None for d in os.listdir(os.path.dirname(pq)))
    previous = read_results_parquet(Location.of(pq), folders)
    return None if previous is None else normalise(previous)


def _final_runs(df: pd.DataFrame) -> set[str]:
    if not len(df) or "run" not in df:
        return set()
    status = df["run_status"] if "run_status" in df else run_statuses(df)
    return set(df.loc[status.isin(SETTLED_STATUSES), "run"].astype(str))     # decided runs are kept too


def keep_finished(df: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` (rebuilt from the trial folders) with every run that the previous Parquet holds as finished
    and ``df`` does not: its rows replace the run's rows in ``df`` (a lost trial folder, a result.json cut
    short). A run's finished copy wins; a (λ, seed) (``plan_id``) finished in ``df`` under another run id
    is not added twice."""
    if previous is None or not len(previous):
        return df
    old_final = _final_runs(previous)
    new_final = _final_runs(df) if len(df) else set()
    take = old_final - new_final
    if "plan_id" in previous and "plan_id" in df and len(df):
        run_of = df.loc[df["run"].astype(str).isin(new_final)]
        done_pids = set(run_of["plan_id"].dropna().astype(str))
        pid_of = previous.groupby(previous["run"].astype(str))["plan_id"].last().astype(str)
        take = {r for r in take if pid_of.get(r) not in done_pids}
    if not take:
        return df
    kept = previous[previous["run"].astype(str).isin(take)]
    if len(df):
        # an unfinished rerun of a kept (λ, seed) under another run id goes: the finished copy wins
        rest = df[~df["run"].astype(str).isin(take)]
        if "plan_id" in kept and "plan_id" in rest:
            rest = rest[~rest["plan_id"].astype(str).isin(set(kept["plan_id"].dropna().astype(str)))]
    else:
        rest = df
    print(f"kept {len(take)} finished trial(s) from the previous results.parquet whose trial folders no longer "
          f"hold them: {', '.join(sorted(take)[:5])}{' ...' if len(take) > 5 else ''}", flush=True)
    return pd.concat([rest, kept], ignore_index=True, sort=False)


def drop_superseded_errors(df: pd.DataFrame, status: pd.Series) -> pd.DataFrame:
    """Without the fatal error rows of runs that finished after them (``--retry-errored`` ran them again):
    such a row (no epoch, when the checkpoint could not be read) is not an evaluation of the run."""
    if "status" not in df:
        return df
    stale = df["status"].eq("error") & status.isin(SETTLED_STATUSES).values
    return df[~stale.values].reset_index(drop=True) if stale.any() else df


def run_statuses(df: pd.DataFrame, errored_tune_trials: set[str] = frozenset()) -> pd.Series:
    """The run's status for every row: its last row's status when that is final (completed, diverged),
    ``error`` when its Tune trial errored (or its last row says so), else ``unfinished``."""
    status = run_status_of(df)
    if errored_tune_trials and "tune_trial" in df and len(df):
        hit = df["tune_trial"].astype(str).isin(errored_tune_trials) & ~status.isin(SETTLED_STATUSES)
        status = status.where(~hit, "error")
    return status
