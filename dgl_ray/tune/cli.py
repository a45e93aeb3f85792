"""Shared command line of the sweep families: options, presets, validation before Ray starts.

Every ``python -m dgl_ray.sweeps.<family>`` takes these options (plus its own); ``--config
sweeps/<preset>.toml`` sets defaults from a preset (keys are option names, ``-`` or ``_``) and
flags on the command line override them. Every bad input (empty range, n < 1, unknown option, an
unwritable storage, an ``--address`` with no cluster, a trial config the trainer would refuse) is a
one-line ``error: ...`` on stderr and exit code 2, before ``ray.init``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import subprocess
import sys

from ..errors import ConfigError, unwritable, unwritable_uncreated
from ..schedules import parse_range

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore



class DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only to help texts that do not state their default themselves, so
    ``--help`` prints each default once."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower():
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


# The largest plan a sweep builds (trials, and values of one range): checked arithmetically before any
# list is made, so a mistyped range is an error in a second, not an out-of-memory kill. A plan of this
# size plans in about 5 s and 0.8 GB (--dry-run, 2-core machine); a larger study is several sweeps.
MAX_TRIALS = 100_000


def parse_values(text, what: str) -> list[float]:
    """start:stop:step (stop included, drift-free), a comma list, or one value."""
    check_range_size(str(text).strip(), what)
    return parse_range(str(text), what)


def check_range_size(text: str, what: str) -> None:
    """A range's value count, from its numbers (before the values are made): finite and at most MAX_TRIALS."""
    if ":" not in text:
        if text.count(",") + 1 > MAX_TRIALS:
            raise ConfigError(f"{what}: {text.count(',') + 1:,} values; a sweep plans at most {MAX_TRIALS:,} trials")
        return
    try:
        start, stop, step = (float(p) for p in text.split(":"))
    except ValueError:
        return                      # parse_range names the malformed range
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ConfigError(f"{what} {text!r}: start, stop and step must be finite numbers")
    n = abs((stop - start) / step) + 1 if step else 1
    if not math.isfinite(n) or n > MAX_TRIALS:
        raise ConfigError(f"{what} {text!r} has {n:,.0f} values; a sweep plans at most {MAX_TRIALS:,} trials "
                          f"(use a larger step)")


def check_plan_size(n: int, what: str) -> None:
    """A plan of ``n`` trials (counted before it is built) fits MAX_TRIALS."""
    if n > MAX_TRIALS:
        raise ConfigError(f"{what}: {n:,} trials; a sweep plans at most {MAX_TRIALS:,} trials "
                          f"(split the study into several sweeps)")


def int_list(text, what: str) -> list[int]:
    vals = parse_values(text, what)
    out = []
    for v in vals:
        if v != int(v) or v < 0:
            raise ConfigError(f"{what}: {v:g} is not a non-negative integer (in {text!r})")
        out.append(int(v))
    return out


def float_list(text, what: str) -> list[float]:
    return parse_values(text, what)


