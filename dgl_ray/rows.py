"""The row and wire format shared by the Tune side (trainable, searchers, progress) and the analysis.

- A Tune config is a trial config (the fields of :class:`dgl_ray.config.TrialConfig`) plus labels and run-time
  keys (:func:`split_config`). A population of trials travels as ONE Tune config: the fields every member
  shares once at the top level, each member's own in ``group`` (:func:`pack_group`, :func:`unpack_group`).
- Every evaluation is a row ``metrics | labels | flat trial config`` (:func:`flat_config`). A grouped Tune
  trial reports an epoch's member rows as one result ``{"rows": [...], "shared": {...}, "epoch": ...}`` plus
  the group's own metrics (:data:`GROUP_METRICS`); :func:`result_rows` gives the member rows of either form.
- Names: member i of Tune trial T is the run ``T_00i`` (:func:`member_run`) with the checkpoint file
  :func:`member_file`; Tune's trial folder names carry T (:func:`trial_id_of`).
- The sweep's ``results.parquet`` (one row per run per evaluation) is read by :func:`read_results_parquet`.

No Ray and no torch here: the analysis reads results without them.
"""
from __future__ import annotations

import json
import os
import re
import warnings

import pandas as pd

from .config import PACKING_KEYS, RUNTIME_FIELDS, config_keys

# A run whose last row has one of these statuses is finished; any other run is unfinished (a sweep
# still running, stopped or crashed) or errored, and no table may count it as final.
FINAL_STATUSES = ("completed", "diverged")
# A member whose last row has one of these statuses has ended: it trains and reports no more ("decided":
# stopped early with its branch, never a final error; "error": the trainable's fatal error row).
ENDED_STATUSES = ("completed", "diverged", "decided", "error")

CKPT_FILE = "trial.pt"          # a single trial's checkpoint file in a Tune checkpoint folder

# Tune's trial folder: <trainable>_<id>_<k>_<params>_<date>, the id being 8 hex digits (a searcher's trial,
# dgl_trainable_7a901710_1_...) or <5 hex>_<5 digits> (Tune's own variant generator).
TRIAL_DIR = re.compile(r"^(?P<trainable>.+?)_(?P<id>[0-9a-f]{8}|[0-9a-f]{5}_\d{5})(?:_|$)")

# The top-level metrics of a grouped Tune trial's result (besides ``epoch``). Each numeric top-level
# key costs Tune state per trial (its metric analysis keeps max/min/avg/last of every one), so a
# handful only; the per-(λ, seed) numbers are the member rows.
GROUP_METRICS = ("test_error", "test_error_median", "n_members", "n_final", "n_diverged", "n_decided", "n_error")
GROUP_KEYS = ("rows", "shared", "epoch")        # a grouped result's own keys, besides GROUP_METRICS
SLOTS_KEY = PACKING_KEYS[1]    # a packed Tune config's slot count, when it holds more members than slots

# what every row of a results.parquet has (one row per trial per evaluation: which trial, when, what error)
REQUIRED_RESULT_COLUMNS = ("run", "epoch", "test_error")


# ------------------------------------------------------------------------------------------ configs

def split_config(config: dict) -> tuple[dict, dict, dict]:
    """A Tune config -> (trial config, labels, run-time keys). Labels are every key that is neither a
    trial field nor a run-time key: they are copied into the rows as they are."""
    names = set(config_keys())
    trial, labels, runtime = {}, {}, {}
    for key, value in config.items():
        if key in RUNTIME_FIELDS:
            runtime[key] = value
        elif key in names:
            trial[key] = value
        else:
            labels[key] = value
    return trial, labels, runtime


