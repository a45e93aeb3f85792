"""The options of a sweep: one frozen :class:`SweepOptions`, built once from the command line and a preset.

Every ``python -m dgl_ray.sweeps.<family>`` takes these options (plus its own); ``--config
sweeps/<preset>.toml`` sets defaults from a preset (keys are option names, ``-`` or ``_``) and flags on
the command line override them. The flags are made from one table: the fields of :class:`SweepOptions`
(help, group, whether ``--resume`` may change it) and, for the trial settings a sweep shares with
``python -m dgl_ray.train``, TrialConfig's field metadata (dgl_ray/config.py, read by
dgl_ray/trial_flags.py). Every bad input is a one-line ``error: ...`` (a ConfigError) before Ray starts.

The plan helpers the family modules use (:func:`seeds`, :func:`scaled`, :func:`base_config`,
:func:`float_list`, :func:`int_list`, :func:`check_plan_size`) are here too: they read the options.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import DATA, DATASET_DEFAULTS, FAST, FAST_PATH_FIELDS, MODEL, RUN, TrialConfig
from ..errors import ConfigError
from ..schedules import parse_range
from ..trial_flags import add_trial_flags, fast_path_fields, parse_milestones
from .trackers import EXTRA_HINT, mlflow_uri

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore


# ---- the table: one field per option --------------------------------------------------------------

SHARED = "data, model, training (default: the digits embedded default, scaled epochs)"
SWEEP = "sweep"
TRACKING = "tracking (Ray Tune's logger callbacks; one run per (λ, seed) trial)"


def option(default=None, help: str | None = None, *, group: str = SWEEP, run: bool = False, **argparse_kw):
    """A sweep option: its default, help and argument group; ``run=True`` marks an option only the runner
    reads (where to run, how many at once, ...), which may change between a sweep and its ``--resume``.
    Every other option defines the plan: the manifest stores it and ``--resume`` refuses a changed one.
    ``argparse_kw``: type, action, metavar, the flag's name (``flag``) when not ``--<field-with-dashes>``."""
    return field(default=default, metadata={"kind": "sweep", "help": help, "group": group, "run": run,
                                            "argparse": argparse_kw})


_TRIAL_FIELDS = {f.name: f for f in dataclasses.fields(TrialConfig)}


def trial_option(name: str, default=dataclasses.MISSING):
    """A TrialConfig field the sweep shares with ``python -m dgl_ray.train``: flag, help and type come
    from config.py's metadata; ``default`` when the sweep's differs (None: the family or the trial config
    chooses). A fast-path switch not given is None: absent from the plan's configs."""
    f = _TRIAL_FIELDS[name]
    if default is dataclasses.MISSING:
        default = None if name in FAST_PATH_FIELDS else f.default
    return field(default=default, metadata={"kind": "trial", "run": False})


def derived():
    """A value computed from the options (no flag of its own)."""
    return field(default=None, metadata={"kind": "derived"})


class FamilyOptions(Mapping):
    """A family's own options (dest -> value), read-only; :class:`SweepOptions` reads them as attributes."""

    def __init__(self, values: Mapping | None = None):
        self._values = dict(values or {})

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"FamilyOptions({self._values!r})"


