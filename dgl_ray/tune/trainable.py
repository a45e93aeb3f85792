"""The Ray Tune function trainable around :class:`dgl_ray.trainer.Trial`.

A Tune config is a trial config (the fields of :class:`dgl_ray.config.TrialConfig`) plus labels and
run-time keys that are not trial settings:

- labels (reported as columns): ``family``, ``experiment``, ``hold``, ``role``, ``plan_id``, ``parent``,
  ``init_error`` and any key of ``LABEL_KEYS``;
- ``export_checkpoint``: write the final trial checkpoint here too (a path or a URI pyarrow understands);
  chained protocols give it to preparation trials, whose children get it as ``init_checkpoint``;
- ``checkpoint_every``: checkpoint every N evaluations (the last evaluation is always checkpointed);
- ``fail_at_epoch`` (tests only): after epoch N was reported (and checkpointed, if it is a checkpoint
  epoch), raise ``InjectedFailure`` at the end of the next evaluated epoch, before its report — a crash in
  the middle of training, once per trial (a trial restored from a checkpoint does not fail again), to
  exercise ``FailureConfig`` retries. (Raising right after a report can lose that report: Tune's
  function runner had not handed it to the driver yet; measured here.)

Every evaluation is a row ``metrics | labels | flat trial config`` so that each row carries its own
trial's full config (a grouped member's: its own, not the group's). A single trial reports each row as
its Tune result; a grouped trial reports one Tune result per evaluated epoch holding its members' rows
(:func:`report_rows`, read back by :func:`result_rows`). A grouped Tune config holds the members'
shared fields once (:func:`pack_group`, :func:`unpack_group`). The trial process uses ``cpus`` torch threads
and, on a GPU, caps its memory at the ``gpus`` share (fractional packing such as 0.25 per trial).
Every RNG is re-seeded per trial by :class:`Trial` itself, so reused actors are safe.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile

CKPT_FILE = "trial.pt"
LABEL_KEYS = ("family", "experiment", "hold", "role", "plan_id", "parent", "init_error", "variant",
              "schedule_kind", "target_lambda", "intervention")
RUNTIME_KEYS = ("export_checkpoint", "checkpoint_every", "fail_at_epoch")

_DATA_CACHE: dict = {}


class InjectedFailure(RuntimeError):
    """Raised by ``fail_at_epoch`` (tests of FailureConfig retries)."""


def split_config(config: dict) -> tuple[dict, dict, dict]:
    """-> (trial config, labels, run-time keys)."""
    from ..config import config_keys
    names = set(config_keys())
    trial, labels, runtime = {}, {}, {}
    for k, v in config.items():
        if k in RUNTIME_KEYS:
            runtime[k] = v
        elif k in names:
            trial[k] = v
        else:
            labels[k] = v
    return trial, labels, runtime


def flat_config(cfg) -> dict:
    """A resolved TrialConfig as flat report columns (lists/dicts as JSON text)."""
    out = {}
    for k, v in cfg.to_dict().items():
        if k == "lambda":      # the row's `lambda` is the λ of that evaluation (the schedule's)
            continue
        if isinstance(v, (list, dict)):
            v = json.dumps(v, sort_keys=True)
        out[k] = v
    return out


def _data_for(cfg):
    from ..data import load_dataset
    key = (cfg.dataset, cfg.data_root, cfg.normalization, tuple(cfg.synthetic_size))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()            # one data set per reused actor at a time
        _DATA_CACHE[key] = load_dataset(cfg)
    return _DATA_CACHE[key]


def _fs_and_path(uri: str):
    from ..storage import filesystem
    return filesystem(uri)


# checkpoint export/fetch for chained protocols: dgl_ray.storage (atomic on every filesystem)
from ..storage import export_file, fetch_file  # noqa: E402,F401


def set_resources(cpus: float, gpus: float) -> None:
    import torch
    torch.set_num_threads(max(1, int(cpus)))
    if gpus and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, float(gpus)), 0)


def _node_info() -> dict:
    info = {"host": socket.gethostname(), "worker_pid": os.getpid()}   # Tune's own hostname/pid are dropped by the reader
    try:
        import ray
        info["node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (unit tests of the function)
        info["node_id"] = None
    return info


def dgl_trainable(config: dict, cpus: float = 1, gpus: float = 0, retry_errored: bool = False) -> None:
    """Tune function trainable for one Tune trial: a single trial config, or ``{"group": [trial
    config, ...]}`` whose members train as ONE population (dgl_ray.batched.BatchedTrials; a single
    trial is a population of one, the same code). Every member's evaluation is its own row with that
    member's config only; a grouped member's ``run`` is ``<tune trial id>_<member>`` and its row
    records the population it ran in (``group``: the Tune trial id, ``group_size``, ``member``).
    A checkpoint holds one dgl_ray trial checkpoint per member (``trial.pt`` for a single trial); a
    restored Tune trial continues from them as one population.

    A fatal error (ConfigError: bad config, missing data or checkpoint) is not retried: each
    member still running gets a final row with ``status`` "error" and the message, and the
    function returns normally. A restored trial none of whose checkpoints reads is such an error, or,
    with ``retry_errored`` (``--retry-errored``), starts again from epoch 0."""
    from ray import tune
    from ..batched import BatchedTrials
    from ..errors import ConfigError

    set_resources(cpus, gpus)
    grouped = "group" in config
    members = unpack_group(config)
    parts = [split_config(m) for m in members]
    runtime = parts[0][2]
    every = max(1, int(runtime.get("checkpoint_every") or 1))
    fail_at = runtime.get("fail_at_epoch")
    node = _node_info()
    tid = tune.get_context().get_trial_id() or "trial"
    files = [member_file(i) for i in range(len(members))] if grouped else [CKPT_FILE]
    bases = []
    for i, (trial_cfg, labels, _) in enumerate(parts):
        b = {**labels, **node}
        if grouped:
            b.update(run=member_run(tid, i), group=tid, group_size=len(members), member=i)
        bases.append(b)
    group = None
    restored = tune.get_checkpoint()
    with tempfile.TemporaryDirectory(prefix="dgl-init-") as fetch_dir:
        try:
            cfgs = [_resolved(trial_cfg, fetch_dir) for trial_cfg, _, _ in parts]
            data = _data_for(cfgs[0])
            trials = _restore_members(restored, cfgs, files, data, retry_errored) if restored is not None else None
            if trials is not None:
                group = BatchedTrials(trials=trials)
            else:
                group = BatchedTrials(cfgs, data=data)
            for i, (t, (trial_cfg, _, _)) in enumerate(zip(group.trials, parts)):
                bases[i] = {**flat_config(t.cfg), **bases[i]}
                if trial_cfg.get("init_checkpoint"):
                    bases[i]["init_checkpoint"] = trial_cfg["init_checkpoint"]   # the parent's (maybe remote) path
            _train(group, bases, files, [rt for _, _, rt in parts], every, fail_at, restored is not None, grouped)
        except (ConfigError, FileNotFoundError) as e:
            _report_fatal(e, group, parts, bases, restored=restored is not None, grouped=grouped)


def report_rows(rows: list[dict], grouped: bool, checkpoint=None, statuses: list[str] | None = None) -> None:
    """Hand an evaluated epoch's rows to Tune: a single trial's row as the result itself; a grouped
    trial's rows (one per member, in member order) as ONE result
    ``{"rows": [...], "shared": {...}, "epoch": ..., **group_metrics(rows, statuses)}`` (the fields all the
    rows share, most of the config, once in ``shared``). Why one result: Tune's function trainable blocks
    at every ``tune.report`` until the driver has processed the previous result and asked for the next, a
    round trip through the driver (measured 2.6 ms on 2 loaded cores), so a group of 25 that reported row
    by row waited 25 round trips per epoch (12,000 in the digits S1 sweep, now 480). The top-level
    metrics summarise the group (:func:`group_metrics`: the members' best ``test_error``, so that Ray's
    ``ResultGrid.get_best_result("test_error", "min")`` and ``ExperimentAnalysis`` work);
    :func:`result_rows` gives the member rows of either form. ``statuses``: every member's status now
    (members that ended earlier report no row), for the group's counts."""
    from ray import tune
    kw = {} if checkpoint is None else {"checkpoint": checkpoint}
    if not grouped:
        for r in rows[:-1]:
            tune.report(r)
        tune.report(rows[-1], **kw)
        return
    packed = pack_group(rows)        # the fields every row shares (config, labels, epoch) once, in "shared"
    tune.report({"rows": packed["group"], "shared": {k: v for k, v in packed.items() if k != "group"},
                 "epoch": max((r.get("epoch") or 0) for r in rows), **group_metrics(rows, statuses)}, **kw)


