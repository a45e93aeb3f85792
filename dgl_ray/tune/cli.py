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
import os
import socket
import sys
import tempfile

from ..errors import ConfigError
from ..schedules import parse_range

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore



class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def parse_values(text, what: str) -> list[float]:
    """start:stop:step (stop included, drift-free), a comma list, or one value."""
    return parse_range(str(text), what)


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
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    r = p.add_argument_group("sweep")
    r.add_argument("--storage", default="./results", help="local path or a URI pyarrow understands (s3://, gs://, ...)")
    r.add_argument("--name", default=None, help=f"experiment name (default: {module.FAMILY})")
    r.add_argument("--address", default=None, help="an existing Ray cluster (host:port or auto)")
    r.add_argument("--resume", action="store_true", help="continue the sweep <storage>/<name>")
    r.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    r.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial, from its last checkpoint")
    r.add_argument("--cpus-per-trial", type=float, default=1)
    r.add_argument("--gpus-per-trial", type=float, default=0, help="e.g. 0.25: four trials share one GPU (memory capped)")
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    r.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N evaluations (the last always)")
    r.add_argument("--group-size", type=int, default=None,
                   help="train up to N grid trials as ONE population (one packed model, any model) in one "
                        "Tune trial; each (λ, seed) stays its own row, which records its population. 1 = one "
                        "trial per Tune trial. Default per model and device (--dry-run states it): tinycnn 25 "
                        "on CPU, 64 on GPU; other models 1 on CPU, 8 on GPU (--gpus-per-trial > 0)")
    r.add_argument("--order", default=None, help="grid order, outermost first, e.g. seed,lambda (all λ of seed 0 first)")
    r.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    r.add_argument("--dry-run", action="store_true", help="print the trial plan and its size; run nothing")
    r.add_argument("--config", default=None, help="a preset TOML (sweeps/<preset>.toml); flags override it")
    r.add_argument("--fail-at-epoch", type=int, default=None, help=argparse.SUPPRESS)  # tests: FailureConfig
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
        out[dest] = v
    return out


def parse(module, argv) -> argparse.Namespace:
    p = common_parser(module)
    p.set_defaults(**getattr(module, "DEFAULTS", {}))
    pre, _ = p.parse_known_args(argv)
    if pre.config:
        p.set_defaults(**load_preset(pre.config, p, module.FAMILY))
    opts = p.parse_args(argv)
    opts.family = module.FAMILY
    opts.name = opts.name or module.FAMILY
    check_common(opts)
    return opts


