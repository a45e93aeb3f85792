"""The Ray Tune function trainable around :class:`dgl_ray.trainer.Trial`.

A Tune config is a trial config (the fields of :class:`dgl_ray.config.TrialConfig`) plus labels and
run-time keys that are not trial settings:

- labels (reported as columns): ``family``, ``experiment``, ``hold``, ``role``, ``plan_id``, ``parent``,
  ``init_error`` and the other keys of ``dgl_ray.config.LABEL_FIELDS`` (any key that is not a trial
  field or a run-time key, :func:`dgl_ray.rows.split_config`);
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
(:func:`report_rows`, read back by :func:`dgl_ray.rows.result_rows`). A grouped Tune config holds the members'
shared fields once (:func:`dgl_ray.rows.pack_group`, :func:`dgl_ray.rows.unpack_group`). The trial process uses ``cpus`` torch threads
and, on a GPU, caps its memory at the ``gpus`` share (fractional packing such as 0.25 per trial).
Every RNG is re-seeded per trial by :class:`Trial` itself, so reused actors are safe.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile

import torch

# Ray is imported inside the functions that run in a trial's process: the sweep command imports this module
# (to name its trainable) before Ray starts.
from .. import checkpoint as ckpt
from ..batched import BatchedTrials, member_trials
from ..config import TrialConfig
from ..data import load_dataset
from ..errors import ConfigError
from ..rows import (CKPT_FILE, column_value, flat_config, group_slots, grouped_result, member_file, member_run,
                    split_config, unpack_group)
# checkpoint export/fetch for chained protocols: dgl_ray.storage (atomic on every filesystem)
from ..storage import Location, export_file, fetch_file

_DATA_CACHE: dict = {}
# a grouped checkpoint's population layout: the member of each slot (dgl_ray.batched.BatchedTrials.layout),
# so that a restored refilling population puts every member back in its slot and the queue after them
LAYOUT_FILE = "population.json"


class InjectedFailure(RuntimeError):
    """Raised by ``fail_at_epoch`` (tests of FailureConfig retries)."""


def _data_for(cfg):
    key = (cfg.dataset, cfg.data_root, cfg.normalization, tuple(cfg.synthetic_size))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()            # one data set per reused actor at a time
        _DATA_CACHE[key] = load_dataset(cfg)
    return _DATA_CACHE[key]


def set_resources(cpus: float, gpus: float) -> None:
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
    A group with ``slots`` (:func:`dgl_ray.rows.pack_group`) trains that many members at once; the
    others queue and take the slots of members that end (docs/PACKING.md, "Refilled slots").
    A checkpoint holds one dgl_ray trial checkpoint per member (``trial.pt`` for a single trial); a
    restored Tune trial continues from them as one population.

    A fatal error (ConfigError: bad config, missing data or checkpoint) is not retried: each
    member still running gets a final row with ``status`` "error" and the message, and the
    function returns normally. A restored trial none of whose checkpoints reads is such an error, or,
    with ``retry_errored`` (``--retry-errored``), starts again from epoch 0."""
    from ray import tune

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
    slots = group_slots(config)
    with tempfile.TemporaryDirectory(prefix="dgl-init-") as fetch_dir:
        try:
            cfgs = [_resolved(trial_cfg, fetch_dir) for trial_cfg, _, _ in parts]
            data = _data_for(cfgs[0])
            back = _restore_members(restored, cfgs, files, data, retry_errored) if restored is not None else None
            if back is not None:
                trials, layout = back
                group = BatchedTrials(trials=trials, slots=slots, layout=layout)
            else:
                group = BatchedTrials(cfgs, data=data, slots=slots)
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
    ``{"rows": [...], "shared": {...}, "epoch": ..., **group_metrics(rows, statuses)}``
    (:func:`dgl_ray.rows.grouped_result`: the fields all the
    rows share, most of the config, once in ``shared``). Why one result: Tune's function trainable blocks
    at every ``tune.report`` until the driver has processed the previous result and asked for the next, a
    round trip through the driver (measured 2.6 ms on 2 loaded cores), so a group of 25 that reported row
    by row waited 25 round trips per epoch (12,000 in the digits S1 sweep, now 480). The top-level
    metrics summarise the group (:func:`dgl_ray.rows.group_metrics`: the members' best ``test_error``, so that Ray's
    ``ResultGrid.get_best_result("test_error", "min")`` and ``ExperimentAnalysis`` work);
    :func:`dgl_ray.rows.result_rows` gives the member rows of either form. ``statuses``: every member's status now
    (members that ended earlier report no row), for the group's counts."""
    from ray import tune
    kw = {} if checkpoint is None else {"checkpoint": checkpoint}
    if not grouped:
        for r in rows[:-1]:
            tune.report(r)
        tune.report(rows[-1], **kw)
        return
    tune.report(grouped_result(rows, statuses), **kw)   # the fields every row shares once, in "shared"