# The top-level metrics of a grouped Tune trial's result (besides ``epoch``). Each numeric top-level
# key costs Tune state per trial (its metric analysis keeps max/min/avg/last of every one), so a
# handful only; the per-(λ, seed) numbers are the member rows (dgl_ray.analysis.load_experiment).
GROUP_METRICS = ("test_error", "test_error_median", "n_members", "n_final", "n_diverged", "n_error")
_FINAL = ("completed", "diverged")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def group_metrics(rows: list[dict], statuses: list[str] | None = None) -> dict:
    """A packed Tune trial's own metrics for one evaluated epoch: ``test_error`` = the best (lowest)
    member error of the epoch (None when no member has one: all diverged or errored),
    ``test_error_median``, ``n_members`` (the population's size), ``n_final`` (members ended completed
    or diverged), ``n_diverged`` and ``n_error`` (fatal error rows). ``statuses`` are every member's
    statuses (members that ended before this epoch report no row); without them, the rows' own."""
    errors = sorted(float(r["test_error"]) for r in rows if _finite(r.get("test_error")))
    statuses = list(statuses) if statuses is not None else [r.get("status") for r in rows]
    n_error = sum(r.get("status") == "error" for r in rows)
    median = None
    if errors:
        mid = len(errors) // 2
        median = errors[mid] if len(errors) % 2 else (errors[mid - 1] + errors[mid]) / 2
    return {"test_error": errors[0] if errors else None, "test_error_median": median,
            "n_members": max(len(statuses), int(rows[0].get("group_size") or 0)),
            "n_final": sum(s in _FINAL for s in statuses), "n_diverged": sum(s == "diverged" for s in statuses),
            "n_error": max(n_error, sum(s == "error" for s in statuses))}


