"""Build and run a sweep's Tuner; write the tidy Parquet; print where the results are.

:func:`run_sweep` is what every ``dgl_ray.sweeps.<family>`` module calls after planning. Layout:

    <storage>/<name>/                 Tune's experiment folder (trial folders, experiment state)
    <storage>/<name>/chain/           preparation checkpoints of chained protocols
    <storage>/<name>/results.parquet  one row per trial per report, config as columns (at the end)
    <storage>/<name>/extend-<k>/      the Tune experiment of the sweep's k-th extension (--extend; its rows
                                      join results.parquet above)

``--resume`` restores the experiment with ``Tuner.restore(path, trainable, resume_errored=True)``:
finished trials stay finished, running ones continue from their last checkpoint, the searcher's
saved state hands out the rest. Trial folders that Tune's restored state does not know (a driver
killed between a trial's start and the next experiment snapshot leaves one; the searcher hands that
config out again) are moved to ``<name>/.orphaned/`` so no (λ, seed) is counted twice.

Integrity (docs/SWEEPS.md, "Faults and resume"): one driver per sweep (``tune/lock.py``); a Tune state that
cannot be read stops ``--resume`` before anything is touched (:func:`check_tune_state`); the rebuilt Parquet
keeps the previous one's finished runs (:func:`keep_finished`); a trial whose checkpoint is gone gets an
empty checkpoint folder so that the trainable, not Tune's restore, decides (:func:`mark_lost_checkpoints`);
``--retry-errored`` reopens errored trials (:func:`reopen_errored_trials`).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import re

import pandas as pd

from ..errors import ConfigError
from ..rows import SETTLED_STATUSES, trial_id_of
from ..storage import Location, join, storage_fs, write_bytes_atomic
from . import faults
from .faults import errored_without_rows, resume_command
from .lock import sweep_lock
from .extend import Part
from .results import collect
from .trackers import print_dashboard, tracker_callbacks
from .trainable import any_trainable

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")   # our one-line progress replaces Tune's tables
# Tune's default loggers write every metric three times (result.json, progress.csv, tfevents): only
# result.json/params.json (JsonLoggerCallback, passed explicitly) are read back, by the results path.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# keeping only the latest checkpoint (--keep-checkpoints 1) makes Tune snapshot the experiment state at
# each checkpoint; it is cheap on local disks (measured in benchmarks/scale.py) and Tune warns at every one
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

# The form of the plan's Tune configs (what the fingerprint hashes): 1 = a group lists every member's
# every field; 2 = a group's shared fields once at its top level (dgl_ray.rows.pack_group).
PLAN_FORM = 2


@dataclass
class SweepSpec:
    family: str
    searcher: object                      # a dgl_ray.tune.searchers.PlanSearcher
    summarize: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    notes: list[str] = field(default_factory=list)
    # the options the plan was made with when the family derived shared ones from its own (universality's
    # --variant sets --noise, --model or --dataset): the manifest records these, so that a --resume compares them
    opts: object | None = None




def plan_fingerprint(configs: list[dict]) -> str:
    """sha256 of the plan's Tune configs (the packed ones: group members and their order count), from
    their repr: plain JSON-able values in the order the plan built them, the same in every process."""
    return hashlib.sha256(repr(configs).encode()).hexdigest()[:16]


def make_manifest(opts, plan_options: dict, configs: list[dict]) -> dict:
    return {"tool": "dgl_ray", "family": opts.family, "name": opts.name,
            "fingerprint": plan_fingerprint(configs), "plan_form": PLAN_FORM, "trials": len(configs),
            "options": plan_options, "command": resume_command(opts),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def make_trainable(cpus: float, gpus: float, retry_errored: bool = False):
    from ray import tune
    t = tune.with_parameters(any_trainable, cpus=cpus, gpus=gpus, retry_errored=retry_errored)
    return tune.with_resources(t, {"cpu": cpus, "gpu": gpus})


def init_ray(address: str | None, num_cpus: int | None = None, cpus_per_trial: float = 1,
             dashboard: bool = False, gpus_per_trial: float = 0, wait_for_nodes: bool = False) -> None:
    import ray
    faults.set_phase("starting Ray")
    if ray.is_initialized():
        return
    env = {"OMP_NUM_THREADS": str(max(1, int(cpus_per_trial))),
           "MKL_NUM_THREADS": str(max(1, int(cpus_per_trial)))}
    pp = os.environ.get("PYTHONPATH")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + pp if pp else "")
    kw = dict(include_dashboard=dashboard, log_to_driver=False, runtime_env={"env_vars": env})
    with faults.signals_held():     # ray.init sets its own SIGTERM handlers, and swallows exceptions
        if address:
            ctx = ray.init(address=address, **kw)
        else:   # "local": a new instance; without it ray.init joins the last `ray start` cluster of this machine
            ctx = ray.init(address="local", num_cpus=num_cpus, **kw)
    raylet_notices_to_log()
    if address:         # (a local instance's CPUs and GPUs were checked before it started: tune.cli)
        check_cluster_resources(cpus_per_trial, gpus_per_trial, address, wait_for_nodes)
    if dashboard:
        print_dashboard(ctx)


def raylet_notices_to_log() -> None:
    """Ray's driver prints its raylets' error messages (a raylet that died: its log tail, ~25 lines of
    state dump) on stdout from a listener thread that no logging level reaches. They go to the "ray"
    logger as one record instead, which faults.compact_ray_logs cuts to its first line in the terminal
    and keeps whole in dgl_driver.log. (Ray's private print_to_stdstream, looked up at each call.)"""
    import logging
    import ray._private.worker as ray_worker
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "dgl_raylet_to_log", False):
        return

    def print_to_stdstream(data, *args, **kwargs):
        if data.get("pid") == "raylet":
            logging.getLogger("ray").warning("(raylet) " + "\n".join(data.get("lines", [])))
            return None
        return original(data, *args, **kwargs)
    print_to_stdstream.dgl_raylet_to_log = True
    ray_worker.print_to_stdstream = print_to_stdstream


