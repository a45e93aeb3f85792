"""Build and run a sweep's Tuner; write the tidy Parquet; print where the results are.

:func:`run_sweep` is what every ``dgl_ray.sweeps.<family>`` module calls after planning. Layout:

    <storage>/<name>/                 Tune's experiment folder (trial folders, experiment state)
    <storage>/<name>/chain/           preparation checkpoints of chained protocols
    <storage>/<name>/results.parquet  one row per trial per report, config as columns (at the end)

``--resume`` restores the experiment with ``Tuner.restore(path, trainable, resume_errored=True)``:
finished trials stay finished, running ones continue from their last checkpoint, the searcher's
saved state hands out the rest. Trial folders that Tune's restored state does not know (a driver
killed between a trial's start and the next experiment snapshot leaves one; the searcher hands that
config out again) are moved to ``<name>/.orphaned/`` so no (λ, seed) is counted twice.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import re

import pandas as pd

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")   # our one-line progress replaces Tune's tables

# Tune trial folders: <trainable>_<8 hex>_<k>_<params>_<date> (searchers) or <5 hex>_<5 digits>
_ID_IN_DIR = re.compile(r"_(?P<id>[0-9a-f]{8}|[0-9a-f]{5}_\d{5})_\d*")


def trial_id_of(folder: str) -> str | None:
    """The Tune trial id in a trial folder's name (the ``run`` column of the tidy frame)."""
    m = _ID_IN_DIR.search(os.path.basename(folder.rstrip("/")))
    return m.group("id") if m else None


@dataclass
class SweepSpec:
    family: str
    searcher: object                      # a dgl_ray.tune.searchers searcher
    summarize: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    notes: list[str] = field(default_factory=list)


def storage_fs(storage: str):
    """-> (pyarrow filesystem or None, path string for RunConfig.storage_path)."""
    if "://" in storage:
        import pyarrow.fs as pafs
        fs, path = pafs.FileSystem.from_uri(storage)
        return fs, path
    return None, os.path.abspath(os.path.expanduser(storage))


def experiment_exists(storage: str, name: str) -> bool:
    fs, root = storage_fs(storage)
    if fs is None:
        p = os.path.join(root, name)
        return os.path.isdir(p) and any(not n.startswith(".") for n in os.listdir(p))
    import pyarrow.fs as pafs
    info = fs.get_file_info(f"{root}/{name}")
    return info.type != pafs.FileType.NotFound


def make_trainable(cpus: float, gpus: float):
    from ray import tune
    from .trainable import any_trainable
    t = tune.with_parameters(any_trainable, cpus=cpus, gpus=gpus)
    return tune.with_resources(t, {"cpu": cpus, "gpu": gpus})


def init_ray(address: str | None, num_cpus: int | None = None, cpus_per_trial: float = 1,
             dashboard: bool = False) -> None:
    import ray
    if ray.is_initialized():
        return
    env = {"OMP_NUM_THREADS": str(max(1, int(cpus_per_trial))),
           "MKL_NUM_THREADS": str(max(1, int(cpus_per_trial)))}
    pp = os.environ.get("PYTHONPATH")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
    kw = dict(include_dashboard=dashboard, log_to_driver=False, runtime_env={"env_vars": env})
    if address:
        ctx = ray.init(address=address, **kw)
    else:
        ctx = ray.init(num_cpus=num_cpus, **kw)
    if dashboard:
        from .trackers import print_dashboard
        print_dashboard(ctx)


