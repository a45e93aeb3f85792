"""The tidy frame: one row per trial per evaluation (the rows layer: Tune's runner writes it, the
analysis reads it; neither imports the other).

Two readers, one output shape:

- :func:`load_experiment` reads what a dgl_ray sweep writes (``results.parquet`` and/or Ray Tune's
  experiment folder of trial folders holding ``params.json`` and ``result.json``).
- :func:`dgl_ray.analysis.load_legacy` reads the paper's archived results (CSV and JSON files, with the
  ``*_config.json`` files that sit beside them) in every shape listed in ``PROTOCOLS.md``.

The tidy frame always has the columns of :data:`CORE_COLUMNS` (missing values as NaN/None); any
other config key or archive column is kept as an extra column. Its types are the Parquet's: ``run``,
``experiment``, ``noise`` as strings, the label sets of :data:`CATEGORICAL_COLUMNS` as categoricals,
the trial config's list fields as Python lists (JSON text only inside the Parquet, :func:`for_parquet`).
A run counts as final only when its last row is (:func:`final_rows`); a Tune trial that has not
reported yet gives one ``pending`` row per (λ, seed) trial; a damaged result.json line is warned about
(:class:`DamagedLineWarning`) and listed in ``frame.attrs["damaged_lines"]``.

Conventions chosen for the archive (documented here because tables rely on them):

- ``epoch`` is the number of completed epochs of the run when the evaluation was taken. Archives that
  keep only a final error (S1, S2 CSV, Q1, Ta-prep) get ``epoch`` = the run's length when the paper's
  protocol or a config states it (``epochs`` in a config, else 100 for S1/S2/Q1), otherwise NaN. A
  run with one row is its own final evaluation either way.
- Ladder archives that list steps without epochs get ``epoch = (step + 1) * hold`` when the hold
  is known, ``step + 1`` otherwise; ``step`` (0-based) is kept as a column.
- Phase-relative epochs (T1/T2, T1a/T13 trajectories restart at each phase) are made global by
  offsetting each phase by the end of the previous one; the raw value is kept in ``phase_epoch``.
- Values a file and its config do not give (``eta`` of S1/S2a–f, the λ of an init phase) stay
  NaN and are listed in ``frame.attrs["notes"]``: never a silent default (PROTOCOLS.md says "η = 0.4
  unless stated"; pass ``eta_default=0.4`` to state it).
- A run without any evaluation (a failed init) keeps one row with ``status == "no_evaluation"`` so
  that every table counts it.
- ``family`` is the experiment series of the file name (S1a -> S1, T1a, T13, T1 spinodal ->
  ``T1-spinodal``, Tb1 and Tb2 apart, Ta1/Ta2 -> Ta: the two arms of Tα); labels never merge
  two experiments.
- S1/S2 CSVs carry the paper's own branch label in ``phase`` (ordered/collapsed/intermediate). It is
  moved to ``paper_branch``; ``phase`` then names the schedule segment like the trainer's (``main``).
- Archive branch labels of sweeps from checkpoints (ordered/collapse/low_error/high_error,
  ordered_up/collapse_down) become ``origin`` (ordered|collapse) and, when present, ``direction``.

Files that are not understood are never skipped in silence: each one is named in a
:class:`SkippedFileWarning` and listed in ``frame.attrs["skipped"]`` as ``(path, reason)`` pairs.
The readers of the archive's layouts are a registry of small shapes in :mod:`.archive`. Both readers
drop rows whose error is outside [0, 1] or whose λ is not a number, with an
:class:`InvalidValueWarning`, and count them in ``frame.attrs["excluded"]``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .config import PACKING_KEYS, TrialConfig
from . import provenance
from .manifest import MANIFEST, extensions, part_folders
from .paper import OUTCOMES, outcome_of
from .rows import (FINAL_STATUSES, flat_config, member_rows, member_run, read_results_parquet, split_config,
                    trial_id_of)
from .storage import Location

CORE_COLUMNS = [
    "run", "experiment", "family", "dataset", "model", "width", "eta", "noise", "seed", "lambda",
    "epoch", "test_error", "train_loss", "avg_cos", "gs_norm", "gv_norm", "c_sv", "lr",
    "global_step", "wall_time", "status", "phase", "direction", "origin", "hold",
]

# Small sets of labels: categoricals in the tidy frame (tables group them with observed=True).
CATEGORICAL_COLUMNS = ("family", "dataset", "model", "status", "run_status", "phase", "direction", "origin")
# The values these labels can take, categories even where a frame holds none of them, so that setting
# one (``df.loc[..., "status"] = "diverged"``) works; values found in the data are added.
KNOWN_LABELS = {
    "status": ("running", "completed", "diverged", "decided", "error", "pending", "no_evaluation"),
    "run_status": ("completed", "diverged", "decided", "unfinished", "error"),
    "direction": ("up", "down"),
    "origin": ("ordered", "collapse"),
}
# A run stopped early by the branch classifier (--decide-early): its last row names a branch
# (``decided_branch``), never a final error. Its run_status is "decided".
DECIDED = "decided"
# Free text: pandas' string dtype (as the Parquet stores them), never object.
STRING_COLUMNS = ("run", "experiment", "noise")

# Ray Tune bookkeeping keys in result.json that say nothing about the experiment.
_TUNE_NOISE = {
    "config", "hostname", "node_ip", "pid", "date", "timestamp", "time_since_restore",
    "iterations_since_restore", "time_this_iter_s", "checkpoint_dir_name", "should_checkpoint",
    "experiment_tag", "done", "trial_id",
}


class SkippedFileWarning(UserWarning):
    """A file under a loaded path was not read (unknown shape, duplicate, config without results)."""


class InvalidValueWarning(UserWarning):
    """Rows were excluded: an error outside [0, 1] (or infinite) or a λ that is not a number."""


class DamagedLineWarning(UserWarning):
    """A line of a trial's result.json is not JSON (a write cut short): its rows are missing."""

    def __init__(self, path: str, lineno: int):
        super().__init__(f"{path}:{lineno}: damaged line (not JSON) skipped; its rows are missing")
        self.path, self.lineno = path, lineno


