"""λ schedules inside one trial, and the LR schedule.

A λ schedule is plain data: a list of segments, run one after the other.
  {"kind": "constant", "value": 0.3, "epochs": 30, "name": "main"}
  {"kind": "ladder", "points": [0.20, 0.64, 0.22], "step": 0.02, "hold": 1,
   "refine": [0.42, 0.58, 0.01]}            # up-then-down, finer step inside [0.42, 0.58] (R1/R2)
  {"kind": "ramp", "start": 0.3, "stop": 0.6, "epochs": 20}   # linear in the epoch (Q2)
A jump at epoch N (Q2 quench, W2) is two constant segments. Grid values are rounded to 10
decimals, so ``0.42:0.56:0.02`` is exactly 8 values with no float drift.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

_DECIMALS = 10


def _r(x: float) -> float:
    return round(float(x), _DECIMALS)


def check_lambda(value, where: str = "lambda") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r} is not a number; λ must be a number in [0, 1]") from None
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise ConfigError(f"{where}={value!r} is outside [0, 1]; λ mixes the two gradients and must lie in [0, 1]")
    return v


def arange_inclusive(start: float, stop: float, step: float, what: str = "range") -> list[float]:
    """start, start+step, ..., stop (stop included), free of float drift. The step's sign must point
    from start to stop and the distance must be a whole number of steps."""
    start, stop, step = float(start), float(stop), float(step)
    if step == 0 or math.isnan(step):
        raise ConfigError(f"{what}: step={step!r} never reaches stop={stop}; the step must be non-zero")
    n_float = (stop - start) / step
    n = round(n_float)
    if n_float < -1e-9:
        raise ConfigError(
            f"{what}: step={step} goes away from stop={stop} when starting at {start}; "
            f"use a {'positive' if stop > start else 'negative'} step")
    if abs(n_float - n) > 1e-6:
        raise ConfigError(
            f"{what}: {start} to {stop} is not a whole number of steps of {step} "
            f"({n_float:.4f} steps); the ladder would never land on its stop")
    return [_r(start + i * step) for i in range(n + 1)]


def parse_range(text: str, what: str = "range") -> list[float]:
    """'0.42:0.56:0.02' -> 8 values (stop included); '0.3' -> [0.3]; '0.1,0.3,0.5' -> 3 values."""
    text = str(text).strip()
    if not text:
        raise ConfigError(f"{what}: empty range; give start:stop:step, a comma list or one value")
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            return arange_inclusive(*parts, what=f"{what} {text!r}")
        return [_r(float(p)) for p in text.split(",") if p.strip()]
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"{what}: cannot read {text!r}; expected start:stop:step (e.g. 0.42:0.56:0.02), "
                          f"a comma list (0.3,0.5) or one number") from None


def ladder_values(points, step: float, refine=None, what: str = "ladder") -> list[float]:
    """The λ values of a ladder through ``points`` (e.g. [up_start, top, down_end]), one leg per pair.
    ``refine`` = (lo, hi, fine_step): inside [lo, hi] the finer step is used as well (R1/R2: 0.01 in
    [0.42, 0.58]). Turning points are not repeated."""
    if len(points) < 2:
        raise ConfigError(f"{what}: points={points!r} needs at least a start and a stop")
    step = abs(float(step))
    values: list[float] = []
    for a, b in zip(points[:-1], points[1:]):
        a, b = float(a), float(b)
        if a == b:
            raise ConfigError(f"{what}: leg {a} -> {b} has no length; consecutive points must differ")
        sgn = 1.0 if b > a else -1.0
        leg = set(arange_inclusive(a, b, sgn * step, what=f"{what} leg {a}->{b}"))
        if refine is not None:
            lo, hi, fine = (float(v) for v in refine)
            if not (fine > 0 and lo < hi):
                raise ConfigError(f"{what}: refine={refine!r} must be (lo, hi, fine_step) with lo < hi, fine_step > 0")
            fine_grid = arange_inclusive(lo, hi, fine, what=f"{what} refine window")
            leg |= {v for v in fine_grid if min(a, b) - 1e-12 <= v <= max(a, b) + 1e-12}
        ordered = sorted(leg, reverse=sgn < 0)
        values.extend(ordered if not values else ordered[1:])
    for v in values:
        check_lambda(v, f"{what} value")
    return values


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch of the trial runs with (0-based epoch index within the trial)."""
    lam: float
    phase: str
    direction: str | None
    step_index: int  # index of the λ step within its segment (ladders); 0 otherwise