def check_common(o) -> None:
    o.eta_list = float_list(o.etas, "--etas")
    o.width_list = float_list(o.widths, "--widths")
    if o.n is not None and o.n < 1:
        raise ConfigError(f"--n={o.n}: a sweep needs at least one seed (n >= 1)")
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
    o.group_size_auto = o.group_size is None     # chosen per model and device by group_trials
    if o.group_size is not None and o.group_size < 1:
        raise ConfigError(f"--group-size={o.group_size} must be >= 1 (1 = one trial per Tune trial)")
    if o.max_failures < 0:
        raise ConfigError(f"--max-failures={o.max_failures} must be >= 0")
    if o.lr_milestones is not None:
        try:
            o.lr_milestones = [int(v) for v in str(o.lr_milestones).split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--lr-milestones={o.lr_milestones!r}; expected a comma list of epochs") from None
    if not str(o.name).strip() or "/" in o.name:
        raise ConfigError(f"--name={o.name!r} must be a non-empty folder name without '/'")


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
    if o.checkpoint_every is not None:
        c["checkpoint_every"] = o.checkpoint_every
    if o.fail_at_epoch is not None:
        c["fail_at_epoch"] = o.fail_at_epoch
    c.update(extra)
    return c


def validate_configs(configs) -> None:
    """Every planned trial config must pass TrialConfig (one-line ConfigError otherwise)."""
    from ..config import TrialConfig
    from .trainable import split_config
    from ..models import check_model_fits
    seen, fits = set(), set()
    for c in configs:
        trial, _, _ = split_config(c)
        key = json.dumps(trial, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        rc = TrialConfig.from_dict(trial)
        if (rc.model, rc.width, rc.dataset) not in fits:   # e.g. vgg11 on 8x8 digits: refused before Ray starts
            check_model_fits(rc.model, rc.width, rc.dataset)
            fits.add((rc.model, rc.width, rc.dataset))


def check_storage(o) -> None:
    from .runner import experiment_exists, storage_fs
    try:
        fs, root = storage_fs(o.storage)
    except Exception as e:
        raise ConfigError(f"--storage {o.storage!r} is not a path or a URI pyarrow understands ({e})") from None
    if fs is None:
        try:
            os.makedirs(root, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
                pass
        except OSError as e:
            raise ConfigError(f"--storage {o.storage!r} is not writable ({e.strerror or e})") from None
    exists = experiment_exists(o.storage, o.name)
    if exists and not o.resume and not o.dry_run:
        raise ConfigError(f"{o.storage.rstrip('/')}/{o.name} already holds a sweep; add --resume to continue it "
                          f"or pick another --name")


def check_address(o) -> None:
    if not o.address:
        return
    a = o.address
    if a == "auto":
        if not (os.environ.get("RAY_ADDRESS") or os.path.exists("/tmp/ray/ray_current_cluster")):
            raise ConfigError("--address auto: no running Ray cluster found on this machine (start one with ray start --head)")
        return
    hp = a.split("://", 1)[-1]
    host, _, port = hp.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {a!r}; expected host:port (e.g. 10.0.0.1:6379), ray://host:10001 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ConfigError(f"--address {a}: no Ray cluster answers there ({e.strerror or e})") from None


def print_plan(spec, opts) -> None:
    from .searchers import BoundarySearcher, ChainedSearcher, GridSearcher
    s = spec.searcher
    print(f"{spec.family}: plan for {opts.storage.rstrip('/')}/{opts.name}")
    if isinstance(s, GridSearcher):
        cfgs = [m for c in s._state["configs"] for m in c.get("group", [c])]   # members of grouped Tune trials
        print(f"  {len(cfgs)} trials (grid)")
        _axes(cfgs)
    elif isinstance(s, ChainedSearcher):
        preps = s._state["preps"]
        kids = [c for p in preps for c in p["children"]]
        acc = {str(p["accept"]) for p in preps}
        print(f"  {len(preps)} preparation trials (acceptance {', '.join(sorted(acc))}), "
              f"up to {len(kids)} follow-up trials: {s.size} trials at most")
        print("  preparation:")
        _axes([p["config"] for p in preps])
        print("  follow-ups:")
        _axes(kids)
    elif isinstance(s, BoundarySearcher):
        print(f"  adaptive boundary search: budget {s.size} trials, start grid {s.policy.grid} x {s.policy.n0} seeds, "
              f"min λ step {s.policy.min_step}")
        _axes([s._state["base"]])
    for note in spec.notes:
        print(f"  {note}")
    print(f"  trial size: {s.size}")


def _short(v) -> str:
    if isinstance(v, (list, dict)):
        t = json.dumps(v)
        return t if len(t) <= 60 else t[:57] + "..."
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _axes(cfgs) -> None:
    if not cfgs:
        print("    (none)")
        return
    keys = []
    for c in cfgs:
        keys += [k for k in c if k not in keys]
    for k in keys:
        if k in ("plan_id",):
            continue
        vals = []
        for c in cfgs:
            v = _short(c.get(k))
            if v not in vals:
                vals.append(v)
        shown = ", ".join(vals) if len(vals) <= 6 else f"{', '.join(vals[:3])}, ..., {', '.join(vals[-2:])}"
        print(f"    {k:<18} {len(vals):>4} value{'s' if len(vals) > 1 else ' '}: {shown}")


def group_trials(spec, opts) -> None:
    """Pack a grid's trials into Tune trials of up to N members trained as one population (same data
    set, model, shapes; see dgl_ray.batched.group_configs). N is --group-size, or by default a fixed
    function of the model and the device kind (dgl_ray.batched.default_group_size), stated by
    --dry-run. Plan order is kept inside and across groups."""
    from .searchers import GridSearcher
    from .trainable import split_config
    from ..batched import default_group_size, group_configs
    from ..config import TrialConfig
    if not isinstance(spec.searcher, GridSearcher):
        return
    cfgs = spec.searcher.plan_configs()
    trial_cfgs = [TrialConfig.from_dict(split_config(c)[0]) for c in cfgs]
    on_gpu = opts.gpus_per_trial > 0
    sizes = {}
    for c in trial_cfgs:
        sizes.setdefault(c.model, opts.group_size if not opts.group_size_auto else default_group_size(c.model, on_gpu))
    if opts.group_size_auto and sizes.get("tinycnn", 1) > 2:
        # small plans: at least 4 Tune trials so that every worker gets work. Each row records its
        # population (group_size, member), which is what an exact rerun needs (docs/PACKING.md)
        n = sum(c.model == "tinycnn" for c in trial_cfgs)
        sizes["tinycnn"] = max(2, min(sizes["tinycnn"], -(-n // 4)))
    if max(sizes.values()) <= 1:
        if opts.group_size_auto:
            spec.notes.append(f"one trial per Tune trial (default group size 1 for {', '.join(sizes)} on "
                              f"{'GPU' if on_gpu else 'CPU'})")
        return
    groups = []
    for model, size in sizes.items():
        idx = [i for i, c in enumerate(trial_cfgs) if c.model == model]
        groups += [[idx[j] for j in g] for g in group_configs([trial_cfgs[i] for i in idx], max_size=size)]
    groups.sort(key=lambda g: g[0])
    packed = [cfgs[g[0]] if len(g) == 1 else {"group": [cfgs[i] for i in g]} for g in groups]
    spec.searcher = GridSearcher(packed)
    how = "default for" if opts.group_size_auto else "--group-size for"
    spec.notes.append(f"{len(cfgs)} trials packed into {len(packed)} Tune trials (group size "
                      + ", ".join(f"{s} {how} {m}" for m, s in sizes.items()) + f" on {'GPU' if on_gpu else 'CPU'})")


def main(module, argv=None) -> int:
    try:
        opts = parse(module, sys.argv[1:] if argv is None else argv)
        spec = module.plan(opts)
        s = spec.searcher
        validate_configs(s.plan_configs())
        if s.size < 1:
            raise ConfigError("the plan is empty: no trial to run (check the ranges)")
        group_trials(spec, opts)
        check_address(opts)
        check_storage(opts)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if opts.dry_run:
        print_plan(spec, opts)
        return 0
    from .runner import run_sweep
    df = run_sweep(opts, spec)
    return 0 if len(df) else 1