def _screen(df: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str, int]]]:
    """Drop rows no table can use honestly, and say which: (experiment, reason, rows).

    An error is a fraction: -1, 7.5 or inf is a broken record, not a data point; a λ that is not a
    number cannot be placed on any axis. NaN errors stay (diverged or not evaluated: counted).
    """
    raw_lam = df["lambda"]
    lam = pd.to_numeric(raw_lam, errors="coerce")
    bad_lam = raw_lam.notna() & lam.isna()
    err = pd.to_numeric(df["test_error"], errors="coerce")
    bad_err = (df["test_error"].notna() & err.isna()) | (err.notna() & ~err.between(0.0, 1.0))
    excluded = []
    for mask, why in ((bad_lam, "λ is not a number"),
                      (bad_err & ~bad_lam, "error outside [0, 1] or not a number")):
        if mask.any():
            exp = df.loc[mask, "experiment"].astype(object).where(df.loc[mask, "experiment"].notna(), "?")
            for e, n in exp.astype(str).value_counts(sort=False).items():
                examples = ", ".join(map(repr, (raw_lam if "λ" in why else df["test_error"])
                                         [mask & exp.reindex(df.index).eq(e)].unique()[:3]))
                excluded.append((e, f"{why} (e.g. {examples})", int(n)))
    bad = bad_lam | bad_err
    return df[~bad], excluded


def _round_lambda(s: pd.Series) -> pd.Series:
    # Float λ grids (0.1 + 0.2 ...) must compare equal across files and notebooks.
    return pd.to_numeric(s, errors="coerce").round(6)


def _list_columns() -> list[str]:
    """The trial config's list- and dict-valued fields (lr_milestones, lambda_schedule, synthetic_size,
    tags): rows carry them as JSON text (a Tune result is flat), the frame as Python objects."""
    return [f.name for f in dataclasses.fields(TrialConfig) if str(f.type).startswith(("list", "dict"))]


def _categorical(s: pd.Series, known: tuple[str, ...]) -> pd.Series:
    """``s`` as a categorical of its values as text, with the ``known`` values as categories too."""
    text = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))
    found = sorted(set(text.dropna()) - set(known))
    return text.astype(pd.CategoricalDtype(list(known) + found))