@dataclass(frozen=True)
class SweepOptions:
    """A sweep's options, parsed and checked: nothing changes them afterwards (``replace`` makes a new one).

    The family's own options (``--lambdas``, ``--mode``, ...) are in ``family_options`` and read as
    attributes: ``o.lambdas``, ``getattr(o, "trap_accept", None)``."""
    family: str
    # data, model, training: the trial settings every sweep shares (dgl_ray/config.py's table)
    dataset: str = trial_option("dataset")
    model: str | None = trial_option("model")
    data_root: str = trial_option("data_root")           # absolute (Tune runs trials in their folders)
    etas: str = option("0.4", "η values: start:stop:step, a comma list or one value", group=SHARED)
    noise: str = trial_option("noise")
    widths: str = option("1", "width multipliers (resnet*, tinycnn)", group=SHARED)
    seeds: str | None = option(None, "seeds, e.g. 0:49:1 or 0,1,2 (default: 0..n-1)", group=SHARED)
    n: int | None = option(None, "number of seeds (0..n-1)", group=SHARED, type=int)
    epochs: int | None = trial_option("epochs")
    batch_size: int | None = trial_option("batch_size")
    lr: float | None = trial_option("lr")
    lr_milestones: list[int] | None = trial_option("lr_milestones")
    K: int = trial_option("K")
    eval_every: int | None = trial_option("eval_every", default=None)
    device: str = trial_option("device")
    channels_last: bool | None = trial_option("channels_last")
    bf16: bool | None = trial_option("bf16")
    tf32: bool | None = trial_option("tf32")
    compile: bool | None = trial_option("compile")
    decide_early: float | None = trial_option("decide_early")
    # the sweep
    storage: str = option("./results", "local path or a URI pyarrow understands (s3://, gs://, ...)", run=True)
    name: str = option(None, "experiment name (default: the family's name)", run=True)
    address: str | None = option(
        None, "an existing Ray cluster (host:port, ray://host:10001 or auto; default: $RAY_ADDRESS if set, "
              "else a new Ray instance of this sweep's own, never one started earlier with ray start)",
        run=True, env="RAY_ADDRESS")
    resume: bool = option(False, "continue the sweep <storage>/<name>", run=True, action="store_true")
    extend: bool = option(
        False, "grow the sweep <storage>/<name> in place (finished or interrupted): run the trials of this "
               "command's plan that the folder does not hold (more seeds, λ, η, widths, or --adaptive BUDGET "
               "more trials); nothing there reruns; only the options in tune.options.EXTENSIBLE may differ",
        run=True, action="store_true")
    retry_errored: bool = option(
        False, "with --resume: run errored trials again (from their last checkpoint that reads, else from epoch 0)",
        run=True, action="store_true")
    wait_for_nodes: bool = option(
        False, "with --address: if no node has the CPUs/GPUs a trial asks for, wait for an autoscaler to "
               "add one (default: a one-line error, exit 2)", run=True, action="store_true")
    max_concurrent: int | None = option(None, "trials at once (default: as resources allow)", run=True, type=int)
    max_failures: int = option(2, "retries of a failed trial, from its last checkpoint", run=True, type=int)
    cpus_per_trial: float = option(1, None, run=True, type=float)
    gpus_per_trial: float = option(0, "e.g. 0.25: four trials share one GPU (memory capped)", run=True, type=float)
    num_cpus: int | None = option(None, "CPUs of a local Ray instance (default: all)", run=True, type=int)
    checkpoint_every: int | None = option(None, "checkpoint every N evaluations (the last always)", type=int)
    keep_checkpoints: int = option(1, "checkpoints kept per Tune trial (the latest N; resume needs 1)",
                                   run=True, type=int)
    group_size: int | dict | None = option(
        None, "train up to N trials as ONE population (one packed model, any model) in one "
              "Tune trial: grid trials, a chained plan's preparation trials and its ready children, "
              "the adaptive search's proposals; each (λ, seed) stays its own row, which records its "
              "population. 1 = one trial per Tune trial. Default per model and device (--dry-run "
              "states it): tinycnn 25 on CPU, 64 on GPU; other models 1 on CPU, 8 on GPU "
              "(--gpus-per-trial > 0)", type=int)     # None: automatic; after packing, the sizes used
    order: str | None = option(None, "grid order, outermost first, e.g. seed,lambda (all λ of seed 0 first)")
    storage_warn_gb: float = option(50.0, "--dry-run warns when the plan's estimated storage exceeds this many GB",
                                    run=True, type=float)
    progress_interval: float = option(10.0, "seconds between progress lines", run=True, type=float)
    dry_run: bool = option(False, "print the trial plan and its size; run nothing", run=True, action="store_true")
    config: str | None = option(None, "a preset TOML (sweeps/<preset>.toml); flags override it", run=True)
    fail_at_epoch: int | None = option(None, argparse.SUPPRESS, type=int)     # tests: FailureConfig
    # tracking (dgl_ray/tune/trackers.py); a resumed Tuner keeps the callbacks it was saved with, so a
    # changed --mlflow/--wandb/--tensorboard would be silently ignored: they define the plan
    mlflow: str | None = option(None, "log to MLflow: a tracking server URI or a local folder/file: store "
                                      f"(needs {EXTRA_HINT})", group=TRACKING, metavar="URI")
    wandb: str | None = option(None, "log to Weights & Biases project PROJECT (WANDB_MODE=offline: no network; "
                                     f"needs {EXTRA_HINT})", group=TRACKING, metavar="PROJECT")
    tensorboard: bool = option(False, "TensorBoard event files per (λ, seed) under "
                                      "<storage>/<name>/<trial folder>/runs/<run>/", group=TRACKING,
                               action="store_true")
    dashboard: bool = option(False, "start Ray's dashboard with a local Ray instance and print its address",
                             group=TRACKING, run=True, action="store_true")
    # derived from the options above
    eta_list: tuple[float, ...] = derived()
    width_list: tuple[float, ...] = derived()
    seed_list: tuple[int, ...] | None = derived()
    # --extend of an adaptive search: the boundary outcomes already in the folder (dicts {"lambda", "outcome",
    # "seed", "eta", "width"}), which the search starts from (dgl_ray.tune.extend.known_outcomes)
    known: tuple = derived()
    argv: tuple[str, ...] = derived()                   # for the exact --resume command
    cwd: str | None = derived()
    family_options: FamilyOptions = field(default_factory=FamilyOptions, metadata={"kind": "derived"})

    def __getattr__(self, name: str):
        # only reached when ``name`` is not a field: the family's own options
        try:
            return self.__dict__["family_options"][name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no option {name!r}") from None

    def replace(self, **changes) -> "SweepOptions":
        """A copy with ``changes`` (fields or family options)."""
        own = {k: changes.pop(k) for k in list(changes) if k in self.family_options}
        if own:
            changes["family_options"] = FamilyOptions({**self.family_options, **own})
        return dataclasses.replace(self, **changes)


# ---- the parser, made from the table --------------------------------------------------------------

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


def build_parser(family) -> argparse.ArgumentParser:
    """The family's command line: every field of :class:`SweepOptions` with a flag, then its own options."""
    p = OneLineParser(prog=f"python -m dgl_ray.sweeps.{family.name}", description=family.doc.split("\n\n")[0],
                      formatter_class=DefaultsOnceFormatter)
    shared = p.add_argument_group(SHARED)
    groups = {SHARED: shared, DATA: shared, MODEL: shared, RUN: shared, FAST: p.add_argument_group(FAST),
              SWEEP: p.add_argument_group(SWEEP), TRACKING: p.add_argument_group(TRACKING)}
    for f in dataclasses.fields(SweepOptions):
        kind = f.metadata.get("kind")
        if kind == "trial":
            add_trial_flags(p, [_TRIAL_FIELDS[f.name]], groups, defaults={f.name: f.default})
        elif kind == "sweep":
            kw = dict(f.metadata["argparse"])
            flag = kw.pop("flag", "--" + f.name.replace("_", "-"))
            env = kw.pop("env", None)
            default = (os.environ.get(env) or None) if env else f.default
            groups[f.metadata["group"]].add_argument(flag, dest=f.name, default=default, help=f.metadata["help"], **kw)
    family.add_args(p.add_argument_group(f"{family.name} options"))
    return p


# ---- presets ------------------------------------------------------------------------------------

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


def given_options(family, argv) -> set:
    """The option names (dests) set on the command line itself (not by a preset or a default)."""
    p = build_parser(family)
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
    import torch        # heavy: only for a CIFAR preset run on digits
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


# ---- parse: the command line and the preset, checked, as one SweepOptions ---------------------------

def parse(family, argv) -> SweepOptions:
    argv = list(argv)
    p = build_parser(family)
    p.set_defaults(**family.defaults)
    pre, _ = p.parse_known_args(argv)
    if pre.config:
        preset = load_preset(pre.config, p, family.name)
        p.set_defaults(**preset_for_dataset(preset, given_options(family, argv), pre))
    values = vars(p.parse_args(argv))
    values["name"] = values["name"] or family.name
    check_refused(family, p, values)
    return _checked(family, values, argv)


def check_refused(family, parser: argparse.ArgumentParser, values: dict) -> None:
    """A shared option the family cannot honour (``Family.refuses``) is refused when set."""
    for name in family.refuses:
        dest = name.lstrip("-").replace("-", "_")
        v, default = values.get(dest), parser.get_default(dest)
        if v is not None and str(v) != str(default):
            raise ConfigError(f"--{dest.replace('_', '-')}={v} is not used by {family.name}; "
                              f"drop it (this family cannot honour it)")


def _checked(family, o: dict, argv: list) -> SweepOptions:
    """Every value checked (in this order: the first problem is the one named), the derived ones made,
    and the one SweepOptions built."""
    eta_list = float_list(o["etas"], "--etas")
    width_list = float_list(o["widths"], "--widths")
    n = o["n"]
    if n is not None and n < 1:
        raise ConfigError(f"--n={n}: a sweep needs at least one seed (n >= 1)")
    if n is not None:
        check_plan_size(n, f"--n={n}")
    if o.get("adaptive") is not None:
        check_plan_size(o["adaptive"], f"--adaptive={o['adaptive']}")
    if o["num_cpus"] is not None and o["num_cpus"] < 1:
        raise ConfigError(f"--num-cpus={o['num_cpus']} must be >= 1 (the CPUs of the sweep's own Ray instance)")
    if o["seeds"] is not None and n is not None:
        raise ConfigError("give --seeds or --n, not both")
    if o["extend"] and o["resume"]:
        raise ConfigError("give --extend or --resume, not both (--resume continues an extension too)")
    seed_list = seed_values(o["seeds"])
    if o["epochs"] is not None and o["epochs"] < 1:
        raise ConfigError(f"--epochs={o['epochs']} must be >= 1")
    if o["cpus_per_trial"] <= 0:
        raise ConfigError(f"--cpus-per-trial={o['cpus_per_trial']} must be > 0")
    if o["gpus_per_trial"] < 0:
        raise ConfigError(f"--gpus-per-trial={o['gpus_per_trial']} must be >= 0")
    if o["max_concurrent"] is not None and o["max_concurrent"] < 1:
        raise ConfigError(f"--max-concurrent={o['max_concurrent']} must be >= 1")
    if o["group_size"] is not None and o["group_size"] < 1:
        raise ConfigError(f"--group-size={o['group_size']} must be >= 1 (1 = one trial per Tune trial)")
    if o["max_failures"] < 0:
        raise ConfigError(f"--max-failures={o['max_failures']} must be >= 0")
    if o["checkpoint_every"] is not None and o["checkpoint_every"] < 1:
        raise ConfigError(f"--checkpoint-every={o['checkpoint_every']} must be >= 1 (1 = every evaluation)")
    if o["keep_checkpoints"] < 1:
        raise ConfigError(f"--keep-checkpoints={o['keep_checkpoints']} must be >= 1 (resume needs the latest)")
    for k, v in o.items():      # NaN or inf in any numeric option (thresholds, LRs, λ) is an error
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"--{k.replace('_', '-')}={v} must be a finite number")
    family.check_thresholds(o)          # the options the family declares error thresholds lie in [0, 1]
    lr_milestones = None if o["lr_milestones"] is None else parse_milestones(o["lr_milestones"])
    check_name(o["name"])
    shared = {f.name for f in dataclasses.fields(SweepOptions)}
    values = {k: v for k, v in o.items() if k in shared}
    values.update(
        # Tune runs each trial inside its trial folder: a relative data root would resolve there
        data_root=o["data_root"] if "://" in str(o["data_root"]) else os.path.abspath(os.path.expanduser(o["data_root"])),
        lr_milestones=lr_milestones,
        # a bare local path is an absolute file: URI (Tune changes the working directory)
        mlflow=mlflow_uri(o["mlflow"]) if o["mlflow"] else o["mlflow"],
        eta_list=tuple(eta_list), width_list=tuple(width_list), seed_list=seed_list, known=(),
        argv=tuple(argv), cwd=os.getcwd(),
        family_options=FamilyOptions({k: v for k, v in o.items() if k not in shared}))
    return SweepOptions(family=family.name, **values)


