"""Pre-flight: the checks of the plan, the machine and the storage before Ray starts (a run stops at the
first with a one-line ``error: ...``, exit 2; a dry run names the machine's and shows the plan anyway),
and the sweep's manifest: built, compared on ``--resume``, written first.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time

import torch

from ..config import RUNTIME_FIELDS, TrialConfig, label_fields
from ..errors import ConfigError, unwritable, unwritable_uncreated
from ..models import check_model_fits
from ..registry import data_folder, missing_files
from .options import SweepOptions, plan_options
from ..storage import experiment_exists, storage_fs
from .extend import changed_axes
from ..manifest import MANIFEST, latest_part, read_manifest, write_manifest
from .runner import make_manifest, plan_fingerprint
from .trainable import unpack_group


def sweep_path(o) -> str:
    """The sweep folder as the user named it, ``<storage>/<name>``, for messages."""
    return f"{o.storage.rstrip('/')}/{o.name}"


def sweep_manifest(opts: SweepOptions, configs: list[dict]) -> dict:
    """The manifest of the plan ``configs`` (the Tune configs, packed): its options, fingerprint and the
    command that resumes it. The caller adds the plan's kind and member count."""
    return make_manifest(opts, plan_options(opts), unnamed(configs))


def check_machine(configs: list[dict], opts: SweepOptions) -> list[str]:
    """This machine's data, GPUs and CPUs for the plan. A run stops at the first problem (ConfigError); a
    dry run (often on a laptop, for a cluster) gets them back, to name them under the plan."""
    problems = []
    for check in (lambda: check_data(configs), lambda: check_gpus(opts), lambda: check_cpus(opts)):
        try:
            check()
        except ConfigError as e:
            if not opts.dry_run:
                raise
            problems.append(str(e))
    return problems


def validate_configs(configs) -> None:
    """Every planned trial config must pass TrialConfig (one-line ConfigError otherwise)."""
    not_trial = set(RUNTIME_FIELDS) | set(label_fields())
    trials = []
    for c in configs:
        TrialConfig.check_tune_config(c)       # a misspelled field is an error, not a result column
        trials.append({k: v for k, v in c.items() if k not in not_trial})
    TrialConfig.validate_many(trials)
    fits = set()
    for t in trials:
        key = (t.get("model"), t.get("width", 1.0), t.get("dataset", "digits"))
        if key not in fits:                     # e.g. vgg11 on 8x8 digits: refused before Ray starts
            rc = TrialConfig.from_dict(t)
            check_model_fits(rc.model, rc.width, rc.dataset)
            fits.add(key)


def check_storage(o) -> None:
    try:     # a bad URI or an unreachable endpoint: dgl_ray.storage says which, in one line
        fs, root = storage_fs(o.storage)
        why = (unwritable_uncreated(root) if o.dry_run else unwritable(root)) if fs is None else None
        if why:
            raise ConfigError(f"--storage {o.storage!r} is not writable ({why})")
        if fs is None:
            clear_failed_start(os.path.join(root, o.name))
        exists = experiment_exists(o.storage, o.name)
    except OSError as e:
        raise ConfigError(f"--storage {o.storage!r}: {e}") from None
    where = sweep_path(o)
    if exists and not (o.resume or o.extend or o.dry_run):
        raise ConfigError(f"{where} already holds a sweep; add --resume to continue it, --extend to add trials "
                          f"to it, or pick another --name")
    if o.extend and not exists:
        raise ConfigError(f"--extend: nothing to extend at {where}; drop --extend to start the sweep")


def stored_sweep(o) -> dict | None:
    """The manifest of the sweep ``--extend`` grows or ``--resume`` continues (None for a new sweep); an
    --extend folder must be a sweep of this tool of the same family (one line otherwise)."""
    if not (o.extend or o.resume):
        return None
    stored = read_manifest(o.storage, o.name)
    if o.extend:
        where = sweep_path(o)
        if stored is None:
            raise ConfigError(f"--extend: no sweep at {where} (no {MANIFEST}); drop --extend to start the sweep")
        if not stored or stored.get("tool") != "dgl_ray":
            raise ConfigError(f"--extend: {where} is not a sweep of this tool (no readable {MANIFEST}); "
                              f"refusing to write into it: pick another --name")
        if stored.get("family") != o.family:
            raise ConfigError(f"--extend: {where} is a {stored.get('family')} sweep, not {o.family}")
    return stored


def extended_manifest(stored: dict, opts: SweepOptions, part: dict, folder: str, added: int) -> dict:
    """The stored manifest with one more extension: its time, command, the trials it adds, the extensible
    options it changed ({option: [old, new]}), and the new part's own plan record (folder, options,
    fingerprint, kind, size) that --resume compares. ``members`` becomes the sweep's total."""
    before = latest_part(stored).get("options", {})
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "command": shlex.join([sys.executable, "-m", f"dgl_ray.sweeps.{opts.family}", *opts.argv]),
             "added": added, "changed": changed_axes(before, part["options"]), "folder": folder,
             **{k: part[k] for k in ("options", "fingerprint", "plan_kind", "members", "trials", "plan_form")}}
    return {**stored, "extensions": [*stored.get("extensions", []), entry],
            "members": int(stored.get("members", 0)) + added}