def check_cluster_resources(cpus_per_trial: float, gpus_per_trial: float, address: str,
                            wait_for_nodes: bool = False) -> None:
    """No node of the cluster just joined has the CPUs or GPUs a trial asks for: the sweep would wait
    forever (Tune only warns every 60 s), so it ends now, naming the resource; with ``wait_for_nodes``
    (an autoscaling cluster that adds such nodes on demand) it says so once and goes on."""
    import ray
    alive = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not alive:
        return
    short = []
    for what, asked, flag in (("CPU", cpus_per_trial, "--cpus-per-trial"), ("GPU", gpus_per_trial, "--gpus-per-trial")):
        most = max(r.get(what, 0) for r in alive)
        if asked > 0 and most < asked:
            short.append(f"{flag}={asked:g} but the largest node of the Ray cluster at {address} has {most:g} {what}(s)")
    if not short:
        return
    if wait_for_nodes:
        print(f"warning: {'; '.join(short)}; trials wait for nodes that have them (--wait-for-nodes)",
              file=sys.stderr, flush=True)
        return
    ray.shutdown()
    raise ConfigError(f"{'; '.join(short)}: no trial could ever start; ask for less, or add --wait-for-nodes "
                      f"on a cluster that adds such nodes itself (an autoscaler)")

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
    forward; ``TUNE_DISABLE_SIGINT_HANDLER`` keeps ours). A second signal stops at once. A watchdog
    (faults.watch_stop) ends the sweep without waiting when the Ray head died with the signal (a
    scheduler signalling the whole process group) or the stop outlasts faults.STOP_GRACE_S."""

    def __init__(self):
        import threading
        self.signum = None
        self._old = {}
        self._fit_returned = threading.Event()

    def __enter__(self):
        import threading
        faults.set_phase("running the trials")
        if threading.current_thread() is not threading.main_thread():
            return self      # handlers can be set from the main thread only (a sweep run from a thread)
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise faults.Interrupted(signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping the running trials (their checkpoints are kept)...",
              file=sys.stderr, flush=True)
        if faults.current_opts is not None:
            faults.watch_stop(faults.current_opts, signum, self._fit_returned)
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, exc_type, *exc):
        self._fit_returned.set()
        for sig, h in self._old.items():
            signal.signal(sig, h)
        if exc_type is None:
            faults.set_phase("writing the results")
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


def run_sweep(opts, spec: SweepSpec, parts: list | None = None) -> SweepOutcome:
    """Run (or resume) the sweep described by ``spec`` with the shared options ``opts``, holding the
    sweep's lock (one driver per sweep, :mod:`dgl_ray.tune.lock`) from before Ray starts to the end.
    ``parts``: an extended sweep's parts (:class:`dgl_ray.tune.extend.Part`, the last one ``spec``'s), run in
    order, each its own Tune experiment; None: the sweep is one part, ``<name>/`` itself."""
    parts = parts or [Part("", spec, {})]
    with sweep_lock(opts.storage, opts.name):
        if opts.resume or opts.extend:
            for part in parts[:len(parts) if opts.resume else -1]:
                if part.run:
                    check_tune_state(opts.storage, part_name(opts.name, part.folder))
                    check_searcher_state(opts.storage, part_name(opts.name, part.folder))
        return _run_sweep(opts, spec, parts)


def part_name(name: str, folder: str) -> str:
    """The Tune experiment of a sweep's part, relative to the storage: ``<name>`` or ``<name>/<folder>``."""
    return f"{name}/{folder}" if folder else name