def common_parser(module) -> argparse.ArgumentParser:
    p = OneLineParser(prog=f"python -m dgl_ray.sweeps.{module.FAMILY}", description=module.__doc__.split("\n\n")[0],
                      formatter_class=DefaultsOnceFormatter)
    g = p.add_argument_group("data, model, training (default: the digits embedded default, scaled epochs)")
    g.add_argument("--dataset", default="digits", help="digits, cifar10, cifar100, synthetic-cifar")
    g.add_argument("--model", default=None, help="default: per data set (digits: tinycnn, CIFAR: resnet18)")
    g.add_argument("--data-root", default="./data")
    g.add_argument("--etas", default="0.4", help="η values: start:stop:step, a comma list or one value")
    g.add_argument("--noise", default="symmetric")
    g.add_argument("--widths", default="1", help="width multipliers (resnet*, tinycnn)")
    g.add_argument("--seeds", default=None, help="seeds, e.g. 0:49:1 or 0,1,2 (default: 0..n-1)")
    g.add_argument("--n", type=int, default=None, help="number of seeds (0..n-1)")
    g.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the family's, scaled for digits)")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--lr-milestones", default=None, help="comma list of epochs ('' for constant)")
    g.add_argument("--K", type=int, default=16)
    g.add_argument("--eval-every", type=int, default=None)
    g.add_argument("--device", default="auto")
    from ..train import add_fast_path_args
    add_fast_path_args(p.add_argument_group("device fast path (trial settings: recorded in every row, shared by a group)"))
    r = p.add_argument_group("sweep")
    r.add_argument("--storage", default="./results", help="local path or a URI pyarrow understands (s3://, gs://, ...)")
    r.add_argument("--name", default=None, help=f"experiment name (default: {module.FAMILY})")
    r.add_argument("--address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="an existing Ray cluster (host:port, ray://host:10001 or auto; default: $RAY_ADDRESS if set, "
                        "else a new Ray instance of this sweep's own, never one started earlier with ray start)")
    r.add_argument("--resume", action="store_true", help="continue the sweep <storage>/<name>")
    r.add_argument("--retry-errored", action="store_true",
                   help="with --resume: run errored trials again (from their last checkpoint that reads, else from epoch 0)")
    r.add_argument("--wait-for-nodes", action="store_true",
                   help="with --address: if no node has the CPUs/GPUs a trial asks for, wait for an autoscaler to "
                        "add one (default: a one-line error, exit 2)")
    r.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    r.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial, from its last checkpoint")
    r.add_argument("--cpus-per-trial", type=float, default=1)
    r.add_argument("--gpus-per-trial", type=float, default=0, help="e.g. 0.25: four trials share one GPU (memory capped)")
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    r.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N evaluations (the last always)")
    r.add_argument("--keep-checkpoints", type=int, default=1,
                   help="checkpoints kept per Tune trial (the latest N; resume needs 1)")
    r.add_argument("--group-size", type=int, default=None,
                   help="train up to N trials as ONE population (one packed model, any model) in one "
                        "Tune trial: grid trials, a chained plan's preparation trials and its ready children, "
                        "the adaptive search's proposals; each (λ, seed) stays its own row, which records its "
                        "population. 1 = one trial per Tune trial. Default per model and device (--dry-run "
                        "states it): tinycnn 25 on CPU, 64 on GPU; other models 1 on CPU, 8 on GPU "
                        "(--gpus-per-trial > 0)")
    r.add_argument("--order", default=None, help="grid order, outermost first, e.g. seed,lambda (all λ of seed 0 first)")
    r.add_argument("--storage-warn-gb", type=float, default=50.0,
                   help="--dry-run warns when the plan's estimated storage exceeds this many GB")
    r.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    r.add_argument("--dry-run", action="store_true", help="print the trial plan and its size; run nothing")
    r.add_argument("--config", default=None, help="a preset TOML (sweeps/<preset>.toml); flags override it")
    r.add_argument("--fail-at-epoch", type=int, default=None, help=argparse.SUPPRESS)  # tests: FailureConfig
    from .trackers import add_tracker_args
    add_tracker_args(p)
    f = p.add_argument_group(f"{module.FAMILY} options")
    module.add_args(f)
    return p


def load_preset(path: str, parser: argparse.ArgumentParser, family: str) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--config {path}: not UTF-8 text (byte {e.start}); a preset is a UTF-8 TOML file") from None
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror or e})") from None
    pf = data.pop("family", family)
    for k in ("id", "title", "paper"):
        data.pop(k, None)
    if pf != family:
        raise ConfigError(f"--config {path} is a preset of family {pf!r}; run it with python -m dgl_ray.sweeps.{pf}")
    dests = {a.dest: a for a in parser._actions}
    out = {}
    for k, v in data.items():
        dest = k.replace("-", "_")
        if dest not in dests or dest in ("config", "help"):
            raise ConfigError(f"--config {path}: unknown option {k!r} for {family}")
        if isinstance(v, list):
            v = ",".join(str(x) for x in v)
        out[dest] = _typed_preset_value(path, k, v, dests[dest])
    return out


def given_options(module, argv) -> set:
    """The option names (dests) set on the command line itself (not by a preset or a default)."""
    p = common_parser(module)
    for a in p._actions:
        a.default = argparse.SUPPRESS
    given, _ = p.parse_known_args(argv)
    return set(vars(given))