def record_extension(opts, manifest: dict) -> None:
    """Write the manifest with the new extension (before Ray starts); a failed write is a one-line error and
    leaves the stored one (an atomic write)."""
    try:
        write_manifest(opts.storage, opts.name, manifest)
    except OSError as e:
        raise ConfigError(f"cannot extend the sweep: writing {sweep_path(opts)}/{MANIFEST} "
                          f"failed ({e.strerror or e}); nothing was run") from None


def clear_failed_start(folder: str) -> None:
    """A start that failed while writing the manifest (a full disk) can leave only its temporary file
    (``dgl_sweep.json.tmp``, from before this was cleaned up at once): no sweep ran there, so the folder
    counts as empty and the plain command starts it."""
    try:
        entries = [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError:
        return
    if entries == [MANIFEST + ".tmp"]:
        os.remove(os.path.join(folder, entries[0]))


def start_manifest(opts, manifest: dict) -> None:
    """Write the new sweep's manifest (before Ray starts); a failed write (a full disk) is a one-line
    ConfigError that leaves no partial file, so the plain command works once there is space."""
    try:
        write_manifest(opts.storage, opts.name, manifest)
    except OSError as e:
        fs, root = storage_fs(opts.storage)
        if fs is None:
            folder = os.path.join(root, opts.name)
            for leftover in (MANIFEST + ".tmp", MANIFEST):
                try:
                    os.remove(os.path.join(folder, leftover))
                except OSError:
                    pass
            try:
                os.rmdir(folder)        # only when empty: this start made it
            except OSError:
                pass
        raise ConfigError(f"cannot start the sweep: writing {sweep_path(opts)}/{MANIFEST} "
                          f"failed ({e.strerror or e}); nothing was run") from None


def check_data(configs) -> None:
    """Every data set of the plan is on disk (or asked to be downloaded), before Ray starts: a trial
    would otherwise fail on every worker, once per retry."""
    seen = set()
    for c in configs:
        for m in unpack_group(c):
            key = (m.get("dataset", "digits"), m.get("data_root", "./data"), bool(m.get("download")))
            if key in seen:
                continue
            seen.add(key)
            dataset, root, download = key
            missing = [] if download else missing_files(dataset, root)     # the registry's entry says what
            if missing:
                folder = data_folder(dataset, root)
                raise ConfigError(f"{dataset} not found: looked in {folder} (missing {', '.join(missing)}); "
                                  f"point --data-root at the folder holding {os.path.basename(folder)}/")


def check_gpus(o) -> None:
    """--gpus-per-trial on a machine without a GPU would wait forever for one (a cluster given with
    --address is checked by the runner once connected)."""
    if o.gpus_per_trial <= 0 or o.address:
        return
    n = torch.cuda.device_count()
    if n == 0:
        raise ConfigError(f"--gpus-per-trial={o.gpus_per_trial:g} but this machine has no GPU torch can use; "
                          f"drop the option to run on CPU, or give --address of a cluster with GPUs")
    if o.gpus_per_trial > n:
        raise ConfigError(f"--gpus-per-trial={o.gpus_per_trial:g} but this machine has {n} GPU(s)")


def local_cpus() -> int:
    """The CPUs a new local Ray instance would have (Ray's own count: cgroup quotas included)."""
    from ray._private.utils import get_num_cpus     # ray: only for a local instance's count
    return int(get_num_cpus())


def check_cpus(o) -> None:
    """A trial asking for more CPUs than the sweep's own Ray instance has would wait forever (Tune only
    warns every 60 s). A cluster given with --address is checked once connected (runner.init_ray)."""
    if o.address:
        return
    have = o.num_cpus if o.num_cpus is not None else local_cpus()
    if o.cpus_per_trial > have:
        where = f"--num-cpus={have}" if o.num_cpus is not None else f"this machine has {have} CPU(s)"
        raise ConfigError(f"--cpus-per-trial={o.cpus_per_trial:g} but {where}: no trial could ever start; "
                          f"ask for at most {have}")


def check_resume(o, manifest: dict, plan_configs: list[dict] | None = None) -> None:
    """--resume continues only a sweep of this tool with the same plan; a new sweep needs a new folder.
    The fingerprint leaves out the sweep's name (a renamed grid folder resumes); ``plan_configs`` (the
    plan with its name) also matches the fingerprints that versions before that wrote."""
    where = sweep_path(o)
    if not o.resume:
        return
    if not experiment_exists(o.storage, o.name):
        raise ConfigError(f"--resume: nothing to resume at {where}; drop --resume to start the sweep")
    stored = read_manifest(o.storage, o.name)
    if not stored or stored.get("tool") != "dgl_ray":
        raise ConfigError(f"--resume: {where} is not a sweep of this tool (no readable {MANIFEST}); "
                          f"refusing to write into it: pick another --name")
    if stored.get("family") != manifest["family"]:
        raise ConfigError(f"--resume: {where} is a {stored.get('family')} sweep, not {manifest['family']}")
    # an extended sweep resumes with its latest command, whose plan (less the earlier parts') is the last part's
    latest = latest_part(stored)
    old, new = latest.get("options", {}), manifest["options"]
    diff = [f"--{k.replace('_', '-')} {new.get(k)!r} (stored: {old.get(k)!r})"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        raise ConfigError(f"--resume: the plan differs from the stored one in {'; '.join(diff)}; "
                          f"resume with the stored options ({_resume_of(latest)}) or pick another --name")
    grouped = manifest.get("members") != manifest.get("trials")     # the form differs for grouped plans only
    if grouped and stored.get("plan_form", 1) != manifest.get("plan_form", 1):
        raise ConfigError(f"--resume: {where} was started by another dgl_ray version, whose Tune configs have "
                          f"another form (plan form {stored.get('plan_form', 1)}; this version writes "
                          f"{manifest.get('plan_form', 1)}); finish it with the version that started it, or pick "
                          f"another --name")
    renamed = stored.get("name") not in (None, o.name)
    if renamed and stored.get("plan_kind", "grid") != "grid":
        raise ConfigError(f"--resume: {where} was started as {stored.get('name')!r}; a {stored.get('plan_kind')} "
                          f"plan keeps its checkpoint paths inside that folder: rename it back to "
                          f"{stored.get('name')!r} (--name {stored.get('name')})")
    legacy = (lambda: plan_fingerprint(plan_configs)) if plan_configs is not None else (lambda: None)
    if latest.get("fingerprint") != manifest["fingerprint"] and latest.get("fingerprint") != legacy():
        raise ConfigError(f"--resume: the trial plan differs from the stored one (fingerprint "
                          f"{manifest['fingerprint']}, stored {latest.get('fingerprint')}: same options, so the "
                          f"code that plans it changed); pick another --name")


def _resume_of(record: dict) -> str:
    """The command that resumes a manifest's latest part (an extension records its --extend command)."""
    command = record.get("command", "?")
    return command.replace(" --extend", "") + " --resume" if " --extend" in command else command


# Ray's own GCS client, in a child process that a timeout can end: ray.init and GcsClient retry a port
# that answers but is not Ray for minutes. A GCS answers at once (an authentication refusal is an answer).
_GCS_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1])
except Exception as e:
    if "Authentication" not in type(e).__name__:
        print(str(e).splitlines()[0] if str(e) else type(e).__name__)
        sys.exit(1)
