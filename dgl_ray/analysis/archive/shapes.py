"""Every layout of the paper's archive (PROTOCOLS.md), one reader each, most specific first.

Each reader returns rows with the tidy names (``run``, ``seed``, ``lambda``, ``epoch``,
``test_error``, ``phase``, ``direction``, ``origin``, ``hold``, ``eta``...) plus the archive's own
summary values under ``paper_*`` names, and ``_obj`` = the index of the object (JSON) a row came
from, so that runs whose names collide across objects can be told apart afterwards. A run with no
evaluation gets one row with ``test_error`` NaN and ``status = "no_evaluation"``: it is counted by
the tables, never lost. Values a file does not give are left out (NaN), never guessed.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .registry import json_objects, keys_of, shape

# Legacy column names -> tidy names.
RENAME = {
    "noise_rate": "eta",
    "noise_type": "noise",
    "experiment_id": "run",
    "width_mult": "width",
    "hold_epochs": "hold",
    "epochs_per_lambda": "hold",
    "error": "test_error",
    "avg_cos_struct_value": "avg_cos",
    "time_seconds": "wall_time",
    "time": "wall_time",
}
ERROR_KEYS = ("test_error", "error", "final_error")
PAPER_BRANCH_LABELS = ("ordered", "collapsed", "intermediate", "trap")
# Branch names of sweeps from checkpoints -> origin (the paper's names changed between notebooks).
BRANCH_ORIGIN = {"ordered": "ordered", "low_error": "ordered", "low": "ordered",
                 "collapse": "collapse", "collapsed": "collapse", "high_error": "collapse",
                 "high": "collapse"}


def origin_of(label: Any) -> tuple[str | None, str | None]:
    """Archive branch label (``ordered``, ``collapse_down``, ``high_error``...) -> (origin, direction)."""
    if not isinstance(label, str):
        return None, None
    low = label.lower()
    direction = "up" if low.endswith("_up") else "down" if low.endswith("_down") else None
    base = re.sub(r"_(up|down)$", "", low)
    return BRANCH_ORIGIN.get(base), direction


def _err(d: dict) -> Any:
    for k in ERROR_KEYS:
        if k in d:
            return d[k]
    return None


def _scalars(o: dict) -> dict:
    return {k: v for k, v in o.items() if not isinstance(v, (list, dict))}


def _eta(o: dict) -> Any:
    return o.get("eta", o.get("noise_rate"))


def _no_evaluation(base: dict) -> dict:
    return dict(base, test_error=np.nan, status="no_evaluation")


def _frame(recs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(recs)


def _ladder_direction(lams: list) -> str | None:
    lams = [x for x in lams if x is not None]
    if len(lams) < 2 or lams[0] == lams[-1]:
        return None
    return "up" if lams[-1] > lams[0] else "down"


def globalise(phases: list, epochs: list) -> list:
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


# ---------------------------------------------------------------------------------------- JSON

def _json_with(*required: str, any_of: tuple[str, ...] = ()):
    def matches(data: Any) -> bool:
        objs = json_objects(data)
        if objs is None:
            return False
        keys = keys_of(objs)
        return set(required) <= keys and (not any_of or bool(set(any_of) & keys))
    return matches


@shape("W2 jumps from checkpoints", ".json", _json_with("interventions"))
def read_w2(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        for iv in o.get("interventions") or []:
            lam = iv.get("target_lambda")
            for origin in ("ordered", "collapse"):
                arm = iv.get(origin)
                if not isinstance(arm, dict):
                    continue
                base = dict(run=f"{stem}-s{o.get('seed')}-l{lam}-{origin}", _obj=i, seed=o.get("seed"),
                            eta=_eta(o), origin=origin, phase="main", init_error=arm.get("init_error"),
                            paper_final_error=arm.get("final_error"),
                            paper_final_gap=iv.get("final_gap"), **{"lambda": lam})
                traj = arm.get("trajectory") or []
                if not traj:
                    fe = arm.get("final_error")
                    recs.append(dict(base, test_error=fe) if fe is not None else _no_evaluation(base))
                recs.extend(dict(base, epoch=t.get("epoch"), test_error=_err(t)) for t in traj)
    return _frame(recs)


@shape("R3 spinodal ladders", ".json", _json_with("history", "direction"))
def read_r3(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        run = (f"{stem}-{o.get('direction')}-eta{_eta(o)}-"
               f"{o.get('hold_type', o.get('hold_epochs'))}-s{o.get('seed')}")
        base = dict(run=run, _obj=i, seed=o.get("seed"), eta=_eta(o), direction=o.get("direction"),
                    hold=o.get("hold_epochs"), hold_type=o.get("hold_type"),
                    paper_spinodal=o.get("spinodal_lambda"), init_error=o.get("init_error"))
        hist = o.get("history") or []
        if o.get("init_error") is not None:
            # λ and epoch of the init come from the config beside the file (init_lambda, init_epochs)
            recs.append(dict(base, phase="init", test_error=o["init_error"], _init=True))
        elif not hist:
            recs.append(_no_evaluation(dict(base, phase="ladder")))
        for h in hist:
            recs.append(dict(base, phase="ladder", test_error=_err(h),
                             epoch=h.get("global_epoch", h.get("epoch")), **{"lambda": h.get("lambda")}))
    return _frame(recs)


@shape("T1a/T13 lifetime", ".json", _json_with(any_of=("observe_trajectory",)))
def read_lifetime(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        base = dict(run=f"{stem}-l{o.get('target_lambda')}-s{o.get('seed')}", _obj=i,
                    seed=o.get("seed"), eta=_eta(o), init_success=o.get("init_success"),
                    init_error=o.get("init_error"), paper_lifetime=o.get("lifetime"),
                    paper_censored=o.get("censored"), paper_final_error=o.get("final_error"))
        phases, epochs, errs, lams = [], [], [], []
        for t in o.get("init_trajectory") or []:
            phases.append("init"); epochs.append(t.get("epoch")); errs.append(_err(t))
            lams.append(o.get("init_lambda"))  # absent in the paper's files: the config may say
        for t in o.get("observe_trajectory") or []:
            phases.append("observe"); epochs.append(t.get("epoch")); errs.append(_err(t))
            lams.append(o.get("target_lambda"))
        if "observe" not in phases:
            # a failed init observed nothing: one flagged row keeps the run in survival's counts
            recs.append(_no_evaluation(dict(base, phase="observe", **{"lambda": o.get("target_lambda")})))
        for ph, raw, ge, e, lam in zip(phases, epochs, globalise(phases, epochs), errs, lams):
            recs.append(dict(base, phase=ph, phase_epoch=raw, epoch=ge, test_error=e, _init=ph == "init",
                             **{"lambda": lam}))
    return _frame(recs)


@shape("T1/T2 slow spinodal", ".json",
       _json_with("trajectory", any_of=("lambda_up", "lambda_down", "collapsed", "recovered")))
def read_slow_spinodal(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        direction = "up" if ("lambda_up" in o or "collapsed" in o) else "down"
        base = dict(run=f"{stem}-{direction}-s{o.get('seed')}", _obj=i, seed=o.get("seed"),
                    eta=_eta(o), direction=direction, init_success=o.get("init_success"),
                    init_error=o.get("init_error"),
                    paper_spinodal=o.get("lambda_up", o.get("lambda_down")),
                    paper_final_error=o.get("final_error"), hold=o.get("hold_epochs"),
                    protocol="spinodal")
        traj = o.get("trajectory") or []
        if not traj:
            recs.append(_no_evaluation(dict(base, phase="ladder")))
        phases = [t.get("phase", "ladder") for t in traj]
        epochs = [t.get("epoch") for t in traj]
        for t, ph, raw, ge in zip(traj, phases, epochs, globalise(phases, epochs)):
            recs.append(dict(base, phase=ph, phase_epoch=raw, epoch=ge, test_error=_err(t),
                             **{"lambda": t.get("lambda")}))
    return _frame(recs)


@shape("Tα/Tγ sweeps from checkpoints", ".json",
       _json_with("trajectory", any_of=("lambda_start", "checkpoint_source")))
def read_checkpoint_sweeps(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        src = str(o.get("checkpoint_source") or "")
        origin, _ = origin_of(re.split(r"_seed", src.split("/")[-1])[0]) if src else (None, None)
        a, b = o.get("lambda_start"), o.get("lambda_end")
        traj = o.get("trajectory") or []
        direction = ("up" if b > a else "down") if a is not None and b is not None else \
            _ladder_direction([t.get("lambda") for t in traj])
        hold = o.get("epochs_per_lambda", o.get("hold_epochs"))
        base = dict(run=str(o.get("experiment_id") or f"{stem}-s{o.get('seed')}"), _obj=i,
                    seed=o.get("seed"), eta=_eta(o), origin=origin, direction=direction, hold=hold,
                    phase="ladder", init_error=o.get("init_error"), checkpoint_source=src or None,
                    paper_final_error=o.get("final_error"))
        recs += _ladder_records(base, traj, hold)
    return _frame(recs)


def _ladder_records(base: dict, traj: list, hold) -> list[dict]:
    """One record per ladder step of a ``[{lambda, error[, epoch]}]`` trajectory (epoch = step × hold
    where the file gives none), or one flagged record when the run has no evaluation."""
    if not traj:
        return [_no_evaluation(base)]
    return [dict(base, step=k, epoch=t.get("epoch", (k + 1) * hold if hold else k + 1), test_error=_err(t),
                 **{"lambda": t.get("lambda")}) for k, t in enumerate(traj)]


_BRANCH_TRAJ = re.compile(r"^(?P<branch>ordered|collapse|collapsed|low_error|high_error)_trajectory$")


def _branch_keys(data) -> list[str]:
    objs = json_objects(data)
    return [k for k in sorted(keys_of(objs)) if _BRANCH_TRAJ.match(k)] if objs else []


@shape("per-branch λ trajectories", ".json", lambda data: bool(_branch_keys(data)))
def read_branch_trajectories(data, stem):
    """Objects holding ``<branch>_trajectory: [{lambda, error}]`` for several branches (ordered /
    collapse / low_error / high_error), with ``<branch>_init_error`` or ``<branch>_init``: each
    branch of each object is one run with its ``origin``."""
    recs = []
    branches = [_BRANCH_TRAJ.match(k).group("branch") for k in _branch_keys(data)]
    for i, o in enumerate(json_objects(data)):
        common = {RENAME.get(k, k): v for k, v in _scalars(o).items()
                  if not k.startswith(tuple(b + "_" for b in branches))}
        common.pop("run", None)
        for br in branches:
            if f"{br}_trajectory" not in o:
                continue
            init = o.get(f"{br}_init_error", o.get(f"{br}_init"))
            if isinstance(init, dict):
                init = _err(init)
            traj = o.get(f"{br}_trajectory") or []
            hold = common.get("hold")
            base = dict(common, run=f"{stem}-s{o.get('seed')}-{br}", _obj=i, origin=BRANCH_ORIGIN[br],
                        branch=br, init_error=init, phase="ladder",
                        direction=_ladder_direction([t.get("lambda") for t in traj]))
            recs += _ladder_records(base, traj, hold)
    return _frame(recs)


@shape("fresh runs (S2 JSON, with error_history)", ".json",
       _json_with("lambda", any_of=ERROR_KEYS + ("error_history", "history")))
def read_fresh_json(data, stem):
    recs = []
    for i, o in enumerate(json_objects(data)):
        base = {RENAME.get(k, k) if RENAME.get(k, k) not in o else k: v for k, v in _scalars(o).items()}
        if base.get("phase") in PAPER_BRANCH_LABELS:
            base["paper_branch"] = base.pop("phase")
        base.setdefault("run", f"{stem}-s{o.get('seed')}")
        base.update(phase="main", _obj=i)
        hist = o.get("error_history") or o.get("history") or []
        if not hist:
            e = _err(o)
            recs.append(dict(base, test_error=e) if e is not None else _no_evaluation(base))
        for h in hist:
            recs.append(dict(base, epoch=h.get("epoch"), test_error=_err(h)))
    return _frame(recs)


# ---------------------------------------------------------------------------------------- CSV

def _csv_with(*required: str, any_of: tuple[str, ...] = ERROR_KEYS):
    def matches(df: Any) -> bool:
        return isinstance(df, pd.DataFrame) and set(required) <= set(df.columns) and \
            bool(set(any_of) & set(df.columns))
    return matches


def _csv_common(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "phase" in df and df["phase"].isin(PAPER_BRANCH_LABELS).any():
        df = df.rename(columns={"phase": "paper_branch"})
    if "final_error" in df and "test_error" not in df and "error" not in df:
        df["test_error"] = df["final_error"]
    return df.rename(columns={k: v for k, v in RENAME.items() if k in df and v not in df})


@shape("V1/V3/V4/Tβ2/Tα ladders by branch (CSV)", ".csv", _csv_with("lambda", "branch", "seed"))
def read_branch_csv(df, stem):
    """One row per (seed, branch, λ step)."""
    df = _csv_common(df)
    od = df["branch"].map(origin_of)
    df["origin"] = [o for o, _ in od]
    df["direction"] = [d for _, d in od]
    if "run" not in df:
        df["run"] = stem + "-" + df["branch"].astype(str) + "-s" + df["seed"].astype(str)
    df["step"] = df.groupby("run", sort=False).cumcount()
    missing = df["direction"].isna()
    if missing.any():  # direction from the order of the λ steps when the label does not say
        order = df[missing].groupby("run", sort=False)["lambda"].agg(lambda s: _ladder_direction(list(s)))
        df.loc[missing, "direction"] = df.loc[missing, "run"].map(order)
    df["phase"] = "ladder"
    return df


@shape("R1/R2 in-run loops (CSV)", ".csv", _csv_with("lambda", "step_idx", "direction"))
def read_loop_csv(df, stem):
    df = _csv_common(df).rename(columns={"step_idx": "step"})
    if "run" not in df:
        df["run"] = stem + "-s" + df["seed"].astype(str)
    df["phase"] = "ladder"
    df["protocol"] = "loop"
    return df


@shape("final errors of fresh runs (S1, S2, Q1, Ta-prep CSV)", ".csv", _csv_with("lambda"))
def read_final_csv(df, stem):
    df = _csv_common(df)
    if "run" not in df:
        df["run"] = stem + "-" + df.index.astype(str)
    df["phase"] = "main"
    return df