def result_rows(result: dict) -> list[dict]:
    """The evaluation rows of one Tune result: its ``rows``, each completed with the ``shared`` fields
    (a grouped trial's epoch, see :func:`report_rows`), or the result itself (a single trial).
    Every reader of results uses this (the results path: dgl_ray.analysis.frames, same rule). Tune
    hands searchers and stoppers the result flattened (``shared/status``, ...): read both forms."""
    rows = result.get("rows")
    if not isinstance(rows, list):
        return [result]
    shared = result.get("shared")
    if not isinstance(shared, dict):
        shared = {k[len("shared/"):]: v for k, v in result.items() if k.startswith("shared/")}
    return [{**shared, **r} for r in rows]


def pack_group(configs: list[dict]) -> dict:
    """The Tune config of a group of trial configs trained as one population: the fields every member
    shares (same key, same value) once at the top level, each member's own fields in ``group``.
    Tune stores a trial's config in its experiment state, in each result (``config``) and in the
    searcher's state: with a group of 25 digits trials the shared fields were 90% of it.
    :func:`unpack_group` gives the members back, each with every field."""
    first, rest = configs[0], configs[1:]
    shared = {k: v for k, v in first.items()
              if k != "group" and all(k in c and c[k] == v and type(c[k]) is type(v) for c in rest)}
    return {**shared, "group": [{k: v for k, v in c.items() if k not in shared} for c in configs]}


def unpack_group(config: dict) -> list[dict]:
    """The member trial configs of a Tune config: ``[config]`` for a single trial, else each member of
    ``group`` with the group's top-level fields (:func:`pack_group`; a group whose members hold every
    field, as older sweeps stored it, reads the same)."""
    if "group" not in config:
        return [config]
    shared = {k: v for k, v in config.items() if k != "group"}
    return [{**shared, **m} for m in config["group"]]


def _restore_members(restored, cfgs, files, data, retry_errored: bool = False) -> list | None:
    """The members' trials from Tune's checkpoint to restore, or, when a member's file there cannot be
    read (truncated, overwritten), from the newest older checkpoint of the same trial folder that reads
    (kept with ``--keep-checkpoints`` >= 2), with a warning on stderr: the trial then reports those
    epochs again (the results path keeps the last report of each epoch). Each Tune checkpoint is its
    own folder, so the ``.prev`` fallback of :func:`dgl_ray.checkpoint.load` never applies here.
    When none reads (corrupted, or the trial folder is gone): None with a warning when ``retry_errored``
    (the caller starts the trial from epoch 0), else the newest checkpoint's ConfigError, naming
    ``--retry-errored``."""
    from ..batched import member_trials
    from ..errors import ConfigError
    from .. import checkpoint as ckpt
    first_error = None
    for c in _checkpoints_to_try(restored):
        try:
            with c.as_directory() as d:
                trials = member_trials(cfgs, data, (ckpt.load(os.path.join(d, f)) for f in files))
        except (ConfigError, OSError) as e:       # OSError: a checkpoint folder that is gone
            first_error = first_error or (e if isinstance(e, ConfigError) else
                                          ConfigError(f"checkpoint {c.path!r} cannot be read ({type(e).__name__}: {e})"))
            continue
        if first_error is not None:
            import sys
            which = "older" if os.path.basename(c.path) < os.path.basename(restored.path.rstrip("/")) else "newer"
            print(f"warning: {first_error}; continuing from the {which} checkpoint {c.path!r} "
                  f"(epoch {trials[0].epoch})", file=sys.stderr, flush=True)
        return trials
    import sys
    if retry_errored:
        print(f"warning: {first_error}; --retry-errored: this trial starts again from epoch 0",
              file=sys.stderr, flush=True)
        return None
    raise ConfigError(f"{first_error}; resume with --retry-errored to start this trial again from epoch 0")