# Preset fields that belong to the preset's data set (CIFAR's batch, LR schedule, epoch counts): a
# --dataset digits on the command line drops them, so the digits default's scaled values apply.
DATASET_FIELDS = ("model", "batch_size", "lr", "lr_milestones", "epochs", "eval_every", "quench_at")


def _dataset_field(dest: str) -> bool:
    return dest in DATASET_FIELDS or dest.endswith(("_epochs", "_milestones"))


def preset_for_dataset(preset: dict, given: set, pre) -> dict:
    """A CIFAR preset run with ``--dataset digits``: the S1 protocol (its λ grid, seeds, η) on digits
    with the digits default's batch, LR schedule and epochs, not CIFAR's batch 256 and LR milestones
    [50, 75] for a 30-epoch run. Each field dropped is named on stderr, one line each; so is the
    preset's GPU share on a machine without a GPU (the digits model runs on the CPU)."""
    from ..config import DATASET_DEFAULTS
    preset_dataset = preset.get("dataset", "digits")
    if "dataset" not in given or pre.dataset != "digits" or preset_dataset == "digits":
        return preset
    out = dict(preset)
    digits_defaults = DATASET_DEFAULTS["digits"]
    for dest in [d for d in preset if _dataset_field(d) and d not in given]:
        value = out.pop(dest)
        if dest in digits_defaults and str(value) == str(digits_defaults[dest]):
            continue                                   # the same value either way: nothing to say
        instead = (f"the digits default {digits_defaults[dest]!r}" if dest in digits_defaults
                   else "the family's digits default")
        print(f"note: --dataset digits: dropped the preset's {preset_dataset} {dest} = {value!r}; "
              f"{instead} applies (give --{dest.replace('_', '-')} to set it)", file=sys.stderr)
    gpus = out.get("gpus_per_trial") or 0
    if gpus > 0 and "gpus_per_trial" not in given and not pre.address and not _has_gpu():
        out.pop("gpus_per_trial")
        print(f"note: --dataset digits on a machine without a GPU: dropped the preset's gpus_per_trial = "
              f"{gpus:g}; the trials run on the CPU", file=sys.stderr)
    return out


def _has_gpu() -> bool:
    import torch
    return torch.cuda.device_count() > 0


def _typed_preset_value(path: str, key: str, v, action: argparse.Action):
    """A preset value as its option's type (argparse converts only command-line text): ``epochs = 3.7``
    is an error, not 3.7 epochs; a switch takes a TOML boolean (``resume = "no"`` is an error, not true)."""
    if action.nargs == 0:           # store_true / store_const switches
        if not isinstance(v, bool):
            raise ConfigError(f"--config {path}: {key} = {v!r} must be a TOML boolean (true or false)")
        return v                    # the option's value itself (channels_last = false: NCHW)
    if isinstance(v, bool) or action.type not in (int, float):
        return v
    if action.type is int:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if not isinstance(v, int):
            raise ConfigError(f"--config {path}: {key} = {v!r} must be an integer")
        return v
    if not isinstance(v, (int, float)):
        raise ConfigError(f"--config {path}: {key} = {v!r} must be a number")
    return float(v)


def parse(module, argv) -> argparse.Namespace:
    p = common_parser(module)
    p.set_defaults(**getattr(module, "DEFAULTS", {}))
    pre, _ = p.parse_known_args(argv)
    if pre.config:
        preset = load_preset(pre.config, p, module.FAMILY)
        p.set_defaults(**preset_for_dataset(preset, given_options(module, argv), pre))
    opts = p.parse_args(argv)
    opts.family = module.FAMILY
    opts.name = opts.name or module.FAMILY
    opts.argv, opts.cwd = list(argv), os.getcwd()       # for the exact --resume command
    check_unsupported(module, p, opts)
    check_common(opts)
    return opts


# Options that only the runner uses: they may change between a sweep and its --resume. (Tracker
# flags are not among them: a resumed Tuner keeps the callbacks it was saved with, so a changed
# --mlflow/--wandb/--tensorboard would be silently ignored; the manifest check names it instead.)
RUN_OPTIONS = ("storage", "name", "address", "resume", "max_concurrent", "max_failures", "cpus_per_trial",
               "gpus_per_trial", "num_cpus", "progress_interval", "dry_run", "config", "keep_checkpoints",
               "help", "storage_warn_gb", "dashboard", "retry_errored", "wait_for_nodes")