_STATE_FILE = re.compile(r"experiment_state-.*\.json")     # Tune's experiment state, one file per save
_SEARCHER_FILE = re.compile(r"searcher-state-.*\.pkl")     # the searcher's state, one file per save


def _newest_state(storage: str, name: str, pattern: re.Pattern = _STATE_FILE) -> Location | None:
    """The sweep's newest file named by ``pattern`` (Tune's ``experiment_state-*.json`` unless told), None
    when it has none (or no folder)."""
    states = [c for c in (Location.of(storage) / name).iterdir() if pattern.fullmatch(c.name)]
    return states[-1] if states else None          # iterdir sorts by name: the newest timestamp last


def check_tune_state(storage: str, name: str) -> None:
    """Tune's newest ``experiment_state-*.json`` must read before ``Tuner.restore``: Tune restarts an
    experiment whose state it cannot read, over the existing trial folders (their trials are then
    unknown to it and their finished rows would be dropped). ConfigError (one line, nothing touched)."""
    state = _newest_state(storage, name)
    if state is None:
        return
    try:
        json.loads(state.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        where = f"{storage.rstrip('/')}/{name}/{state.name}"
        raise ConfigError(f"--resume: Tune's experiment state {where} cannot be read ({type(e).__name__}: "
                          f"{str(e)[:80]}; a full disk or a crash while it was written); nothing was touched: "
                          f"restoring it would restart the sweep over its trial folders. The finished rows are "
                          f"in the trial folders (python -m dgl_ray.analysis report {storage.rstrip('/')}/{name}); "
                          f"rerun the sweep under another --name to finish it") from None


def check_searcher_state(storage: str, name: str) -> None:
    """The searcher's newest saved state (``searcher-state-*.pkl``) is of a version this code reads
    (searchers.migrate_state): a sweep started by a newer dgl_ray is refused in one line, before Ray starts."""
    from .searchers import migrate_state     # heavy: searchers loads Ray and torch; runner stays Ray-free at import
    newest = _newest_state(storage, name, _SEARCHER_FILE)
    if newest is None:
        return
    saved = pickle.loads(newest.read_bytes())
    try:
        migrate_state(saved, saved.get("cls"))
    except ValueError as e:
        raise ConfigError(f"--resume: {storage.rstrip('/')}/{name}/{newest.name}: {e}") from None


def errored_tune_trials(storage: str, name: str) -> set[str]:
    """Tune trial ids whose runs the last ``results.parquet`` holds as ``error``: trials that ended with a
    fatal error row (a normal return, so Tune's state says TERMINATED) or that Tune saw fail."""
    try:
        df = (Location.of(storage) / name / "results.parquet").read_parquet()
    except Exception:  # noqa: BLE001 - no Parquet (a driver killed), nothing known to retry
        return set()
    if not len(df) or "run_status" not in df:
        return set()
    key = df["tune_trial"].fillna(df["run"]) if "tune_trial" in df else df["run"]
    return set(key[df["run_status"].eq("error")].astype(str))


def reopen_errored_trials(storage: str, name: str) -> int:
    """For ``--retry-errored``: mark the errored Tune trials ERROR in Tune's newest experiment state, so that
    ``Tuner.restore(resume_errored=True)`` runs them again from their last checkpoint (the trainable starts a
    trial from epoch 0 when none reads). Tune keeps a trial that returned a fatal error row as TERMINATED,
    which a restore never reruns. Returns how many trials were marked."""
    ids = errored_tune_trials(storage, name)
    if not ids:
        return 0
    newest = _newest_state(storage, name)
    if newest is None:
        return 0
    state = json.loads(newest.read_bytes())
    n = 0
    for entry in state.get("trial_data", []):
        trial = json.loads(entry[0])
        if trial.get("trial_id") in ids and trial.get("status") == "TERMINATED":
            trial["status"] = "ERROR"
            entry[0] = json.dumps(trial, indent=2)
            n += 1
    if n:
        write_bytes_atomic(newest, json.dumps(state).encode("utf-8"))   # a crash leaves the old state
    return n


def _latest_checkpoint_path(runtime_json: str) -> str | None:
    """The path of the checkpoint Tune would restore a trial from (its checkpoint manager, cloudpickled in
    the trial's run metadata), None when it has none."""
    import cloudpickle
    meta = json.loads(runtime_json)
    blob = meta.get("checkpoint_manager")
    if not isinstance(blob, dict) or "value" not in blob:
        return None
    manager = cloudpickle.loads(bytes.fromhex(blob["value"]))
    latest = getattr(manager, "latest_checkpoint_result", None)
    return latest.checkpoint.path if latest is not None and latest.checkpoint is not None else None


def mark_lost_checkpoints(storage: str, name: str) -> list[str]:
    """A trial whose folder (or checkpoint) is gone makes Tune's restore fail on every ``--resume`` ("does
    not exist on storage anymore"), before the trainable runs, and the trial never comes back. Its checkpoint
    folder is made again, empty: the trainable then finds no checkpoint to read and ends the trial with an
    error row naming ``--retry-errored``, or, with that flag, starts it again from epoch 0. Returns the
    checkpoint paths so marked."""
    newest = _newest_state(storage, name)
    if newest is None:
        return []
    state = json.loads(newest.read_bytes())
    marked = []
    for trial_json, runtime_json in state.get("trial_data", []):
        try:
            ck = _latest_checkpoint_path(runtime_json)
        except Exception:  # noqa: BLE001 - another Ray's pickles: Tune's own restore decides
            continue
        if ck and not Location(newest.fs, ck, ck).exists():
            Location(newest.fs, ck, ck).mkdir()
            marked.append(ck)
    if marked:
        print(f"note: {len(marked)} trial checkpoint(s) named by Tune's state are gone (removed by --keep-checkpoints "
              f"after a newer one, or with their trial folder); such a trial goes on from its newest checkpoint "
              f"that reads: "
              f"{marked[0]}{' ...' if len(marked) > 1 else ''}", file=sys.stderr, flush=True)
    return marked


def _fit_part(opts, folder: str, spec: SweepSpec, restore: bool, trainable, trackers):
    """Run one part's Tune experiment (``<name>/`` or ``<name>/<folder>/``): restored from its Tune state when
    ``restore`` and it has one, else new. -> (ResultGrid, Tuner, the stopping signal or None, restored)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from .progress import ProgressLine      # Ray: progress subclasses Ray Tune's Callback; runner stays Ray-free at import

    fs, root = storage_fs(opts.storage)
    name = part_name(opts.name, folder)
    exp_path = f"{root}/{name}" if fs is not None else os.path.join(root, name)
    # printed: the user's URI + name, a query (endpoint_override=...) kept at the end; Tune is given the
    # filesystem itself, so the query never reaches its paths
    shown = join(opts.storage, name) if fs is not None else exp_path
    restored = False
    if restore and tune.Tuner.can_restore(exp_path, storage_filesystem=fs):
        mark_lost_checkpoints(opts.storage, name)
        if getattr(opts, "retry_errored", False):
            n_retry = reopen_errored_trials(opts.storage, name)
            print(f"--retry-errored: {n_retry} errored Tune trial(s) run again", flush=True)
        # the run config (callbacks included) comes back from the saved experiment; the plan is the
        # same (the manifest's fingerprint was checked before Ray started)
        tuner = tune.Tuner.restore(exp_path, trainable, resume_errored=True, storage_filesystem=fs)
        restored = True
        print(f"resuming {shown}", flush=True)
    else:
        progress = ProgressLine(total=spec.searcher.size, interval=opts.progress_interval,
                                members=spec.searcher.members)
        storage_path = root if not folder else (f"{root}/{opts.name}" if fs is not None
                                                else os.path.join(root, opts.name))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=spec.searcher, num_samples=-1,
                                        max_concurrent_trials=opts.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(
                name=folder or opts.name, storage_path=storage_path, storage_filesystem=fs, verbose=0,
                failure_config=tune.FailureConfig(max_failures=opts.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=getattr(opts, "keep_checkpoints", None)),
                callbacks=[progress, JsonLoggerCallback(), *trackers]),
        )
        if folder:
            print(f"extension {folder}: {spec.searcher.members} new trial(s) in {shown}", flush=True)
    with _StopOnSignal() as stop:
        grid = tuner.fit()
    return grid, tuner, stop.signum, restored


def _run_sweep(opts, spec: SweepSpec, parts: list) -> SweepOutcome:
    fs, root = storage_fs(opts.storage)
    exp_path = f"{root}/{opts.name}" if fs is not None else os.path.join(root, opts.name)
    init_ray(opts.address, None if opts.address else opts.num_cpus, opts.cpus_per_trial,
             dashboard=getattr(opts, "dashboard", False), gpus_per_trial=opts.gpus_per_trial,
             wait_for_nodes=getattr(opts, "wait_for_nodes", False))
    trackers = tracker_callbacks(opts)          # MLflow / W&B / TensorBoard, one run per (λ, seed)
    retry = bool(getattr(opts, "retry_errored", False))
    trainable = make_trainable(opts.cpus_per_trial, opts.gpus_per_trial, retry)
    members = sum(p.spec.searcher.members for p in parts)        # (λ, seed) trials, grouped or not
    t0 = time.time()
    path_for_restore = join(opts.storage, opts.name) if fs is not None else exp_path
    known, errored_trials, ran, tuners, grids = set(), set(), [], [], []
    restored, signum = False, None
    for i, part in enumerate(parts):
        if not part.run:
            continue
        # an extension's earlier parts with trials left are continued; --resume continues every part
        again = opts.resume or (opts.extend and i < len(parts) - 1)
        grid, tuner, signum, restored_part = _fit_part(opts, part.folder, part.spec, again, trainable, trackers)
        restored = restored or restored_part
        ran.append(part.folder)
        tuners.append(tuner)
        grids.append(grid)
        for r in grid:
            tid = (r.metrics or {}).get("trial_id") or (trial_id_of(r.path) if r.path else None)
            if tid:
                known.add(tid)
                if r.error is not None:
                    errored_trials.add(tid)
        if signum is not None:
            break               # the parts after it wait for --resume
    df, where = collect(opts.storage, opts.name, known, errored_trials, checked_parts=ran)
    wall = time.time() - t0
    runs = df.groupby("run")["run_status"].last() if len(df) else pd.Series([], dtype=object)
    n_final = int(runs.isin(SETTLED_STATUSES).sum())        # decided runs are done: their branch is known
    n_decided = int((runs == "decided").sum())
    n_unfinished = int((runs == "unfinished").sum())
    n_errored = int((runs == "error").sum())
    n_missing = max(0, members - len(runs)) if all(p.spec.searcher.exact_members for p in parts) else 0
    # killed before their first report: errored (as the progress line said)
    lost = sum(errored_without_rows(grid, df) for grid in grids)
    n_errored, n_missing = n_errored + lost, max(0, n_missing - lost)
    out = SweepOutcome(df, n_final, n_unfinished, n_errored, n_missing, signum)
    print(f"\n{spec.family}: {n_final} trials finished" + (f" ({n_decided} decided early)" if n_decided else "")
          + f", {n_unfinished} unfinished, {n_errored} errored"
          + (f", {n_missing} never started" if n_missing else "")
          + f"; {len(df)} rows, {wall:.0f}s" + (" (resumed)" if restored else ""))
    print(f"results: {where}")
    print(f"tune folder: {path_for_restore}")
    from .progress import fault_lines       # Ray: as ProgressLine above
    for line in (line for tuner in tuners for line in fault_lines(tuner)):   # retried Tune trials: a line per kind
        print(line)
    for note in spec.notes:
        print(note)
    finished = df[df["run_status"].isin(SETTLED_STATUSES)] if len(df) else df   # the tables leave decided errors out
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
        if retry:       # the advice would loop: the messages above say why they failed again
            print(f"{n_errored} trial(s) errored again with --retry-errored: fix what the messages above name")
        else:
            print(f"{n_errored} errored trial(s) are not run again by --resume; to run them again (from their "
                  f"last checkpoint that reads, else from epoch 0):\n  {resume_command(opts)} --retry-errored")
    not_final = n_unfinished + n_errored + n_missing
    if not_final:
        print(f"{not_final} trial(s) not finished ({n_unfinished} unfinished, {n_errored} errored, "
              f"{n_missing} never started): not in the table above (counted as missing)")
    if signum is not None or n_unfinished or n_missing:
        why = f"interrupted by {signal.Signals(signum).name}" if signum is not None else "not finished"
        print(f"sweep {why}; continue it with:\n  {resume_command(opts)}")
    return out