def seed_values(text) -> tuple[int, ...] | None:
    """--seeds as a tuple (None when not given)."""
    seed_list = tuple(int_list(text, "--seeds")) if text is not None else None
    if seed_list is not None and not seed_list:
        raise ConfigError("--seeds: empty")
    return seed_list


# A sweep's name is one plain folder name under --storage, the same on every filesystem and URI scheme:
# not '.', '..' or hidden (a hidden folder is skipped by `report <storage>`), no '/', at most 100 characters.
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,99}")


def check_name(name: str) -> None:
    if not NAME_RULE.fullmatch(str(name)):
        shown = name if len(name) <= 40 else f"{name[:37]}... ({len(name)} characters)"
        raise ConfigError(f"--name={shown!r} must be one plain folder name: 1 to 100 characters of "
                          f"A-Z a-z 0-9 _ . + = -, not starting with '.'")


def plan_options(opts: SweepOptions) -> dict:
    """The options that define the plan (every option but the runner's, the family's own included), as
    JSON values: what the manifest stores and ``--resume`` compares."""
    out = {f.name: getattr(opts, f.name) for f in dataclasses.fields(SweepOptions)
           if f.metadata.get("kind") in ("trial", "sweep") and not f.metadata["run"]}
    out.update(opts.family_options)
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else json.dumps(v, default=str)
            for k, v in out.items()}