def plan_options(parser: argparse.ArgumentParser, opts) -> dict:
    """The options that define the plan (every option but the runner's), as JSON values."""
    out = {}
    for a in parser._actions:
        if a.dest in RUN_OPTIONS or a.dest == argparse.SUPPRESS:
            continue
        v = getattr(opts, a.dest, None)
        out[a.dest] = v if isinstance(v, (str, int, float, bool, type(None))) else json.dumps(v, default=str)
    return out


def check_unsupported(module, parser: argparse.ArgumentParser, opts) -> None:
    """A shared option the family cannot honour (its ``UNSUPPORTED_OPTIONS``) is refused when set."""
    for name in getattr(module, "UNSUPPORTED_OPTIONS", ()):
        dest = name.lstrip("-").replace("-", "_")
        v, default = getattr(opts, dest, None), parser.get_default(dest)
        if v is not None and str(v) != str(default):
            raise ConfigError(f"--{dest.replace('_', '-')}={v} is not used by {module.FAMILY}; "
                              f"drop it (this family cannot honour it)")


def check_common(o) -> None:
    o.eta_list = float_list(o.etas, "--etas")
    o.width_list = float_list(o.widths, "--widths")
    if o.n is not None and o.n < 1:
        raise ConfigError(f"--n={o.n}: a sweep needs at least one seed (n >= 1)")
    if o.n is not None:
        check_plan_size(o.n, f"--n={o.n}")
    if getattr(o, "adaptive", None) is not None:
        check_plan_size(o.adaptive, f"--adaptive={o.adaptive}")
    if o.num_cpus is not None and o.num_cpus < 1:
        raise ConfigError(f"--num-cpus={o.num_cpus} must be >= 1 (the CPUs of the sweep's own Ray instance)")
    if o.seeds is not None and o.n is not None:
        raise ConfigError("give --seeds or --n, not both")
    o.seed_list = int_list(o.seeds, "--seeds") if o.seeds is not None else None
    if o.seed_list is not None and not o.seed_list:
        raise ConfigError("--seeds: empty")
    if o.epochs is not None and o.epochs < 1:
        raise ConfigError(f"--epochs={o.epochs} must be >= 1")
    if o.cpus_per_trial <= 0:
        raise ConfigError(f"--cpus-per-trial={o.cpus_per_trial} must be > 0")
    if o.gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial={o.gpus_per_trial} must be >= 0")
    if o.max_concurrent is not None and o.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent={o.max_concurrent} must be >= 1")
    if o.group_size is not None and o.group_size < 1:
        raise ConfigError(f"--group-size={o.group_size} must be >= 1 (1 = one trial per Tune trial)")
    if o.max_failures < 0:
        raise ConfigError(f"--max-failures={o.max_failures} must be >= 0")
    if o.checkpoint_every is not None and o.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every={o.checkpoint_every} must be >= 1 (1 = every evaluation)")
    if o.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints={o.keep_checkpoints} must be >= 1 (resume needs the latest)")
    for k, v in vars(o).items():      # NaN or inf in any numeric option (thresholds, LRs, λ) is an error
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"--{k.replace('_', '-')}={v} must be a finite number")
        if (k.endswith("_accept") or k == "escape_below") and isinstance(v, (int, float)) and not 0 <= v <= 1:
            raise ConfigError(f"--{k.replace('_', '-')}={v} is an error threshold: it must be in [0, 1]")
    # Tune runs each trial inside its trial folder: a relative data root would resolve there
    if "://" not in str(o.data_root):
        o.data_root = os.path.abspath(os.path.expanduser(o.data_root))
    if o.lr_milestones is not None:
        try:
            o.lr_milestones = [int(v) for v in str(o.lr_milestones).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--lr-milestones={o.lr_milestones!r}; expected a comma list of epochs") from None
    check_name(o.name)


# A sweep's name is one plain folder name under --storage, the same on every filesystem and URI scheme:
# not '.', '..' or hidden (a hidden folder is skipped by `report <storage>`), no '/', at most 100 characters.
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,99}")