def _decoded(v):
    """A JSON text of a list or dict -> the object; anything else unchanged."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The Parquet's types: run, experiment, noise as strings; the small label sets
    (:data:`CATEGORICAL_COLUMNS`) as categoricals; list fields as Python lists (not JSON text)."""
    df["run"] = df["run"].astype(object).where(df["run"].notna(), "nan").astype(str)
    for c in STRING_COLUMNS[1:]:
        df[c] = df[c].astype(object).where(df[c].notna(), None).astype("str")
    for c in CATEGORICAL_COLUMNS:
        if c in df:
            df[c] = _categorical(df[c], KNOWN_LABELS.get(c, ()))
    lists = [c for c in _list_columns() if c in df]
    for c in lists:
        df[c] = pd.Series([_decoded(v) for v in df[c]], index=df.index, dtype=object)
    for c in df.columns[(df.dtypes == object).to_numpy()]:
        if c not in lists and _all_numbers(df[c]):
            df[c] = pd.to_numeric(df[c])    # numbers never stay object (a column of ints and None)
    return df


def for_parquet(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the tidy frame to write as Parquet: list and dict fields as JSON text again (Parquet
    has no type for a list of dicts of varying keys or an empty dict; :func:`normalise` decodes them)."""
    out = df.copy()
    for c in [c for c in _list_columns() if c in out]:
        out[c] = out[c].map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v)
    return out


def _all_numbers(s: pd.Series) -> bool:
    vals = s.dropna()
    return bool(len(vals)) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                                   for v in vals)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with every core column present, dtypes set and λ rounded to 1e-6.

    Rows are sorted by run then epoch so that "last evaluation" is the last row of a run. Rows whose
    error is outside [0, 1] (or infinite, or not a number) or whose λ is not a number are dropped
    with an :class:`InvalidValueWarning` and counted in ``attrs["excluded"]`` as
    ``(experiment, reason, rows)``.
    """
    df = df.copy()
    for c in CORE_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan if c not in {"run", "experiment", "family", "dataset", "model", "noise",
                                        "status", "phase", "direction", "origin"} else None
    df, excluded = _screen(df)
    for exp, why, n in excluded:
        warnings.warn(f"{exp}: {n} rows excluded: {why}", InvalidValueWarning, stacklevel=3)
    for c in ["width", "eta", "lambda", "epoch", "test_error", "train_loss", "avg_cos", "gs_norm",
              "gv_norm", "c_sv", "lr", "global_step", "wall_time", "hold"]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["lambda"] = _round_lambda(df["lambda"])
    df["eta"] = df["eta"].round(6)
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    df = _typed(df)
    order = [c for c in CORE_COLUMNS] + [c for c in df.columns if c not in CORE_COLUMNS]
    df = df[order]
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["run", "epoch", "_order"], na_position="last", kind="stable")
    df = df.drop(columns="_order").reset_index(drop=True)
    df.attrs["excluded"] = list(df.attrs.get("excluded", [])) + excluded
    return df


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


def _read_or_none(f) -> str | None:
    """The text of a storage file, or None when it is absent (one read request, no existence check)."""
    try:
        return f.read_text()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return None