def _local_copy(storage: str, name: str, tmp: str) -> str:
    fs, root = storage_fs(storage)
    if fs is None:
        return os.path.join(root, name)
    import pyarrow.fs as pafs
    dst = os.path.join(tmp, name)
    pafs.copy_files(f"{root}/{name}", dst, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dst


def _latest_checkpoints(trial_dir: str, tid: str) -> list[tuple[str, str]]:
    """(run id, checkpoint file) pairs of a trial folder's last checkpoint: one for a single trial,
    one per member for a grouped Tune trial."""
    from .trainable import CKPT_FILE, member_file, member_run
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


def fill_from_checkpoints(df: pd.DataFrame, exp: str) -> pd.DataFrame:
    """Add evaluations that Tune's result.json lost but the trial's last checkpoint holds.

    Tune re-downloads a trial's result.json from storage when the trial restarts (a retry after a
    failure, or ``--resume``), so reports made since the last storage sync are dropped from it (seen
    with Ray 2.60). Every dgl_ray checkpoint carries the trial's whole history of evaluations: each
    (run, epoch) it holds that the frame lacks is added, with the run's config columns."""
    import json
    import torch
    from ..analysis.frames import _flatten
    if not len(df):
        return df
    have = df.groupby(df["run"].astype(str))["epoch"].apply(lambda e: set(pd.to_numeric(e, errors="coerce")))
    extra = []
    for d in sorted(os.listdir(exp)):
        tid = trial_id_of(d)
        full = os.path.join(exp, d)
        if not tid or not os.path.isdir(full):
            continue
        for run, ck in _latest_checkpoints(full, tid):
            if run not in have.index:
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
    from ..analysis import normalise
    out = pd.concat([df, pd.DataFrame(extra)], ignore_index=True, sort=False)
    out["filled_from_checkpoint"] = out["filled_from_checkpoint"].fillna(False).astype(bool)
    return normalise(out)


def collect(storage: str, name: str, known_runs: set[str] | None) -> tuple[pd.DataFrame, str]:
    """Read the Tune folder into the tidy frame, keep only runs Tune knows, one row per (run, epoch)
    (a trial retried from a checkpoint reports some epochs twice: the last report wins), and write
    ``results.parquet``. Returns (frame, where the Parquet is)."""
    from ..analysis import load_experiment
    fs, root = storage_fs(storage)
    with tempfile.TemporaryDirectory() as tmp:
        exp = _local_copy(storage, name, tmp)
        pq = os.path.join(exp, "results.parquet")
        if os.path.exists(pq):
            os.remove(pq)                           # rebuilt from the trial folders
        if known_runs is not None and fs is None:
            for d in sorted(os.listdir(exp)):
                tid = trial_id_of(d)
                full = os.path.join(exp, d)
                if tid and os.path.isdir(full) and tid not in known_runs:
                    os.makedirs(os.path.join(exp, ".orphaned"), exist_ok=True)
                    shutil.move(full, os.path.join(exp, ".orphaned", d))
        try:
            df = load_experiment(exp)
        except ValueError:
            df = pd.DataFrame()
        if known_runs is not None and len(df):
            key = df["tune_trial"].fillna(df["run"]) if "tune_trial" in df else df["run"]
            df = df[key.astype(str).isin(known_runs)]
        df = fill_from_checkpoints(df, exp)
        if len(df):
            df = df.drop_duplicates(["run", "epoch"], keep="last").reset_index(drop=True)
            for c in df.columns:       # mixed-type object columns would break Parquet
                if df[c].dtype == object:
                    kinds = {type(v) for v in df[c].dropna()}
                    if len(kinds) > 1:
                        df[c] = df[c].map(lambda v: None if v is None else str(v))
        from ..provenance import attach
        attach(df).to_parquet(pq, index=False)      # provenance in the Parquet metadata
        if fs is None:
            return df, pq
        dest = f"{root}/{name}/results.parquet"
        with open(pq, "rb") as f, fs.open_output_stream(dest) as out:
            out.write(f.read())
        return df, f"{storage.rstrip('/')}/{name}/results.parquet"


def run_sweep(opts, spec: SweepSpec) -> pd.DataFrame:
    """Run (or resume) the sweep described by ``spec`` with the shared options ``opts``."""
    from ray import tune
    from .progress import ProgressLine

    fs, root = storage_fs(opts.storage)
    exp_path = f"{root}/{opts.name}" if fs is not None else os.path.join(root, opts.name)
    init_ray(opts.address, None if opts.address else opts.num_cpus, opts.cpus_per_trial,
             dashboard=getattr(opts, "dashboard", False))
    from .trackers import tracker_callbacks
    trackers = tracker_callbacks(opts)          # MLflow / W&B / TensorBoard, one run per (λ, seed)
    trainable = make_trainable(opts.cpus_per_trial, opts.gpus_per_trial)
    total = getattr(spec.searcher, "size", 0)
    plan = spec.searcher.plan_configs() if hasattr(spec.searcher, "plan_configs") else []
    members = sum(len(c.get("group", [c])) for c in plan)        # (λ, seed) trials, grouped or not
    progress = ProgressLine(total=total, interval=opts.progress_interval, members=members)
    restored = False
    t0 = time.time()
    path_for_restore = (f"{opts.storage.rstrip('/')}/{opts.name}" if fs is not None else exp_path)
    if opts.resume and tune.Tuner.can_restore(path_for_restore, storage_filesystem=None):
        tuner = tune.Tuner.restore(path_for_restore, trainable, resume_errored=True)
        tuner._local_tuner.get_run_config().callbacks = [progress, *trackers]
        restored = True
        print(f"resuming {path_for_restore}", flush=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=spec.searcher, num_samples=-1,
                                        max_concurrent_trials=opts.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(
                name=opts.name, storage_path=root, storage_filesystem=fs, verbose=0,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                callbacks=[progress, *trackers]),
        )
    grid = tuner.fit()
    known = set()
    errored = 0
    for r in grid:
        tid = (r.metrics or {}).get("trial_id") or (trial_id_of(r.path) if r.path else None)
        if tid:
            known.add(tid)
        if r.error is not None:
            errored += 1
    df, where = collect(opts.storage, opts.name, known)
    wall = time.time() - t0
    n_runs = df["run"].nunique() if len(df) else 0
    print(f"\n{spec.family}: {n_runs} trials, {len(df)} rows, {errored} errored, {wall:.0f}s"
          + (" (resumed)" if restored else ""))
    print(f"results: {where}")
    print(f"tune folder: {path_for_restore}")
    for note in spec.notes:
        print(note)
    if spec.summarize is not None and len(df):
        try:
            table = spec.summarize(df)
        except Exception as e:  # a summary must never lose the results already written
            print(f"(summary table failed: {type(e).__name__}: {e})", file=sys.stderr)
        else:
            if table is not None and len(table):
                with pd.option_context("display.width", 200, "display.max_columns", 30,
                                       "display.max_rows", 200):
                    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return df