def _segment_plans(seg: dict, i: int) -> list[EpochPlan]:
    if not isinstance(seg, dict) or "kind" not in seg:
        raise ConfigError(f"lambda schedule segment #{i}={seg!r} must be a dict with a 'kind' "
                          f"(constant, ladder or ramp)")
    kind = seg["kind"]
    name = seg.get("name")
    known = {"constant": {"kind", "value", "epochs", "name"},
             "ladder": {"kind", "points", "step", "hold", "refine", "name"},
             "ramp": {"kind", "start", "stop", "epochs", "name"}}
    if kind not in known:
        raise ConfigError(f"lambda schedule segment #{i}: kind={kind!r} is unknown; allowed: constant, ladder, ramp")
    extra = set(seg) - known[kind]
    if extra:
        raise ConfigError(f"lambda schedule segment #{i} ({kind}): unknown keys {sorted(extra)}; "
                          f"allowed: {sorted(known[kind])}")

    def epochs_of(key="epochs") -> int:
        e = seg.get(key)
        if not isinstance(e, int) or isinstance(e, bool) or e < 1:
            raise ConfigError(f"lambda schedule segment #{i} ({kind}): {key}={e!r} must be an integer >= 1")
        return e

    if kind == "constant":
        lam = check_lambda(seg.get("value"), f"lambda schedule segment #{i} value")
        return [EpochPlan(lam, name or "main", None, 0)] * epochs_of()
    if kind == "ramp":
        a = check_lambda(seg.get("start"), f"ramp #{i} start")
        b = check_lambda(seg.get("stop"), f"ramp #{i} stop")
        n = epochs_of()
        d = "up" if b > a else "down" if b < a else None
        return [EpochPlan(_r(a + (b - a) * (k / (n - 1) if n > 1 else 1.0)), name or "ramp", d, k) for k in range(n)]
    # ladder
    hold = seg.get("hold", 1)
    if not isinstance(hold, int) or isinstance(hold, bool) or hold < 1:
        raise ConfigError(f"ladder #{i}: hold={hold!r} must be an integer number of epochs >= 1")
    points = seg.get("points")
    if not isinstance(points, (list, tuple)):
        raise ConfigError(f"ladder #{i}: points={points!r} must be a list like [start, stop] or [start, top, end]")
    for p in points:
        check_lambda(p, f"ladder #{i} point")
    if "step" not in seg:
        raise ConfigError(f"ladder #{i}: a step is required (e.g. 0.02)")
    values = ladder_values(points, seg["step"], seg.get("refine"), what=f"ladder #{i}")
    plans = []
    for k, v in enumerate(values):
        # The direction of a value is that of the leg it belongs to; the turning point closes the
        # leg it ends, so an up-then-down ladder has its top in the 'up' leg.
        prev = values[k - 1] if k else None
        nxt = values[k + 1] if k + 1 < len(values) else None
        if prev is not None:
            d = "up" if v > prev else "down"
        else:
            d = "up" if (nxt is not None and nxt > v) else "down"
        plans.extend([EpochPlan(v, name or "ladder", d, k)] * hold)
    return plans


def expand_lambda_schedule(segments) -> list[EpochPlan]:
    """One EpochPlan per epoch of the trial."""
    if isinstance(segments, dict):
        segments = [segments]
    if not isinstance(segments, (list, tuple)) or not segments:
        raise ConfigError(f"lambda schedule={segments!r} must be a non-empty list of segments")
    plans: list[EpochPlan] = []
    for i, seg in enumerate(segments):
        plans.extend(_segment_plans(seg, i))
    return plans


def lr_at(epoch: int, lr: float, milestones, gamma: float, multiplier: float = 1.0) -> float:
    """MultiStep LR as torch's MultiStepLR gives it, as a plain function of the 0-based epoch:
    lr * multiplier * gamma ** (number of milestones <= epoch). Empty milestones = constant."""
    return lr * multiplier * gamma ** sum(1 for m in milestones if epoch >= m)