def column_value(value):
    """A config value as a flat result column: lists and dicts as JSON text (a Tune result is flat)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def flat_config(cfg) -> dict:
    """A resolved TrialConfig as flat report columns (lists/dicts as JSON text)."""
    # the row's `lambda` is the λ of that evaluation (the schedule's), not the config's
    return {key: column_value(value) for key, value in cfg.to_dict().items() if key != "lambda"}


def pack_group(configs: list[dict], slots: int | None = None) -> dict:
    """The Tune config of a group of trial configs trained as one population: the fields every member
    shares (same key, same value) once at the top level, each member's own fields in ``group``.
    Tune stores a trial's config in its experiment state, in each result (``config``) and in the
    searcher's state: with a group of 25 digits trials the shared fields were 90% of it.
    ``slots``: fewer slots than members: the first ``slots`` members start, the others queue and take
    the slots of members that end (dgl_ray.batched.BatchedTrials; docs/PACKING.md, "Refilled slots").
    :func:`unpack_group` gives the members back, each with every field; :func:`group_slots` the slots."""
    first, rest = configs[0], configs[1:]
    shared = {k: v for k, v in first.items()
              if k not in PACKING_KEYS and all(k in c and c[k] == v and type(c[k]) is type(v) for c in rest)}
    out = {**shared, "group": [{k: v for k, v in c.items() if k not in shared} for c in configs]}
    if slots is not None and slots < len(configs):
        out[SLOTS_KEY] = int(slots)
    return out


def unpack_group(config: dict) -> list[dict]:
    """The member trial configs of a Tune config: ``[config]`` for a single trial, else each member of
    ``group`` with the group's top-level fields (:func:`pack_group`; a group whose members hold every
    field, as older sweeps stored it, reads the same), queued members included."""
    if "group" not in config:
        return [config]
    shared = {k: v for k, v in config.items() if k not in PACKING_KEYS}
    return [{**shared, **m} for m in config["group"]]


def group_slots(config: dict) -> int | None:
    """The slots of a packed Tune config that queues members (:func:`pack_group`), else None: a slot each."""
    return config.get(SLOTS_KEY) if "group" in config else None


# ------------------------------------------------------------------------------------------ names

def member_file(i: int) -> str:
    """The checkpoint file of member i of a grouped Tune trial."""
    return f"member_{i:04d}.pt"


def member_run(tune_trial_id: str, i: int) -> str:
    """The ``run`` id of member i of a grouped Tune trial: every (λ, seed) stays its own run."""
    return f"{tune_trial_id}_{i:03d}"


def trial_id_of(folder: str) -> str | None:
    """The Tune trial id in a trial folder's name (the ``run`` column of a single trial's rows)."""
    m = TRIAL_DIR.match(os.path.basename(str(folder).rstrip("/")))
    return m.group("id") if m else None


# ------------------------------------------------------------------------------------------ results

def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def group_metrics(rows: list[dict], statuses: list[str] | None = None) -> dict:
    """A packed Tune trial's own metrics for one evaluated epoch: ``test_error`` = the best (lowest)
    member error of the epoch (None when no member has one: all diverged or errored),
    ``test_error_median``, ``n_members`` (the group's members, queued ones included), ``n_final``
    (members ended completed or diverged), ``n_diverged``, ``n_decided`` (stopped early with their
    branch) and ``n_error`` (fatal error rows). ``statuses`` are every member's statuses (members that
    ended before this epoch report no row); without them, the rows' own."""
    errors = sorted(float(r["test_error"]) for r in rows if _finite(r.get("test_error")))
    statuses = list(statuses) if statuses is not None else [r.get("status") for r in rows]
    n_error = sum(r.get("status") == "error" for r in rows)
    median = None
    if errors:
        mid = len(errors) // 2
        median = errors[mid] if len(errors) % 2 else (errors[mid - 1] + errors[mid]) / 2
    return {"test_error": errors[0] if errors else None, "test_error_median": median,
            "n_members": max(len(statuses), int(rows[0].get("group_size") or 0)),
            "n_final": sum(s in FINAL_STATUSES for s in statuses), "n_diverged": sum(s == "diverged" for s in statuses),
            "n_decided": sum(s == "decided" for s in statuses), "n_error": max(n_error, sum(s == "error" for s in statuses))}


def grouped_result(rows: list[dict], statuses: list[str] | None = None) -> dict:
    """The one Tune result of a grouped trial's evaluated epoch: the member rows (in member order) with
    the fields they all share once in ``shared``, the epoch, and :func:`group_metrics`."""
    packed = pack_group(rows)
    return {"rows": packed["group"], "shared": {k: v for k, v in packed.items() if k != "group"},
            "epoch": max((r.get("epoch") or 0) for r in rows), **group_metrics(rows, statuses)}


def result_rows(result: dict) -> list[dict]:
    """The evaluation rows of one Tune result: its ``rows``, each completed with the ``shared`` fields
    (a grouped trial's epoch, :func:`grouped_result`), or the result itself (a single trial).
    Tune hands searchers and stoppers the result flattened (``shared/status``, ...): read both forms."""
    rows = result.get("rows")
    if not isinstance(rows, list):
        return [result]
    shared = result.get("shared")
    if not isinstance(shared, dict):
        shared = {k[len("shared/"):]: v for k, v in result.items() if k.startswith("shared/")}
    return [{**shared, **r} for r in rows]


def member_rows(result: dict) -> list[dict]:
    """The rows of one result.json line: a grouped result's member rows (:func:`result_rows`), each with
    the line's Tune keys (trial id, times) but not the group's metrics (they summarise the members: no
    member row takes them); a single trial's line is its row."""
    if not isinstance(result.get("rows"), list):
        return [result]
    tune_keys = {k: v for k, v in result.items() if k not in GROUP_KEYS and k not in GROUP_METRICS}
    return [{**tune_keys, **r} for r in result_rows(result)]


class ResultsFallbackWarning(UserWarning):
    """A sweep's results.parquet is empty or unreadable: its trial folders were read instead."""


def read_results_parquet(parquet, trial_count: int) -> pd.DataFrame | None:
    """The sweep's results.parquet (a :class:`dgl_ray.storage.Location`), or None when it is absent; an
    empty or unreadable one (a write that was killed, a full disk) gives None with a one-line
    :class:`ResultsFallbackWarning`. A Parquet that is not a results table (no
    :data:`REQUIRED_RESULT_COLUMNS`, yet rows; an empty sweep's table may lack them) is a ValueError naming
    what it lacks."""
    try:
        df = parquet.read_parquet()
    except FileNotFoundError:
        return None
    except Exception as exc:    # ArrowInvalid, OSError: a truncated or 0-byte file
        why = " ".join(str(exc).split())[:200]
        warnings.warn(f"{parquet}: results.parquet unreadable ({why}); read the {trial_count} trial folders "
                      "instead; `--resume` rewrites it", ResultsFallbackWarning, stacklevel=4)
        return None
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in df]
    if missing and len(df):     # another table saved as Parquet: say so in one line rather than fail in a reduction
        raise ValueError(f"not a results table of dgl_ray: no {', '.join(repr(c) for c in missing)} column in "
                         f"{parquet} (it has {', '.join(map(str, df.columns[:8]))}{' ...' if len(df.columns) > 8 else ''})")
    return df
