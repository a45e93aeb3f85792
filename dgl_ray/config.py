"""A trial's configuration: plain data, validated before any work starts.

Every field is a JSON-able value, so a config travels unchanged through the command line, Ray
Tune's param_space, checkpoints and the results table. Fields left as None take the data set's
defaults (``DATASET_DEFAULTS``, from :mod:`dgl_ray.registry`): the paper's CIFAR settings, or the digits
settings of PROTOCOLS.md.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .errors import ConfigError
from .schedules import check_lambda, expand_lambda_schedule

# the names a trial can give (one entry each in dgl_ray.registry, which has no torch import)
DATASETS = tuple(registry.DATASETS)
MODELS = tuple(registry.MODELS)
NOISE_KINDS = ("symmetric", "asymmetric", "asymmetric-legacy")
NOISE_CONVENTIONS = ("paper", "legacy")  # legacy: A–Q notebooks seeded noise with seed+1000
NORMALIZATIONS = ("paper", "q-series")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
FAST_PATH_FIELDS = ("channels_last", "bf16", "tf32", "compile")   # TrialConfig's device fast-path switches

# The one schema of a Tune trial config: TrialConfig's fields (λ as ``lam``, or ``lambda``), labels
# (copied into the result rows as they are) and these run-time keys (read by the Tune trainable, not
# by the trainer). Any other key is a ConfigError wherever it comes from (a family's plan, a preset,
# a hand-made Tune config): a misspelled field must not become a result column.
# The labels are these core ones, which every sweep or chained plan writes, and each registered
# family's own (``Family.labels``, added by ``register_labels`` when the family registers): see
# :func:`label_fields`.
LABEL_FIELDS = ("family", "experiment", "role", "plan_id", "parent", "init_error", "branch", "accept", "select")
_FAMILY_LABELS: dict[str, None] = {}     # insertion-ordered set of the registered families' labels


def register_labels(names) -> None:
    """Accept ``names`` as labels of trial configs from now on (a family's own labels)."""
    new = [n for n in names if n not in LABEL_FIELDS and n not in _FAMILY_LABELS]
    if new:
        _FAMILY_LABELS.update(dict.fromkeys(new))
        _tune_keys.cache_clear()


def label_fields() -> tuple[str, ...]:
    """Every label a trial config may carry: the core ones and those of the registered families."""
    return LABEL_FIELDS + tuple(_FAMILY_LABELS)
RUNTIME_FIELDS = ("export_checkpoint", "checkpoint_every", "fail_at_epoch")
# a packed Tune config's own keys (dgl_ray.rows.pack_group): its members, and its slots when some queue
PACKING_KEYS = ("group", "slots")

DATASET_DEFAULTS = {name: entry.defaults for name, entry in registry.DATASETS.items()}


def flag(help: str, group: str, *, sweep: bool = False, name: str | None = None, aliases: tuple = ()) -> dict:
    """A trial field's command-line metadata (``dataclasses.field(metadata=...)``), read by
    :mod:`dgl_ray.trial_flags` to make its flag for ``python -m dgl_ray.train`` and, with ``sweep=True``,
    for every sweep family too. ``name``: the flag when it is not ``--<field-with-dashes>`` (a bool
    field whose default is True is switched off by ``--no-<field>``). Every trial field defines the plan:
    a sweep's ``--resume`` refuses a changed one."""
    return {"help": help, "group": group, "sweep": sweep, "flag": name, "aliases": tuple(aliases)}


DATA, MODEL, SCHEDULE, RUN, FAST = ("data and noise", "model and optimisation", "λ schedule (one of)",
                                    "start, checkpoints, execution",
                                    "device fast path (trial settings: recorded in every row, shared by a group)")


@dataclass
class TrialConfig:
    # data
    dataset: str = field(default="digits", metadata=flag(f"one of {', '.join(DATASETS)}", DATA, sweep=True))
    data_root: str = field(default="./data", metadata=flag(
        "folder holding cifar-10-batches-py / cifar-100-python", DATA, sweep=True))
    download: bool = field(default=False, metadata=flag("download CIFAR into --data-root if missing", DATA))
    # CIFAR-10 std variant: "paper" (0.2023,...) or "q-series" (0.2470,...)
    normalization: str = field(default="paper", metadata=flag(f"CIFAR-10 std: {', '.join(NORMALIZATIONS)}", DATA))
    # None: on for CIFAR-shaped data, off for digits
    augment: bool | None = field(default=None, metadata=flag(
        "no crop/flip (default: on for CIFAR-shaped data)", DATA, name="--no-augment"))
    synthetic_size: list[int] = field(default_factory=lambda: [50000, 10000])  # synthetic-cifar train/test
    # label noise
    eta: float = field(default=0.4, metadata=flag("label-noise rate η in [0, 1)", DATA))
    noise: str = field(default="symmetric", metadata=flag(f"one of {', '.join(NOISE_KINDS)}", DATA, sweep=True))
    noise_convention: str = field(default="paper", metadata=flag(
        f"{', '.join(NOISE_CONVENTIONS)} (legacy: seed+1000)", DATA))
    # V2: g_v from this fraction of trusted training samples only
    trusted_fraction: float | None = field(default=None, metadata=flag(
        "V2: g_v from this trusted fraction only", DATA))
    # model
    model: str | None = field(default=None, metadata=flag(
        f"one of {', '.join(MODELS)} (default: per data set; digits: tinycnn, CIFAR: resnet18)", MODEL, sweep=True))
    width: float = field(default=1.0, metadata=flag("width multiplier (resnet*, tinycnn)", MODEL))
    # the dual-gradient step
    seed: int = field(default=0, metadata=flag("seed of the model, the noise and the batches", MODEL))
    # constant λ; or give lambda_schedule
    lam: float | None = field(default=None, metadata=flag("constant λ in [0, 1]", SCHEDULE, name="--lambda"))
    lambda_schedule: list[dict] | None = field(default=None, metadata=flag(
        "JSON list of segments, or @file.json", SCHEDULE))
    K: int = field(default=16, metadata=flag("recompute g_v every K steps (1 = every step)", MODEL, sweep=True,
                                             aliases=("-K",)))
    batch_size: int | None = field(default=None, metadata=flag("default: per data set", MODEL, sweep=True))
    lr: float | None = field(default=None, metadata=flag("default: per data set", MODEL, sweep=True))
    lr_milestones: list[int] | None = field(default=None, metadata=flag(
        "comma list of epochs ('' for constant LR; default: per data set)", MODEL, sweep=True))
    lr_gamma: float = field(default=0.1, metadata=flag("LR factor at each milestone", MODEL))
    lr_multiplier: float = field(default=1.0, metadata=flag("multiplies the whole LR schedule", MODEL))
    momentum: float = field(default=0.9, metadata=flag("SGD momentum", MODEL))
    weight_decay: float = field(default=5e-4, metadata=flag("SGD weight decay", MODEL))
    epochs: int | None = field(default=None, metadata=flag(
        "default: per data set, or the schedule's length (sweeps: the family's, scaled for digits)", MODEL, sweep=True))
    eval_every: int = field(default=1, metadata=flag("evaluate every N epochs", RUN, sweep=True))
    # W1: also log c_sv = cos(g_s, a FRESH g_v) every step
    fresh_csv: bool = field(default=False, metadata=flag("W1: log c_sv with a fresh g_v every step", RUN))
    # δ: stop a run once the data set's calibrated branch classifier gives its final branch a probability
    # >= 1 - δ (status "decided": a branch, never a final error; dgl_ray.early, docs/SWEEPS.md)
    decide_early: float | None = field(default=None, metadata=flag(
        "δ: stop a run once P(its final branch) >= 1 - δ (calibrated classifier; default off)", RUN, sweep=True))
    # start from a saved model (ordered/collapse preparation runs): fresh optimizer at `lr`,
    # step counter and cache reset, as the paper's T/W protocols do
    init_checkpoint: str | None = field(default=None, metadata=flag(
        "start from this model (fresh optimizer, step 0)", RUN))
    # "ordered"/"collapse": the branch the init checkpoint holds
    origin: str | None = field(default=None, metadata=flag(
        "ordered/collapse: the branch --init-checkpoint holds", RUN))
    # execution
    device: str = field(default="auto", metadata=flag(f"{', '.join(DEVICES)} or cuda:N", RUN, sweep=True))
    dtype: str = field(default="float32", metadata=flag(f"one of {', '.join(DTYPES)}", RUN))
    deterministic: bool = field(default=False, metadata=flag("cudnn deterministic mode (slower)", RUN))
    # the device fast path (dgl_ray.batched.FastPath; docs/PACKING.md "Device fast path" gives each
    # switch's default, its tolerance against the reference and the test that measures it). A switch not
    # given is absent from the options (the default applies), so a plan that names none stays as it was.
    # memory layout only: the float64 equivalence tests run with it
    channels_last: bool = field(default=True, metadata=flag(
        "NCHW layout instead of channels-last (default channels-last)", FAST, sweep=True))
    bf16: bool = field(default=False, metadata=flag(
        "bfloat16 autocast of the forwards (CUDA or CPU; default off)", FAST, sweep=True))
    tf32: bool = field(default=False, metadata=flag(
        "TF32 matmuls/convolutions on NVIDIA GPUs (default off; refused with --device cpu)", FAST, sweep=True))
    compile: bool = field(default=False, metadata=flag(
        "torch.compile the packed forward (default off; compiling takes a minute or more)", FAST, sweep=True))
    # free-form labels carried into the results (family, experiment name, ...)
    tags: dict[str, Any] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "TrialConfig":
        d = dict(d)
        if "lam" in d:
            raise ConfigError("unknown trial config key 'lam': λ is spelled 'lambda' in configs, plans and "
                              "result rows (TrialConfig.lam is only the Python attribute)")
        if "lambda" in d:
            d["lam"] = d.pop("lambda")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown trial config keys {unknown}; allowed: {sorted(config_keys())}")
        return cls(**d).resolved()

    @classmethod
    def check_tune_config(cls, d: dict) -> None:
        """Refuse a Tune config key that is neither a trial field, a label nor a run-time key (with the
        nearest allowed name as a hint); a ``group`` config is checked member by member."""
        if "group" in d:
            for m in d["group"]:
                cls.check_tune_config({**{k: v for k, v in d.items() if k not in PACKING_KEYS}, **m})
            return
        allowed_set = _tune_keys()
        if allowed_set.issuperset(d):
            return
        fields = config_keys()
        labels = label_fields()
        allowed = fields + list(labels) + list(RUNTIME_FIELDS)
        unknown = sorted(set(d) - allowed_set)
        if unknown:
            import difflib
            hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, allowed, 1)) else "")
                     for k in unknown]
            raise ConfigError(f"unknown trial config field {', '.join(hints)}; allowed: trial fields "
                              f"{', '.join(fields)}; labels {', '.join(labels)}; run-time keys "
                              f"{', '.join(RUNTIME_FIELDS)}")

    @classmethod
    def validate_many(cls, trials) -> None:
        """``from_dict`` on every trial config, fast for plans of 100,000 trials: configs that differ only
        in ``seed`` and a constant λ share one full validation; the seed and λ of each are checked alone."""
        shapes: set = set()
        for t in trials:
            lam_key = "lambda"
            shape = shape_key(t) + f"|{t.get(lam_key) is None}"
            if shape not in shapes:
                cls.from_dict(t)
                shapes.add(shape)
                continue
            seed = t.get("seed", 0)
            if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
                raise ConfigError(f"seed={seed!r} must be an integer >= 0")
            if t.get(lam_key) is not None:
                check_lambda(t[lam_key])

    def to_dict(self) -> dict:
        """Plain data with λ under its one spelling, ``lambda`` (as in plans and result rows)."""
        return {("lambda" if k == "lam" else k): v for k, v in dataclasses.asdict(self).items()}

    def resolved(self) -> "TrialConfig":
        """Fill dataset defaults, expand the λ schedule and validate everything; raises ConfigError."""
        if self.dataset not in registry.DATASETS:
            raise ConfigError(f"dataset={self.dataset!r} is unknown; allowed: {', '.join(registry.DATASETS)}")
        c = dataclasses.replace(self)
        data = registry.DATASETS[c.dataset]
        for k, v in data.defaults.items():
            if getattr(c, k) is None:
                setattr(c, k, list(v) if isinstance(v, list) else v)
        if c.augment is None:
            c.augment = data.augment
        if c.lambda_schedule is None:
            if c.lam is None:
                raise ConfigError("no λ given: set lam (e.g. --lambda 0.3) or a lambda_schedule")
            check_lambda(c.lam)
            c.lambda_schedule = [{"kind": "constant", "value": float(c.lam), "epochs": int(c.epochs)}]
            c.lam = None  # the schedule now holds it: resolving again is a no-op
        elif c.lam is not None:
            raise ConfigError(f"both lam={c.lam} and a lambda_schedule were given; give one of them")
        plans = expand_lambda_schedule(c.lambda_schedule)
        if c.epochs != len(plans):
            if self.epochs is not None and self.lambda_schedule is not None:
                raise ConfigError(f"epochs={self.epochs} but the λ schedule lasts {len(plans)} epochs; "
                                  f"leave epochs unset or make them equal")
            c.epochs = len(plans)
        c._validate()
        return c

    def _validate(self) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        need(self.model in registry.MODELS, f"model={self.model!r} is unknown; allowed: {', '.join(registry.MODELS)}")
        need(isinstance(self.eta, (int, float)) and 0.0 <= self.eta < 1.0,
             f"eta={self.eta!r} is outside [0, 1); η is the fraction of wrong labels")
        need(self.noise in NOISE_KINDS, f"noise={self.noise!r} is unknown; allowed: {', '.join(NOISE_KINDS)}")
        need(self.noise_convention in NOISE_CONVENTIONS,
             f"noise_convention={self.noise_convention!r} is unknown; allowed: {', '.join(NOISE_CONVENTIONS)}")
        need(not self.noise.startswith("asymmetric") or registry.DATASETS[self.dataset].num_classes == 10,
             f"noise={self.noise!r} is defined for 10-class data (CIFAR-10 pairs); dataset={self.dataset!r} "
             f"allows: symmetric")
        need(self.trusted_fraction is None or (isinstance(self.trusted_fraction, (int, float))
                                               and 0.0 < self.trusted_fraction <= 1.0),
             f"trusted_fraction={self.trusted_fraction!r} must be in (0, 1] or unset")
        need(isinstance(self.K, int) and not isinstance(self.K, bool) and self.K >= 1,
             f"K={self.K!r} must be an integer >= 1 (1 = fresh g_v every step, 16 = the paper)")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
             f"seed={self.seed!r} must be an integer >= 0")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size={self.batch_size!r} must be >= 1")
        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs={self.epochs!r} must be an integer >= 1")
        need(isinstance(self.eval_every, int) and self.eval_every >= 1, f"eval_every={self.eval_every!r} must be >= 1")
        for name in ("lr", "lr_gamma", "lr_multiplier"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and v > 0 and math.isfinite(v), f"{name}={v!r} must be a positive number")
        need(0.0 <= self.momentum < 1.0, f"momentum={self.momentum!r} must be in [0, 1)")
        need(self.weight_decay >= 0.0, f"weight_decay={self.weight_decay!r} must be >= 0")
        need(all(isinstance(m, int) and m >= 1 for m in self.lr_milestones),
             f"lr_milestones={self.lr_milestones!r} must be epochs (integers >= 1)")
        need(isinstance(self.width, (int, float)) and self.width > 0, f"width={self.width!r} must be > 0")
        need(self.width == 1.0 or registry.MODELS[self.model].any_width, registry.fixed_width_error(self.model, self.width))
        need(self.normalization in NORMALIZATIONS,
             f"normalization={self.normalization!r} is unknown; allowed: {', '.join(NORMALIZATIONS)}")
        need(self.device in DEVICES or str(self.device).startswith("cuda:"),
             f"device={self.device!r} is unknown; allowed: {', '.join(DEVICES)} or cuda:N")
        need(self.dtype in DTYPES, f"dtype={self.dtype!r} is unknown; allowed: {', '.join(DTYPES)}")
        for name in FAST_PATH_FIELDS:
            v = getattr(self, name)
            need(isinstance(v, bool), f"{name}={v!r} must be true or false")
        # lower-precision switches that would silently do nothing are refused, not recorded as used
        for name in ("bf16", "tf32"):
            need(not getattr(self, name) or self.dtype == "float32",
                 f"{name}=True applies to float32 trials; dtype={self.dtype!r} is never cast (drop {name} "
                 f"or use dtype float32)")
        need(not self.tf32 or self.device != "cpu",
             "tf32=True has no effect on device='cpu' (TF32 is a math mode of NVIDIA GPUs); drop it or use "
             "device cuda (with device auto on a machine without a GPU it is a no-op, with a warning)")
        need(self.origin in (None, "ordered", "collapse"), f"origin={self.origin!r}; allowed: ordered, collapse or unset")
        need(self.decide_early is None or (isinstance(self.decide_early, (int, float))
                                           and not isinstance(self.decide_early, bool)),
             f"decide_early={self.decide_early!r} must be a number δ (or unset)")
        if self.decide_early is not None:
            from .early import check_delta     # another slice's module, merged later (the coordinator may move it up)
            check_delta(float(self.decide_early), self.dataset)
        need(isinstance(self.synthetic_size, (list, tuple)) and len(self.synthetic_size) == 2
             and all(isinstance(n, int) and n >= 1 for n in self.synthetic_size),
             f"synthetic_size={self.synthetic_size!r} must be [n_train, n_test], both >= 1")


@functools.lru_cache(maxsize=1)
def _tune_keys() -> frozenset:
    return frozenset(config_keys() + list(label_fields()) + list(RUNTIME_FIELDS))


@functools.lru_cache(maxsize=1)
def _config_keys() -> tuple:
    return tuple(("lambda" if f.name == "lam" else f.name) for f in dataclasses.fields(TrialConfig))


def config_keys() -> list[str]:
    """The trial fields as dict keys: the dataclass fields, with ``lam`` spelled ``lambda``."""
    return list(_config_keys())


def shape_key(trial: dict) -> str:
    """A trial config without its seed and constant λ, as text: trials of one shape validate alike and
    have the same checkpoint size. (Key order counts: the same fields in another order make another key,
    which only costs one more validation.)"""
    return repr({k: v for k, v in trial.items() if k != "seed" and k != "lambda"})
