"""One trial from the command line.

    python -m dgl_ray.train --dataset digits --model tinycnn --lambda 0.3 --eta 0.4 --seed 0 --epochs 30

Prints one progress line per evaluation and, as its last stdout line, one JSON object with the
trial's summary (final_error, lambda, eta, seed, epochs, status, ...). Bad input is a one-line
error (exit 2) before any training starts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .config import DATA, FAST_PATH_FIELDS, MODEL, RUN, SCHEDULE, TrialConfig
from .errors import ConfigError, unwritable
from .trial_flags import add_trial_flags, fast_path_fields, flag_fields, parse_milestones


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dgl_ray.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # every TrialConfig field with command-line metadata (dgl_ray/config.py), in its group; the λ
    # schedule group adds the ways of writing a schedule that are not fields
    groups = {title: p.add_argument_group(title) for title in (DATA, MODEL, SCHEDULE, RUN)}
    add_trial_flags(p, flag_fields(), groups)
    s = groups[SCHEDULE]
    s.add_argument("--ladder", default=None, help="ladder waypoints, e.g. 0.20,0.64,0.22 (up then down)")
    s.add_argument("--ladder-step", type=float, default=0.02)
    s.add_argument("--hold", type=int, default=1, help="epochs per ladder step")
    s.add_argument("--refine", default=None, help="lo:hi:step, a finer ladder step inside [lo, hi] (R2)")
    s.add_argument("--ramp", default=None, help="start:stop, linear over --epochs")
    s.add_argument("--jump", default=None, help="LAMBDA@EPOCH: switch from --lambda to LAMBDA at EPOCH (Q2/W2)")
    s.add_argument("--init-lambda", type=float, default=None, help="prepend --init-epochs at this λ (R3/T)")
    s.add_argument("--init-epochs", type=int, default=0)
    e = groups[RUN]
    e.add_argument("--save", default=None, help="write the trial checkpoint here after every evaluation")
    e.add_argument("--resume", default=None, help="continue the trial saved in this checkpoint")
    e.add_argument("--quiet", action="store_true", help="only the final JSON line")
    return p


def config_from_args(a: argparse.Namespace) -> TrialConfig:
    schedule = None
    chosen = [n for n in ("ladder", "ramp", "lambda_schedule") if getattr(a, n) is not None]
    if len(chosen) > 1:
        raise ConfigError(f"give one λ schedule, got --{' and --'.join(c.replace('_', '-') for c in chosen)}")
    lam, epochs = a.lam, a.epochs
    if a.lambda_schedule is not None:
        text = a.lambda_schedule
        if text.startswith("@"):
            try:
                with open(text[1:], encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"--lambda-schedule {a.lambda_schedule}: cannot read it as UTF-8 JSON "
                                  f"({getattr(e, 'strerror', None) or e})") from None
        try:
            schedule = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--lambda-schedule is not valid JSON ({e})") from None
    elif a.ladder is not None:
        pts = numbers(a.ladder, ",", "--ladder", "waypoints, e.g. 0.20,0.64,0.22")
        seg = {"kind": "ladder", "points": pts, "step": a.ladder_step, "hold": a.hold}
        if a.refine:
            seg["refine"] = numbers(a.refine, ":", "--refine", "lo:hi:step, e.g. 0.42:0.58:0.01", count=3)
        schedule = [seg]
    elif a.ramp is not None:
        try:
            lo, hi = (float(v) for v in a.ramp.split(":"))
        except ValueError:
            raise ConfigError(f"--ramp={a.ramp!r}; expected start:stop, e.g. 0.3:0.6") from None
        if epochs is None:
            raise ConfigError("--ramp needs --epochs (the ramp's length)")
        schedule, epochs = [{"kind": "ramp", "start": lo, "stop": hi, "epochs": epochs}], None
    if a.jump is not None:
        if lam is None or epochs is None or schedule is not None:
            raise ConfigError("--jump LAMBDA@EPOCH needs --lambda (before the jump) and --epochs (in all)")
        try:
            to, at = a.jump.split("@")
            to, at = float(to), int(at)
        except ValueError:
            raise ConfigError(f"--jump={a.jump!r}; expected LAMBDA@EPOCH, e.g. 0.55@30") from None
        if not 0 < at < epochs:
            raise ConfigError(f"--jump at epoch {at} must lie inside (0, --epochs={epochs})")
        schedule = [{"kind": "constant", "value": lam, "epochs": at, "name": "before"},
                    {"kind": "constant", "value": to, "epochs": epochs - at, "name": "after"}]
        lam, epochs = None, None
    if a.init_lambda is not None:
        if a.init_epochs < 1:
            raise ConfigError(f"--init-epochs={a.init_epochs} must be >= 1 with --init-lambda")
        if schedule is None:
            if lam is None:
                raise ConfigError("--init-lambda needs the main schedule too (--lambda, --ladder, ...)")
            if epochs is None:
                raise ConfigError("--init-lambda with --lambda needs --epochs (of the main phase)")
            schedule, lam = [{"kind": "constant", "value": lam, "epochs": epochs, "name": "main"}], None
        schedule = [{"kind": "constant", "value": a.init_lambda, "epochs": a.init_epochs, "name": "init"}] + schedule
        epochs = None
    if schedule is not None:
        if lam is not None:
            raise ConfigError("--lambda and a λ schedule (--ladder/--ramp/--lambda-schedule) exclude each other")
        if epochs is not None and a.lambda_schedule is None:
            epochs = None  # a ladder's length is its own
    milestones = None if a.lr_milestones is None else parse_milestones(a.lr_milestones)
    # every field flag as given (a fast-path switch not given is absent: its default applies), with the
    # λ schedule and the epochs built above
    given = {f.name: getattr(a, f.name) for f in flag_fields() if hasattr(a, f.name)}
    return TrialConfig(**{**given, "lam": lam, "lambda_schedule": schedule, "epochs": epochs,
                          "lr_milestones": milestones}).resolved()


def numbers(text: str, sep: str, option: str, expected: str, count: int | None = None) -> list[float]:
    """``text`` split at ``sep`` as finite numbers (``count`` of them when given); a ConfigError otherwise."""
    try:
        vals = [float(v) for v in text.split(sep)]
    except ValueError:
        vals = []
    if not vals or not all(math.isfinite(v) for v in vals) or (count is not None and len(vals) != count):
        raise ConfigError(f"{option}={text!r}; expected {expected}")
    return vals


def format_progress(m: dict, total: int) -> str:
    extra = f" c_sv={m['c_sv']:+.3f}" if m["c_sv"] == m["c_sv"] else ""
    err = "   nan" if m["test_error"] != m["test_error"] else f"{m['test_error']:.4f}"
    return (f"epoch {m['epoch']:>4}/{total}  λ={m['lambda']:.3f}  lr={m['lr']:.4g}  test_error={err}  "
            f"train_loss={m['train_loss']:.4f}  cos={m['avg_cos']:+.3f}{extra}  [{m['status']}, {m['wall_time']:.1f}s]")


def check_save_path(path: str | None) -> None:
    """--save must name a file this process can write: checked before any training, not at the first
    evaluation."""
    if path is None:
        return
    if os.path.isdir(path):
        raise ConfigError(f"--save {path}: is a folder; give the checkpoint's file path (e.g. {path}/trial.pt)")
    folder = os.path.dirname(os.path.abspath(path))
    why = unwritable(folder)
    if why:
        raise ConfigError(f"--save {path}: cannot write in {folder} ({why})")


def check_resume_fast_path(a: argparse.Namespace, cfg: TrialConfig) -> None:
    """A resumed trial keeps the fast path it started with (the switches change its arithmetic):
    a switch given with --resume must be the checkpoint's."""
    diff = [f"{k}={v} (the checkpoint's trial ran with {k}={getattr(cfg, k)})"
            for k, v in fast_path_fields(a).items() if getattr(cfg, k) != v]
    if diff:
        raise ConfigError(f"--resume {a.resume}: {', '.join(diff)}; a trial keeps its fast path to the end: "
                          f"drop the option")