def _restore_members(restored, cfgs, files, data, retry_errored: bool = False) -> tuple[list, list | None] | None:
    """The members' trials from Tune's checkpoint to restore, with the population's layout (the member of
    each slot; None in a checkpoint without one: a slot per member, or one written before refills), or, when a member's file there cannot be
    read (truncated, overwritten), from the newest older checkpoint of the same trial folder that reads
    (kept with ``--keep-checkpoints`` >= 2), with a warning on stderr: the trial then reports those
    epochs again (the results path keeps the last report of each epoch). Each Tune checkpoint is its
    own folder, so the ``.prev`` fallback of :func:`dgl_ray.checkpoint.load` never applies here.
    When none reads (corrupted, or the trial folder is gone): None with a warning when ``retry_errored``
    (the caller starts the trial from epoch 0), else the newest checkpoint's ConfigError, naming
    ``--retry-errored``."""
    first_error = None
    for c in _checkpoints_to_try(restored):
        try:
            with c.as_directory() as d:
                trials = member_trials(cfgs, data, (ckpt.load(os.path.join(d, f)) for f in files))
                layout = _read_layout(d)
        except (ConfigError, OSError) as e:       # OSError: a checkpoint folder that is gone
            first_error = first_error or (e if isinstance(e, ConfigError) else
                                          ConfigError(f"checkpoint {c.path!r} cannot be read ({type(e).__name__}: {e})"))
            continue
        if first_error is not None:
            which = "older" if os.path.basename(c.path) < os.path.basename(restored.path.rstrip("/")) else "newer"
            print(f"warning: {first_error}; continuing from the {which} checkpoint {c.path!r} "
                  f"(epoch {trials[0].epoch})", file=sys.stderr, flush=True)
        return trials, layout
    if retry_errored:
        print(f"warning: {first_error}; --retry-errored: this trial starts again from epoch 0",
              file=sys.stderr, flush=True)
        return None
    raise ConfigError(f"{first_error}; resume with --retry-errored to start this trial again from epoch 0")


def _read_layout(folder: str) -> list | None:
    path = os.path.join(folder, LAYOUT_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as fh:
        return json.load(fh)["layout"]


def _checkpoints_to_try(restored):
    """``restored``, then the other ``checkpoint_NNNNNN`` folders beside it with a lower index, newest
    first, then those with a higher index, oldest first (Tune's own checkpoint folder names; read through
    the checkpoint's own filesystem). A newer one is the only one left when a driver was killed after
    Tune's keep-N deleted the checkpoint its last saved state names, but before it saved the state naming
    the new one."""
    from ray import tune
    yield restored
    parent, name = os.path.split(restored.path.rstrip("/"))
    try:
        children = Location(restored.filesystem, parent, parent).iterdir()
    except Exception:  # noqa: BLE001 - no listing, no fallback: the first error stands
        return
    others = sorted(c.name for c in children if c.is_dir() and re.fullmatch(r"checkpoint_\d+", c.name) and c.name != name)
    for n in [o for o in reversed(others) if o < name] + [o for o in others if o > name]:
        yield tune.Checkpoint(path=f"{parent}/{n}", filesystem=restored.filesystem)


def _train(group, bases, files, runtimes, every, fail_at, restored, grouped) -> None:
    """Epoch by epoch: the rows of an evaluated epoch are reported (:func:`report_rows`) with the
    checkpoint of every member (queued ones too) and the population's layout every ``every``
    evaluations and at the end."""
    from ray import tune
    n_eval = 0
    while not group.done:
        rows = []
        group.run(on_eval=lambda m, i: rows.append({**bases[i], **m}), max_epochs=1)   # one epoch
        if not rows:
            continue
        if fail_at is not None and not restored and group.epoch > int(fail_at):
            raise InjectedFailure(f"fail_at_epoch={fail_at}: injected failure in epoch {group.epoch} (test only)")
        n_eval += 1
        last = group.done
        if last or n_eval % every == 0:
            with tempfile.TemporaryDirectory(prefix="dgl-ckpt-") as d:
                for t, f in zip(group.trials, files):
                    t.save(os.path.join(d, f))
                if group.refills:
                    with open(os.path.join(d, LAYOUT_FILE), "w") as fh:
                        json.dump({"layout": group.layout}, fh)
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
        cfg_cols = {k: column_value(v) for k, v in trial_cfg.items()}
        # test_error is the sweep's metric: Tune's strict metric check fails the whole run on a result
        # without it, so the error row says "no error rate" (None) rather than leaving the key out
        rows.append({**cfg_cols, **bases[i], "status": "error", "error": f"{type(exc).__name__}: {msg}",
                     "test_error": None,
                     "epoch": t.epoch if t is not None else (None if restored else 0)})
    if rows:
        report_rows(rows, grouped)


any_trainable = dgl_trainable     # the runner's name for it


def _resolved(trial_cfg: dict, fetch_dir: str):
    d = dict(trial_cfg)
    if d.get("init_checkpoint"):
        d["init_checkpoint"] = fetch_file(d["init_checkpoint"], fetch_dir)
    return TrialConfig.from_dict(d)
