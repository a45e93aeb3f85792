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

import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import re

import pandas as pd

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")   # our one-line progress replaces Tune's tables
# Tune's default loggers write every metric three times (result.json, progress.csv, tfevents): only
# result.json/params.json (JsonLoggerCallback, passed explicitly) are read back, by the results path.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# keeping only the latest checkpoint (--keep-checkpoints 1) makes Tune snapshot the experiment state at
# each checkpoint; it is cheap on local disks (measured in benchmarks/scale.py) and Tune warns at every one
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

# The sweep folder's own record: the plan's fingerprint and options and the command that started it.
# ``--resume`` refuses a folder without it (not a sweep of this tool) or with another plan.
MANIFEST = "dgl_sweep.json"
# The form of the plan's Tune configs (what the fingerprint hashes): 1 = a group lists every member's
# every field; 2 = a group's shared fields once at its top level (dgl_ray.tune.trainable.pack_group).
PLAN_FORM = 2
from ..analysis.frames import FINAL_STATUSES  # noqa: E402  (completed, diverged)

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


def _read_text(storage: str, rel: str) -> str | None:
    """The text of ``<storage>/<rel>``, or None when there is no such file."""
    fs, root = storage_fs(storage)
    if fs is None:
        p = os.path.join(root, rel)
        if not os.path.isfile(p):
            return None
        with open(p, encoding="utf-8") as f:
            return f.read()
    import pyarrow.fs as pafs
    path = f"{root}/{rel}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def _write_text(storage: str, rel: str, text: str) -> None:
    """Write ``<storage>/<rel>`` (local: a temporary file renamed over it, so a crash leaves the old one)."""
    fs, root = storage_fs(storage)
    if fs is None:
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
        return
    path = f"{root}/{rel}"
    fs.create_dir(os.path.dirname(path), recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def plan_fingerprint(configs: list[dict]) -> str:
    """sha256 of the plan's Tune configs (the packed ones: group members and their order count), from
    their repr: plain JSON-able values in the order the plan built them, the same in every process."""
    return hashlib.sha256(repr(configs).encode()).hexdigest()[:16]


def make_manifest(opts, plan_options: dict, configs: list[dict]) -> dict:
    return {"tool": "dgl_ray", "family": opts.family, "name": opts.name,
            "fingerprint": plan_fingerprint(configs), "plan_form": PLAN_FORM, "trials": len(configs),
            "options": plan_options, "command": resume_command(opts),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def read_manifest(storage: str, name: str) -> dict | None:
    text = _read_text(storage, f"{name}/{MANIFEST}")
    if text is None:
        return None
    try:
        m = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return m if isinstance(m, dict) else {}


def write_manifest(storage: str, name: str, manifest: dict) -> None:
    _write_text(storage, f"{name}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def resume_command(opts) -> str:
    """The exact command that continues this sweep (its own arguments plus --resume)."""
    argv = list(getattr(opts, "argv", None) or [])
    if "--resume" not in argv:
        argv.append("--resume")
    cmd = shlex.join([sys.executable, "-m", f"dgl_ray.sweeps.{opts.family}", *argv])
    return f"cd {shlex.quote(getattr(opts, 'cwd', None) or os.getcwd())} && {cmd}"


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
    else:       # "local": a new instance; without it ray.init joins the last `ray start` cluster of this machine
        ctx = ray.init(address="local", num_cpus=num_cpus, **kw)
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
    import json
    import torch
    from ..analysis.frames import _flatten
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
    from ..analysis import normalise
    out = pd.concat([df, pd.DataFrame(extra)], ignore_index=True, sort=False)
    out["filled_from_checkpoint"] = out["filled_from_checkpoint"].fillna(False).astype(bool)
    return normalise(out)


def collect(storage: str, name: str, known_runs: set[str] | None,
            errored_tune_trials: set[str] = frozenset()) -> tuple[pd.DataFrame, str]:
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
            df = pd.DataFrame(columns=["run", "epoch", "status", "run_status"])
        if known_runs is not None and len(df):
            key = df["tune_trial"].fillna(df["run"]) if "tune_trial" in df else df["run"]
            df = df[key.astype(str).isin(known_runs)]
        df = fill_from_checkpoints(df, exp)
        if len(df):
            df = df.drop_duplicates(["run", "epoch"], keep="last").reset_index(drop=True)
            df["run_status"] = run_statuses(df, errored_tune_trials).values
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


def run_statuses(df: pd.DataFrame, errored_tune_trials: set[str] = frozenset()) -> pd.Series:
    """The run's status for every row: its last row's status when that is final (completed, diverged),
    ``error`` when its Tune trial errored (or its last row says so), else ``unfinished``."""
    from ..analysis.frames import run_status_of
    status = run_status_of(df)
    if errored_tune_trials and "tune_trial" in df and len(df):
        hit = df["tune_trial"].astype(str).isin(errored_tune_trials) & ~status.isin(FINAL_STATUSES)
        status = status.where(~hit, "error")
    return status


def print_errors(df: pd.DataFrame, most: int = 5) -> None:
    """The messages of the errored runs' fatal error rows (the ``error`` column; such a trial returned
    normally, so Tune wrote no error.txt), the same message once with its runs, at most ``most``."""
    if "error" not in df or "status" not in df:
        return
    rows = df[df["status"].eq("error") & df["error"].notna()]
    by_msg = rows.groupby(rows["error"].astype(str), sort=False)["run"].apply(lambda r: sorted(set(map(str, r))))
    for msg, runs in list(by_msg.items())[:most]:
        shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        print(f"error in {len(runs)} trial(s) ({shown}): {msg}")
    if len(by_msg) > most:
        print(f"... and {len(by_msg) - most} other error message(s): see the `error` column of the results")


class _StopOnSignal:
    """SIGINT and SIGTERM stop the sweep the way Tune stops on SIGINT: running trials are stopped, their
    checkpoints and the experiment state are kept (Tune's handler listens on SIGUSR1 too, which we
    forward; ``TUNE_DISABLE_SIGINT_HANDLER`` keeps ours). A second signal stops at once."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is not threading.main_thread():
            return self      # handlers can be set from the main thread only (a sweep run from a thread)
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping the running trials (their checkpoints are kept)...",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, *exc):
        for sig, h in self._old.items():
            signal.signal(sig, h)
        return False


@dataclass
class SweepOutcome:
    """What a sweep ended with: the rows, how many (λ, seed) trials are finished, and why not all."""
    df: pd.DataFrame
    n_final: int
    n_unfinished: int
    n_errored: int
    n_missing: int                 # planned trials never started (grid plans only)
    interrupted_by: int | None     # the signal that stopped the sweep

    @property
    def exit_code(self) -> int:
        if self.interrupted_by is not None:
            return 128 + self.interrupted_by
        return 0 if self.n_final and not (self.n_unfinished or self.n_errored or self.n_missing) else 1


def run_sweep(opts, spec: SweepSpec) -> SweepOutcome:
    """Run (or resume) the sweep described by ``spec`` with the shared options ``opts``."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from .progress import ProgressLine
    from .searchers import GridSearcher

    fs, root = storage_fs(opts.storage)
    exp_path = f"{root}/{opts.name}" if fs is not None else os.path.join(root, opts.name)
    init_ray(opts.address, None if opts.address else opts.num_cpus, opts.cpus_per_trial,
             dashboard=getattr(opts, "dashboard", False))
    from .trackers import tracker_callbacks
    trackers = tracker_callbacks(opts)          # MLflow / W&B / TensorBoard, one run per (λ, seed)
    if opts.gpus_per_trial > 0 and opts.address:
        import ray
        have = ray.cluster_resources().get("GPU", 0)
        if have < opts.gpus_per_trial:    # an autoscaler may still add GPU nodes: say so, do not refuse
            print(f"warning: --gpus-per-trial={opts.gpus_per_trial:g} but the cluster at {opts.address} has "
                  f"{have:g} GPU(s) now; trials wait until GPU nodes join", file=sys.stderr, flush=True)
    trainable = make_trainable(opts.cpus_per_trial, opts.gpus_per_trial)
    total = getattr(spec.searcher, "size", 0)
    plan = spec.searcher.plan_configs() if hasattr(spec.searcher, "plan_configs") else []
    members = sum(len(c.get("group", [c])) for c in plan)        # (λ, seed) trials, grouped or not
    restored = False
    t0 = time.time()
    path_for_restore = (f"{opts.storage.rstrip('/')}/{opts.name}" if fs is not None else exp_path)
    if opts.resume and tune.Tuner.can_restore(path_for_restore):
        # the run config (callbacks included) comes back from the saved experiment; the plan is the
        # same (the manifest's fingerprint was checked before Ray started)
        tuner = tune.Tuner.restore(path_for_restore, trainable, resume_errored=True)
        restored = True
        print(f"resuming {path_for_restore}", flush=True)
    else:
        progress = ProgressLine(total=total, interval=opts.progress_interval, members=members)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=spec.searcher, num_samples=-1,
                                        max_concurrent_trials=opts.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(
                name=opts.name, storage_path=root, storage_filesystem=fs, verbose=0,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=getattr(opts, "keep_checkpoints", None)),
                callbacks=[progress, JsonLoggerCallback(), *trackers]),
        )
    with _StopOnSignal() as stop:
        grid = tuner.fit()
    known, errored_trials = set(), set()
    for r in grid:
        tid = (r.metrics or {}).get("trial_id") or (trial_id_of(r.path) if r.path else None)
        if tid:
            known.add(tid)
            if r.error is not None:
                errored_trials.add(tid)
    df, where = collect(opts.storage, opts.name, known, errored_trials)
    wall = time.time() - t0
    runs = df.groupby("run")["run_status"].last() if len(df) else pd.Series([], dtype=object)
    n_final = int(runs.isin(FINAL_STATUSES).sum())
    n_unfinished = int((runs == "unfinished").sum())
    n_errored = int((runs == "error").sum())
    n_missing = max(0, members - len(runs)) if isinstance(spec.searcher, GridSearcher) else 0
    out = SweepOutcome(df, n_final, n_unfinished, n_errored, n_missing, stop.signum)
    print(f"\n{spec.family}: {n_final} trials finished, {n_unfinished} unfinished, {n_errored} errored"
          + (f", {n_missing} never started" if n_missing else "")
          + f"; {len(df)} rows, {wall:.0f}s" + (" (resumed)" if restored else ""))
    print(f"results: {where}")
    print(f"tune folder: {path_for_restore}")
    from .progress import fault_lines
    for line in fault_lines(tuner):   # retried Tune trials (a lost node, an error): one line per kind
        print(line)
    for note in spec.notes:
        print(note)
    finished = df[df["run_status"].isin(FINAL_STATUSES)] if len(df) else df
    if spec.summarize is not None and len(finished):
        try:
            table = spec.summarize(finished)
        except Exception as e:  # a summary must never lose the results already written
            print(f"(summary table failed: {type(e).__name__}: {e})", file=sys.stderr)
        else:
            if table is not None and len(table):
                with pd.option_context("display.width", 200, "display.max_columns", 30,
                                       "display.max_rows", 200):
                    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if n_errored:
        print_errors(df)
    not_final = n_unfinished + n_errored + n_missing
    if not_final:
        print(f"{not_final} trial(s) not finished ({n_unfinished} unfinished, {n_errored} errored, "
              f"{n_missing} never started): not in the table above (counted as missing)")
    if stop.signum is not None or n_unfinished or n_missing:
        why = f"interrupted by {signal.Signals(stop.signum).name}" if stop.signum is not None else "not finished"
        print(f"sweep {why}; continue it with:\n  {resume_command(opts)}")
    return out