# The options an --extend may change: the plan's axes (the trials they add are new; those already in the
# folder are found by their trial fields, dgl_ray.tune.extend) and how the plan is packed, ordered or searched.
# Every other plan option defines the trials already in the folder: an extension that changes one is refused.
AXES = ("etas", "widths", "seeds", "n", "lambdas", "adaptive")
# Trial options an extension may switch for its new trials only: an early decision changes when a trial stops,
# not which trial it is (extend.identity leaves it out); each earlier part is re-planned with its own value.
PER_PART = ("decide_early",)
EXTENSIBLE = (*AXES, *PER_PART, "group_size", "order", "adaptive_n0", "adaptive_step", "target_sd")


def with_axes(opts: SweepOptions, stored: dict) -> SweepOptions:
    """``opts`` with the plan axes and the :data:`PER_PART` options of ``stored`` (a manifest's options): the
    options an earlier part of an extended sweep was planned with, once every other plan option is known to
    be the same."""
    axes = {k: stored.get(k) for k in (*AXES, *PER_PART) if k in stored}
    shared = {k: v for k, v in axes.items() if k in SweepOptions.__dataclass_fields__}
    own = {k: v for k, v in axes.items() if k not in shared and k in opts.family_options}
    return opts.replace(**shared, **own, eta_list=tuple(float_list(axes.get("etas", opts.etas), "--etas")),
                        width_list=tuple(float_list(axes.get("widths", opts.widths), "--widths")),
                        seed_list=seed_values(axes.get("seeds", opts.seeds)))