def _checkpoints_to_try(restored):
    """``restored``, then the other ``checkpoint_NNNNNN`` folders beside it with a lower index, newest
    first, then those with a higher index, oldest first (Tune's own checkpoint folder names; read through
    the checkpoint's own filesystem). A newer one is the only one left when a driver was killed after
    Tune's keep-N deleted the checkpoint its last saved state names, but before it saved the state naming
    the new one."""
    import re
    import pyarrow.fs as pafs
    from ray import tune
    yield restored
    parent, name = os.path.split(restored.path.rstrip("/"))
    try:
        infos = restored.filesystem.get_file_info(pafs.FileSelector(parent))
    except Exception:  # noqa: BLE001 - no listing, no fallback: the first error stands
        return
    others = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory
                    and re.fullmatch(r"checkpoint_\d+", i.base_name) and i.base_name != name)
    for n in [o for o in reversed(others) if o < name] + [o for o in others if o > name]:
        yield tune.Checkpoint(path=f"{parent}/{n}", filesystem=restored.filesystem)


def _train(group, bases, files, runtimes, every, fail_at, restored, grouped) -> None:
    """Epoch by epoch: the rows of an evaluated epoch are reported (:func:`report_rows`) with the
    checkpoint of every member every ``every`` evaluations and at the end."""
    from ray import tune
    n_eval = 0
    while group.active and group.epoch < group.cfg.epochs:
        rows = []
        group.run(on_eval=lambda m, i: rows.append({**bases[i], **m}), max_epochs=1)   # one epoch
        if not rows:
            continue
        if fail_at is not None and not restored and group.epoch > int(fail_at):
            raise InjectedFailure(f"fail_at_epoch={fail_at}: injected failure in epoch {group.epoch} (test only)")
        n_eval += 1
        last = not group.active or group.epoch >= group.cfg.epochs
        if last or n_eval % every == 0:
            with tempfile.TemporaryDirectory(prefix="dgl-ckpt-") as d:
                for t, f in zip(group.trials, files):
                    t.save(os.path.join(d, f))
                for f, rt in zip(files, runtimes):
                    if last and rt.get("export_checkpoint"):
                        export_file(os.path.join(d, f), rt["export_checkpoint"])
                report_rows(rows, grouped, checkpoint=tune.Checkpoint.from_directory(d),
                            statuses=[t.status for t in group.trials])
        else:
            report_rows(rows, grouped, statuses=[t.status for t in group.trials])


def _report_fatal(exc: Exception, group, parts, bases, restored: bool = False, grouped: bool = False) -> None:
    """One final row per member that had not ended: status 'error' and the message (Tune sees a
    normal return, so it does not retry what would fail the same way again).

    Its ``epoch`` is the epoch the member had reached, 0 for a trial that never trained, and None
    (unknown) for a restored trial whose checkpoint could not be read: that trial had reported
    epochs before, and an error row dated epoch 0 would sort before them, so that readers taking
    the last evaluation by epoch saw the run as still running (``unfinished``) instead of errored."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    rows = []
    for i, (trial_cfg, _, _) in enumerate(parts):
        t = group.trials[i] if group is not None else None
        if t is not None and t.status != "running":
            continue
        cfg_cols = {k: (json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v)
                    for k, v in trial_cfg.items()}
        # test_error is the sweep's metric: Tune's strict metric check fails the whole run on a result
        # without it, so the error row says "no error rate" (None) rather than leaving the key out
        rows.append({**cfg_cols, **bases[i], "status": "error", "error": f"{type(exc).__name__}: {msg}",
                     "test_error": None,
                     "epoch": t.epoch if t is not None else (None if restored else 0)})
    if rows:
        report_rows(rows, grouped)


any_trainable = dgl_trainable     # the runner's name for it


def _resolved(trial_cfg: dict, fetch_dir: str):
    from ..config import TrialConfig
    d = dict(trial_cfg)
    if d.get("init_checkpoint"):
        d["init_checkpoint"] = fetch_file(d["init_checkpoint"], fetch_dir)
    return TrialConfig.from_dict(d)


def member_file(i: int) -> str:
    return f"member_{i:04d}.pt"


def member_run(tune_trial_id: str, i: int) -> str:
    """The ``run`` id of member i of a grouped Tune trial: every (λ, seed) stays its own run."""
    return f"{tune_trial_id}_{i:03d}"