def check_name(name: str) -> None:
    if not NAME_RULE.fullmatch(str(name)):
        shown = name if len(name) <= 40 else f"{name[:37]}... ({len(name)} characters)"
        raise ConfigError(f"--name={shown!r} must be one plain folder name: 1 to 100 characters of "
                          f"A-Z a-z 0-9 _ . + = -, not starting with '.'")


def seeds(o, default_n: int) -> list[int]:
    if o.seed_list is not None:
        return o.seed_list
    return list(range(o.n if o.n is not None else default_n))


def digits(o) -> bool:
    return o.dataset == "digits"


def scaled(o, value, paper, digits_value):
    """An option the user set wins; else the paper's value, or the digits default's scaled one."""
    if value is not None:
        return value
    return digits_value if digits(o) else paper


def base_config(o, **extra) -> dict:
    """The trial-config fields every trial of the sweep shares, plus labels."""
    c = dict(dataset=o.dataset, data_root=o.data_root, noise=o.noise, K=o.K, device=o.device,
             family=o.family, experiment=o.name)
    for k in ("model", "batch_size", "lr", "lr_milestones"):
        v = getattr(o, k)
        if v is not None:
            c[k] = v
    if o.eval_every is not None:
        c["eval_every"] = o.eval_every
    from ..train import fast_path_fields
    c.update(fast_path_fields(o))          # only the switches given: plans that name none stay as they were
    if o.checkpoint_every is not None:
        c["checkpoint_every"] = o.checkpoint_every
    if o.fail_at_epoch is not None:
        c["fail_at_epoch"] = o.fail_at_epoch
    c.update(extra)
    return c


def validate_configs(configs) -> None:
    """Every planned trial config must pass TrialConfig (one-line ConfigError otherwise)."""
    from ..config import RUNTIME_FIELDS, LABEL_FIELDS, TrialConfig
    from ..models import check_model_fits
    not_trial = set(RUNTIME_FIELDS) | set(LABEL_FIELDS)
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
    from .runner import experiment_exists, storage_fs
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
    if exists and not o.resume and not o.dry_run:
        raise ConfigError(f"{o.storage.rstrip('/')}/{o.name} already holds a sweep; add --resume to continue it "
                          f"or pick another --name")


def clear_failed_start(folder: str) -> None:
    """A start that failed while writing the manifest (a full disk) can leave only its temporary file
    (``dgl_sweep.json.tmp``, from before this was cleaned up at once): no sweep ran there, so the folder
    counts as empty and the plain command starts it."""
    from .runner import MANIFEST
    try:
        entries = [n for n in os.listdir(folder) if not n.startswith(".")]
    except OSError:
        return
    if entries == [MANIFEST + ".tmp"]:
        os.remove(os.path.join(folder, entries[0]))


def start_manifest(opts, manifest: dict) -> None:
    """Write the new sweep's manifest (before Ray starts); a failed write (a full disk) is a one-line
    ConfigError that leaves no partial file, so the plain command works once there is space."""
    from .runner import MANIFEST, storage_fs, write_manifest
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
        raise ConfigError(f"cannot start the sweep: writing {opts.storage.rstrip('/')}/{opts.name}/{MANIFEST} "
                          f"failed ({e.strerror or e}); nothing was run") from None


# The files each CIFAR reader needs under --data-root (torchvision's layout).
CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train", "test"]),
}


def check_data(configs) -> None:
    """Every data set of the plan is on disk (or asked to be downloaded), before Ray starts: a trial
    would otherwise fail on every worker, once per retry."""
    from .trainable import unpack_group
    seen = set()
    for c in configs:
        for m in unpack_group(c):
            key = (m.get("dataset", "digits"), m.get("data_root", "./data"), bool(m.get("download")))
            if key in seen:
                continue
            seen.add(key)
            dataset, root, download = key
            if dataset not in CIFAR_FILES or download:
                continue
            folder = os.path.join(os.path.abspath(root), CIFAR_FILES[dataset][0])
            missing = [f for f in CIFAR_FILES[dataset][1] if not os.path.isfile(os.path.join(folder, f))]
            if missing:
                raise ConfigError(f"{dataset} not found: looked in {folder} (missing {', '.join(missing)}); "
                                  f"point --data-root at the folder holding {CIFAR_FILES[dataset][0]}/")