def _read_trial(trial, experiment: str) -> pd.DataFrame:
    """One Tune trial folder (a local path or a :class:`dgl_ray.storage.Location`) -> rows (one per
    reported evaluation), config as columns."""
    trial = Location.of(trial)
    config: dict = {}
    params = _read_or_none(trial / "params.json")
    if params is not None:
        try:
            config = _flatten(json.loads(params))
        except json.JSONDecodeError:
            config = {}
    rows = []
    results = _read_or_none(trial / "result.json")
    if results is not None:
        for lineno, line in enumerate(results.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                # A trial killed mid-write leaves a truncated last line; the rest is still valid.
                _damaged_line(trial / "result.json", lineno)
                continue
            rows.extend(member_rows(r))
    folder_id = trial_id_of(trial.name) or trial.name
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
    if not records:  # a trial that never reported: its (λ, seed) trials, pending
        records = _never_reported(config, folder_id)
    out = pd.DataFrame.from_records(records)
    out["experiment"] = out.get("experiment", pd.Series([None] * len(out))).fillna(experiment)
    if "experiment" in config:
        out["experiment"] = out["experiment"].fillna(config["experiment"])
    return out


def _damaged_line(path: Path, lineno: int) -> None:
    """Say that a result.json line is not JSON (its rows are missing from the frame); counted in
    ``frame.attrs["damaged_lines"]`` by :func:`load_experiment`."""
    warnings.warn(DamagedLineWarning(str(path), lineno), stacklevel=2)


def _recording_damage(read):
    """``read()`` and the (file, line) of every damaged result.json line it met; the warnings are
    passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DamagedLineWarning)
        out = read()
    damaged = []
    for w in caught:
        if issubclass(w.category, DamagedLineWarning):
            damaged.append((w.message.path, w.message.lineno))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out, damaged


def _resolved_columns(config: dict) -> dict:
    """The trial config's fields as a trial's rows would carry them (defaults resolved: the dataset's
    model, epochs, ...; lists as JSON text); {} when the config does not resolve."""
    try:
        return flat_config(TrialConfig.from_dict(split_config(config)[0]))
    except Exception:  # noqa: BLE001 - a config that does not resolve keeps its own fields only
        return {}


def _never_reported(config: dict, folder_id: str) -> list[dict]:
    """The rows of a Tune trial that has not reported yet: one per (λ, seed) trial of its config (a packed
    trial's members, ``run`` as they will report it: dgl_ray.rows.member_run), ``status``
    pending, no epoch and no error, so that tables count them as missing at their own λ."""
    members = config.get("group")
    if isinstance(members, str):
        try:
            members = json.loads(members)        # _flatten kept the list as JSON text
        except ValueError:
            members = None
    if not isinstance(members, list):
        return [{**_resolved_columns(config), **config, "run": folder_id, "status": "pending"}]
    shared = {k: v for k, v in config.items() if k not in PACKING_KEYS}    # "slots" is the group's, no column
    rows = []
    for i, m in enumerate(members):
        member = {**shared, **_flatten(m if isinstance(m, dict) else {})}
        # the defaults a trial's rows carry though params.json omits them (model, epochs, ...)
        rows.append({**_resolved_columns(member), **member, "run": member_run(folder_id, i),
                     "group": folder_id, "member": i, "status": "pending"})
    return rows


def run_status_of(df: pd.DataFrame) -> pd.Series:
    """Each row's run status: the run's last status when it is final (completed, diverged) or
    ``decided`` (stopped early by the branch classifier), ``error``
    when any row of the run says so, else ``unfinished``. A stored ``run_status`` (the runner's, which
    also knows Tune's errored trials) wins where it says error.

    A fatal error row ends its run whatever its epoch: a restored trial whose checkpoint cannot be
    read does not know the epoch it had reached (its error row has none), so it is not the last row
    by epoch; nothing is reported after it (Tune does not rerun a trial that returned)."""
    if not len(df):
        return pd.Series([], dtype=object, index=df.index)
    run = df["run"].astype(str)
    status_col = df["status"] if "status" in df else pd.Series(None, index=df.index, dtype=object)
    order = pd.to_numeric(df["epoch"], errors="coerce") if "epoch" in df else pd.Series(0, index=df.index)
    d = pd.DataFrame({"run": run, "status": status_col.astype(object), "order": order.fillna(-1)})
    last = d.sort_values("order", kind="stable").drop_duplicates("run", keep="last").set_index("run")["status"]
    ended = FINAL_STATUSES + (DECIDED,)
    per_run = last.where(last.isin(ended), "unfinished").astype(object)
    errored = d.loc[d["status"].eq("error"), "run"].unique()
    per_run[per_run.index.isin(errored) & ~last.isin(ended)] = "error"
    out = run.map(per_run)
    if "run_status" in df:
        out = out.where(~(df["run_status"].eq("error") & ~out.isin(ended)), "error")
    return out


def _trial_dirs(folder) -> list:
    """The Tune trial folders of a sweep folder (those holding result.json or params.json); one listing
    of the sweep folder and one of each candidate (on S3: list requests, not a request per file)."""
    return [p for p in _subfolders(folder) if {"result.json", "params.json"} & {c.name for c in p.iterdir()}]


def _subfolders(folder) -> list:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _experiment_dirs(root, depth: int = 2) -> list:
    """Folders under ``root`` (a :class:`dgl_ray.storage.Location`) that look like one sweep (a
    results.parquet or trial folders)."""
    children = root.iterdir()
    if any(c.name == "results.parquet" for c in children) or _trial_dirs(root):
        return [root]
    if depth == 0:
        return []
    found = []
    for p in children:
        if p.is_dir() and not p.name.startswith("."):
            found.extend(_experiment_dirs(p, depth - 1))
    return found


def _manifest(folder) -> dict:
    """The sweep's ``dgl_sweep.json`` (dgl_ray/manifest.py), {} when it has none or it is unreadable."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _part_trial_dirs(folder, manifest: dict) -> list:
    """The trial folders of every part of the sweep: its own and, for a sweep grown in place (--extend),
    those of each extension's Tune experiment (``<name>/extend-<k>/``, listed in the manifest)."""
    trials = _trial_dirs(folder)
    for name in part_folders(manifest)[1:]:
        part = folder / str(name)
        if name and part.exists() and part.is_dir():
            trials += _trial_dirs(part)
    return trials


def _load_one_experiment(folder, trial_folders_only: bool = False) -> pd.DataFrame:
    # every part's trial folders: while an extension runs (or after its driver was killed) results.parquet
    # holds the earlier parts only, and the extension's runs come from its folders
    manifest = _manifest(folder)        # read once: the parts' folders and the planned trials
    trials = _part_trial_dirs(folder, manifest)
    frames = []
    have: dict[str, float] = {}
    errored: set[str] = set()
    pq = None if trial_folders_only else read_results_parquet(folder / "results.parquet", len(trials))
    if pq is not None:
        frames.append(pq)
        if len(pq):
            have = pq.groupby(pq["run"].astype(str))["epoch"].max().to_dict()
            if "status" in pq:
                errored = set(pq.loc[pq["status"].eq("error"), "run"].astype(str))
    # The Parquet is written at the end of a sweep: trials missing from it (sweep still running or
    # killed) or with more evaluations in their folder than in it come from the trial folders.
    for trial in trials:
        # a folder holds one run, or one per member of a grouped Tune trial
        for run, t in _read_trial(trial, folder.name).groupby("run", sort=False):
            run = str(run)
            ep = pd.to_numeric(t.get("epoch", pd.Series(dtype=float)), errors="coerce").max()
            if run in have:
                newer = pd.notna(ep) and ep > (have[run] if pd.notna(have[run]) else -1)
                # a fatal error row may have no epoch (a restored trial whose checkpoint cannot be read)
                new_error = run not in errored and "status" in t and t["status"].eq("error").any()
                if not (newer or new_error):
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
    df.attrs["trials"] = _trial_counts(df, folder, manifest)
    return df


def _trial_counts(df: pd.DataFrame, folder: Path, manifest: dict | None = None) -> dict:
    """How many (λ, seed) trials of the sweep are finished, unfinished, errored and never started
    (the plan's size comes from the sweep's ``dgl_sweep.json``, ``manifest`` when already read; without
    it, never-started is unknown)."""
    runs = df.groupby(df["run"].astype(str))["run_status"].last() if len(df) else pd.Series([], dtype=object)
    # a Tune trial that has not reported yet gives its trials one pending row each: never started
    pending = set(df.loc[df["status"].astype(object).eq("pending"), "run"].astype(str)) \
        if len(df) and "status" in df else set()
    started = runs[~runs.index.isin(pending)]
    counts = {"finished": int(started.isin(FINAL_STATUSES).sum()), "decided": int((started == DECIDED).sum()),
              "unfinished": int((started == "unfinished").sum()),
              "errored": int((started == "error").sum()), "never_started": len(pending) or None}
    manifest = _manifest(folder) if manifest is None else manifest
    if manifest.get("plan_kind") == "grid" and "members" in manifest:
        # an adaptive extension's trials are proposed as it runs and it may stop at its target before its
        # budget: its unspent budget is never "never started", and its runs (plan ids "b...") are not the grid's
        adaptive = [e for e in extensions(manifest) if e.get("plan_kind", "grid") != "grid"]
        planned = int(manifest["members"]) - sum(int(e.get("added", 0)) for e in adaptive)
        if adaptive and len(started) and "plan_id" in df:
            plan_ids = df.groupby(df["run"].astype(str))["plan_id"].last().reindex(started.index).astype(str)
            started = started[~plan_ids.str.startswith("b")]
        counts["never_started"] = max(0, planned - len(started))
    return counts


def missing_trials(df: pd.DataFrame) -> dict:
    """The counts of :func:`load_experiment` (summed over sweeps): finished, decided (stopped early with
    a branch: not missing, not final), unfinished, errored and never started (None when unknown), and
    ``missing`` = unfinished + errored + never started."""
    c = dict(df.attrs.get("trials") or {})
    if not c:
        return {}
    c["missing"] = c["unfinished"] + c["errored"] + (c["never_started"] or 0)
    return c


def load_experiment(path, *, trial_folders_only: bool = False) -> pd.DataFrame:
    """Read a sweep's results into the tidy frame (one row per trial per evaluation).

    ``path`` (a local path or any URI pyarrow reads, e.g. ``s3://bucket/dgl/coexistence``) may be the
    ``results.parquet`` file, a sweep folder ``<storage>/<name>/`` (its Parquet, completed by its trial
    folders when the Parquet is missing or partial), or a storage folder holding several sweeps (all are
    concatenated; ``experiment`` tells them apart). A results.parquet that is empty or unreadable (a
    killed write) is replaced by the sweep's trial folders, with a :class:`dgl_ray.rows.ResultsFallbackWarning`.
    ``trial_folders_only`` ignores results.parquet (the runner rebuilds it from the folders).
    Returns a frame with at least :data:`CORE_COLUMNS`, sorted by run and epoch.
    Raises ``FileNotFoundError`` if the path does not exist, ``ValueError`` if it holds no sweep and
    :class:`dgl_ray.storage.StorageError` (an OSError) if the storage cannot be reached.
    """
    loc = Location.of(path)
    if loc.suffix == ".parquet" and not loc.is_dir():
        df = _load_parquet_file(loc)
        if df is not None:
            return df
        loc = loc.parent             # missing or unreadable: the sweep's trial folders (warned)
        if not _trial_dirs(loc):
            raise FileNotFoundError(f"{path}: no such file or no readable Parquet, and no Tune trial "
                                    "folders beside it")
    elif not loc.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected results.parquet, a sweep "
                                "folder or a storage folder of sweeps)")
    elif loc.is_file():
        raise ValueError(f"{path}: not a Parquet file (expected results.parquet or a sweep folder)")
    dirs = _experiment_dirs(loc)
    if not dirs:
        raise ValueError(f"{path}: no results.parquet and no Tune trial folders (params.json/"
                         "result.json) found")
    parts, damaged = _recording_damage(lambda: [_load_one_experiment(d, trial_folders_only) for d in dirs])
    df = normalise(pd.concat(parts, ignore_index=True, sort=False))
    df.attrs["damaged_lines"] = damaged          # (result.json, line) of each line that was not JSON
    counts = [p.attrs["trials"] for p in parts]
    df.attrs["trials"] = {k: (None if any(c[k] is None for c in counts) else sum(c[k] for c in counts))
                          for k in counts[0]}
    return _with_provenance(df, loc)


def _load_parquet_file(loc) -> pd.DataFrame | None:
    """A results.parquet given by name; None (warned when it exists) if it is missing or unreadable."""
    if not loc.exists():
        return None
    df = read_results_parquet(loc, len(_trial_dirs(loc.parent)))
    if df is None:
        return None
    if "experiment" not in df:
        df["experiment"] = loc.parent.name
    df["run_status"] = run_status_of(df).values if len(df) else []
    counts = _trial_counts(df, loc.parent)
    df = normalise(df)
    df.attrs["trials"] = counts
    return _with_provenance(df, loc)


def _with_provenance(df: pd.DataFrame, loc) -> pd.DataFrame:
    """``df.attrs["provenance"]``: the records of the Parquet files read (dgl_ray.provenance)."""
    df.attrs["provenance"] = provenance.read(str(loc)) if loc.is_local else _remote_provenance(loc)
    return df


def _remote_provenance(loc) -> list[dict]:
    """dgl_ray.provenance.read for a URI: the records in the metadata of the results.parquet files of the
    sweep (or of the storage folder's sweeps)."""
    import pyarrow.parquet as papq     # only for a remote sweep's provenance
    if loc.is_file():
        files = [loc]
    else:
        files = [f for d in [loc, *_subfolders(loc)] for f in d.iterdir() if f.name.endswith(".parquet")]
    seen, out = set(), []
    for f in files:
        try:
            raw = (papq.read_schema(f.path, filesystem=f.fs).metadata or {}).get(b"PANDAS_ATTRS")
            rec = json.loads(raw).get(provenance.KEY) if raw else None
        except Exception:
            continue
        key = json.dumps(rec, sort_keys=True, default=str)
        if rec and key not in seen:
            seen.add(key)
            out.append({**rec, "file": str(f)})
    return out


def is_sweep_path(path) -> bool:
    """True if ``path`` (a local path or a URI) holds a dgl_ray sweep (Parquet or Tune trial folders)."""
    loc = Location.of(path)
    if loc.is_file():
        return loc.suffix == ".parquet"
    return loc.is_dir() and bool(_experiment_dirs(loc))


def not_final(df: pd.DataFrame) -> pd.Series:
    """Rows of runs that have not ended (``run_status`` unfinished or error; a frame without the
    column, such as the paper's archive, holds ended runs only). Decided runs have ended without a
    final error: :func:`decided` tells them; :func:`final_rows` leaves them out."""
    if "run_status" not in df:
        return pd.Series(False, index=df.index)
    status = df["run_status"].astype(object)
    return status.notna() & ~status.isin(FINAL_STATUSES + (DECIDED,))


def decided(df: pd.DataFrame) -> pd.Series:
    """Rows of runs stopped early by the branch classifier (``run_status`` decided, or a last row with
    status decided where the frame has no run status)."""
    if "run_status" in df:
        return df["run_status"].astype(object).eq(DECIDED)
    if "status" not in df or not len(df):
        return pd.Series(False, index=df.index)
    return df["run"].isin(df.loc[df["status"].astype(object).eq(DECIDED), "run"])


def n_decided(df: pd.DataFrame) -> int:
    """How many runs of ``df`` were decided early (left out of every table of final errors)."""
    return int(df.loc[decided(df), "run"].nunique()) if len(df) else 0


def final_rows(df: pd.DataFrame, by: Iterable[str] = ("run",)) -> pd.DataFrame:
    """The last evaluation (highest epoch; row order breaks ties and NaN epochs) of each group.

    ``by=("run",)`` gives the final error of each run; ``by=("run", "lambda", "direction")`` gives the
    error at the end of each λ step of a ladder (each leg of an up-then-down ladder separately).

    A run counts as final only when its last row is final (``run_status`` completed or diverged): the
    rows of an unfinished, errored or never-started run get no error (``test_error`` NaN) whatever ``by``
    holds, so that tables count them as missing, never as a branch. Decided runs (stopped early with a
    branch, :func:`decided`) are never returned: their last error is not a final error, and they are
    not missing either (:func:`outcome_rows` counts their branch; :func:`n_decided` counts them).
    """
    out = _last_rows(df[~decided(df)], by)
    if "run" in by and "run_status" in out:     # an unfinished or errored run has no final error:
        out.loc[not_final(out), "test_error"] = np.nan   # tables count it as missing, never as final
    return out


def _last_rows(df: pd.DataFrame, by: Iterable[str]) -> pd.DataFrame:
    """The last evaluation (highest epoch; row order breaks ties and NaN epochs) of each group."""
    by = [c for c in by if c in df.columns]
    d = df.copy()
    d["_order"] = np.arange(len(d))
    d = d.sort_values(["epoch", "_order"], na_position="first", kind="stable")
    out = d.groupby(by, dropna=False, sort=False, observed=True).tail(1)
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def outcome_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run that has a boundary outcome (``paper.OUTCOMES``): completed runs with a final
    error (their outcome from it: not_H, H or T) and decided runs (their ``decided_branch``, H or not_H).
    Columns of :func:`final_rows` plus ``outcome`` (categorical) and ``decided`` (bool). Diverged,
    unfinished and errored runs have none and are left out; a decided run's ``test_error`` is the
    error at its decision, never a final error."""
    final = final_rows(df, ["run"])
    final = final[final["test_error"].notna()].copy()
    final["outcome"] = [outcome_of(e) for e in final["test_error"]]
    final["decided"] = False
    early = df[decided(df)]
    if len(early):
        early = _last_rows(early, ["run"])
        early["outcome"] = early["decided_branch"].astype(str)
        early["decided"] = True
        final = pd.concat([final, early], ignore_index=True, sort=False)
    final["outcome"] = final["outcome"].astype(pd.CategoricalDtype(list(OUTCOMES)))
    final["decided"] = final["decided"].astype(bool)
    return final.reset_index(drop=True)