# What a --resume may be given besides the checkpoint: where to save, which device to continue on, and
# output. Every other option set with --resume is the checkpoint's own value or an error: a resumed
# trial continues its checkpoint's config, so a changed option would otherwise be silently ignored.
RESUME_OPTIONS = ("resume", "save", "device", "quiet", "help")


def check_resume_options(parser: argparse.ArgumentParser, a: argparse.Namespace, cfg: TrialConfig) -> None:
    ignored = []
    for act in parser._actions:
        if act.dest in RESUME_OPTIONS or act.dest in FAST_PATH_FIELDS:    # (fast path: its own check)
            continue
        v = getattr(a, act.dest, act.default)
        if v == act.default or getattr(cfg, act.dest, object()) == v:
            continue
        ignored.append(f"{act.option_strings[0]} {v}")
    if ignored:
        raise ConfigError(f"--resume {a.resume}: {', '.join(ignored)} cannot change a saved trial (it continues "
                          f"with its checkpoint's config); drop {'it' if len(ignored) == 1 else 'them'}, or start "
                          f"a new trial without --resume")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_save_path(args.save)
        cfg = None if args.resume else config_from_args(args)   # bad input fails here, before torch loads
        from .batched import run_trial   # heavy: torch (~1 s); --help and bad input answer without it
        from .trainer import Trial       # heavy: torch, as batched
        trial = Trial.resume(args.resume, device=args.device) if args.resume else Trial(cfg)
        if args.resume:
            check_resume_fast_path(args, trial.cfg)
            check_resume_options(parser, args, trial.cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def on_eval(m, t):
        if not args.quiet:
            print(format_progress(m, t.cfg.epochs), flush=True)
        if args.save:
            t.save(args.save)

    summary = run_trial(trial, on_eval=on_eval)
    print(json.dumps(summary), flush=True)
    # a run stopped by --decide-early ended as asked (its branch is its answer); a diverged one did not
    return 0 if summary["status"] in ("completed", "decided") else 1


if __name__ == "__main__":
    sys.exit(main())