"""


ADDRESS_PROBE_S = 8.0


def check_address(o) -> None:
    """--address names a running Ray cluster: a TCP connect (3 s), then, for host:port, Ray's GCS client
    in a child process bounded by ADDRESS_PROBE_S. ray:// (Ray Client) gets the TCP check."""
    if not o.address:
        return
    a = o.address
    if a == "auto":
        a = _auto_address()
    hp = a.split("://", 1)[-1]
    host, _, port = hp.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {a!r}; expected host:port (e.g. 10.0.0.1:6379), ray://host:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ConfigError(f"--address {a}: no Ray cluster answers there ({e.strerror or e})") from None
    if "://" not in a:
        why = _gcs_probe(hp)
        if why:
            raise ConfigError(f"--address {a}: a port answers there but not a Ray cluster ({why})")


def _auto_address() -> str:
    """--address auto as Ray resolves it: $RAY_ADDRESS, else the last `ray start` of this machine."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:
        with open("/tmp/ray/ray_current_cluster") as f:
            return f.read().strip()
    except OSError:
        raise ConfigError("--address auto: no running Ray cluster found on this machine "
                          "(start one with ray start --head)") from None


def _gcs_probe(host_port: str) -> str | None:
    """Why ``host_port`` is not a Ray GCS, or None when one answers."""
    try:
        r = subprocess.run([sys.executable, "-c", _GCS_PROBE, host_port], capture_output=True, text=True,
                           timeout=ADDRESS_PROBE_S)
    except subprocess.TimeoutExpired:
        return f"no answer from Ray's GCS within {ADDRESS_PROBE_S:g} s"
    if r.returncode != 0:
        return r.stdout.strip() or f"the probe exited {r.returncode}"
    return None


def unnamed(configs: list[dict]) -> list[dict]:
    """The plan without the sweep's name (the ``experiment`` label, in every config and group member):
    what the fingerprint hashes, so that a sweep folder renamed (with --name) still resumes."""
    def strip(c: dict) -> dict:
        out = {k: v for k, v in c.items() if k != "experiment"}
        if "group" in out:
            out["group"] = [strip(m) for m in out["group"]]
        return out
    return [strip(c) for c in configs]