# ---- ranges ------------------------------------------------------------------------------------

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
    count = abs((stop - start) / step) + 1 if step else 1
    if not math.isfinite(count) or count > MAX_TRIALS:
        raise ConfigError(f"{what} {text!r} has {count:,.0f} values; a sweep plans at most {MAX_TRIALS:,} trials "
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


# ---- plan helpers the families use ---------------------------------------------------------------

def seeds(o: SweepOptions, default_n: int) -> list[int]:
    if o.seed_list is not None:
        return list(o.seed_list)
    return list(range(o.n if o.n is not None else default_n))


def digits(o: SweepOptions) -> bool:
    return o.dataset == "digits"


def scaled(o: SweepOptions, value, paper, digits_value):
    """An option the user set wins; else the paper's value, or the digits default's scaled one."""
    if value is not None:
        return value
    return digits_value if digits(o) else paper


# The trial config every planned trial starts from: these fields, the labels, then the trial options
# given (None: the trial config's or the family's default). The plan's fingerprint hashes the configs'
# repr, so this order is part of every stored sweep: a new trial option goes at the end of PLAN_GIVEN.
PLAN_ALWAYS = ("dataset", "data_root", "noise", "K", "device")
PLAN_GIVEN = ("model", "batch_size", "lr", "lr_milestones", "eval_every", "decide_early")


def base_config(o: SweepOptions, **extra) -> dict:
    """The trial-config fields every trial of the sweep shares, plus labels."""
    c = {k: getattr(o, k) for k in PLAN_ALWAYS}
    c.update(family=o.family, experiment=o.name)
    c.update({k: getattr(o, k) for k in PLAN_GIVEN if getattr(o, k) is not None})
    c.update(fast_path_fields(o))          # only the switches given: plans that name none stay as they were
    if o.checkpoint_every is not None:
        c["checkpoint_every"] = o.checkpoint_every
    if o.fail_at_epoch is not None:
        c["fail_at_epoch"] = o.fail_at_epoch
    c.update(extra)
    return c