def check_gpus(o) -> None:
    """--gpus-per-trial on a machine without a GPU would wait forever for one (a cluster given with
    --address is checked by the runner once connected)."""
    if o.gpus_per_trial <= 0 or o.address:
        return
    import torch
    n = torch.cuda.device_count()
    if n == 0:
        raise ConfigError(f"--gpus-per-trial={o.gpus_per_trial:g} but this machine has no GPU torch can use; "
                          f"drop the option to run on CPU, or give --address of a cluster with GPUs")
    if o.gpus_per_trial > n:
        raise ConfigError(f"--gpus-per-trial={o.gpus_per_trial:g} but this machine has {n} GPU(s)")


def local_cpus() -> int:
    """The CPUs a new local Ray instance would have (Ray's own count: cgroup quotas included)."""
    from ray._private.utils import get_num_cpus
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
    from .runner import MANIFEST, experiment_exists, read_manifest
    where = f"{o.storage.rstrip('/')}/{o.name}"
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
    old, new = stored.get("options", {}), manifest["options"]
    diff = [f"--{k.replace('_', '-')} {new.get(k)!r} (stored: {old.get(k)!r})"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        raise ConfigError(f"--resume: the plan differs from the stored one in {'; '.join(diff)}; "
                          f"resume with the stored options ({stored.get('command', '?')}) or pick another --name")
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
    from .runner import plan_fingerprint
    legacy = (lambda: plan_fingerprint(plan_configs)) if plan_configs is not None else (lambda: None)
    if stored.get("fingerprint") != manifest["fingerprint"] and stored.get("fingerprint") != legacy():
        raise ConfigError(f"--resume: the trial plan differs from the stored one (fingerprint "
                          f"{manifest['fingerprint']}, stored {stored.get('fingerprint')}: same options, so the "
                          f"code that plans it changed); pick another --name")


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


def sweep_manifest(module, opts, spec) -> dict:
    from . import plan
    from .runner import make_manifest
    m = make_manifest(opts, plan_options(common_parser(module), opts), unnamed(spec.searcher.plan_configs()))
    m["plan_kind"] = plan.plan_kind(spec)
    m["members"] = plan.members(spec)
    return m


def main(module, argv=None) -> int:
    from . import plan           # the searchers load Ray and torch: not for --help or a bad flag
    try:
        opts = parse(module, sys.argv[1:] if argv is None else argv)
        spec = module.plan(opts)
        s = spec.searcher
        validate_configs(s.plan_configs())
        if s.size < 1:
            raise ConfigError("the plan is empty: no trial to run (check the ranges)")
        plan.check_order(spec, opts)
        spec, opts.group_size = plan.pack_plan(spec, opts)
        from .trackers import check_trackers
        check_trackers(opts)
        # this machine's data and GPUs: a dry run (often on a laptop, for a cluster) names what is
        # missing and shows the plan anyway; a run stops here
        machine_problems = []
        for check in (lambda: check_data(spec.searcher.plan_configs()), lambda: check_gpus(opts),
                      lambda: check_cpus(opts)):
            try:
                check()
            except ConfigError as e:
                if not opts.dry_run:
                    raise
                machine_problems.append(str(e))
        check_address(opts)
        check_storage(opts)
        manifest = sweep_manifest(module, opts, spec)
        check_resume(opts, manifest, spec.searcher.plan_configs())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if opts.dry_run:
        plan.print_plan(spec, opts)
        from .storage import print_estimate
        print_estimate(spec, opts)
        for problem in machine_problems:
            print(f"  warning: {problem} (a run without --dry-run stops here)")
        return 0
    from . import faults
    from .runner import run_sweep
    faults.current_opts = opts
    try:
        with faults.signals_end_the_sweep(), faults.compact_ray_logs(opts):   # in every phase
            try:
                if not opts.resume:
                    start_manifest(opts, manifest)
                outcome = run_sweep(opts, spec)
            except ConfigError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            except faults.Interrupted as e:
                return faults.end_by_signal(opts, e.signum)
            except Exception as e:                  # a fault: one line, the log, the results so far, resume
                return faults.end_by_fault(opts, e)
    except faults.Interrupted as e:         # a signal while the ending above was printed
        return 128 + e.signum
    finally:
        faults.current_opts = None
    return outcome.exit_code
