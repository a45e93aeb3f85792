"""What a sweep plan will put on storage, estimated before it runs (printed by ``--dry-run``).

A trial checkpoint holds the model, its SGD momentum and the cached g_v (three tensors of the
model's size, in the trial's dtype) plus RNG states and the history (≈ 20 KB). Tune keeps the latest
``--keep-checkpoints`` of each Tune trial; a grouped Tune trial's checkpoint holds one file per member.
Each Tune trial also writes ``params.json`` and ``result.json`` (one JSON line per report).
"""
from __future__ import annotations

import torch

from ..config import RUNTIME_FIELDS, TrialConfig, label_fields, shape_key
from ..models import build_model
from ..registry import DATASETS
from ..rows import unpack_group

SMALL_STATE_BYTES = 20_000      # RNG states, optimizer/scheduler bookkeeping, history (measured: digits ≈ 15 KB)
ROW_BYTES = 1_500               # one report line in result.json (measured: ≈ 1.2 KB for a digits trial)
PER_TUNE_TRIAL_FILES = 2        # params.json, result.json


def model_numel(model: str, width: float, dataset: str, _cache: dict = {}) -> int:  # noqa: B006 - a memo
    key = (model, width, dataset)
    if key not in _cache:
        with torch.device("meta"):          # shapes only: no memory, no init cost
            m = build_model(model, DATASETS[dataset].num_classes, DATASETS[dataset].shape[0], width)
        _cache[key] = sum(p.numel() for p in m.parameters()) + sum(b.numel() for b in m.buffers())
    return _cache[key]


def estimate(configs: list[dict], keep: int) -> dict:
    """Bytes, rows and files of a plan's Tune configs (plain or ``{"group": [...]}``), at most: chained
    plans are counted as if every preparation trial were accepted."""
    labels = set(label_fields())
    ckpt_bytes = rows = files = members = 0
    resolved: dict = {}
    for c in configs:
        group = unpack_group(c)
        files += PER_TUNE_TRIAL_FILES + keep * len(group)
        for m in group:
            members += 1
            runtime = m
            # the checkpoint's size and the number of evaluations do not depend on the seed or a constant λ
            # (labels such as plan_id differ per trial: the shape is that of the trial fields)
            key = shape_key({k: v for k, v in m.items() if k not in labels})
            if key not in resolved:
                trial = {k: v for k, v in m.items() if k not in RUNTIME_FIELDS and k not in labels}
                rc = TrialConfig.from_dict(trial)
                item = 8 if rc.dtype == "float64" else 4
                numel = model_numel(rc.model, rc.width, rc.dataset)
                resolved[key] = (3 * numel * item + SMALL_STATE_BYTES, -(-rc.epochs // rc.eval_every))
            one, evals = resolved[key]
            exports = 1 if runtime.get("export_checkpoint") else 0
            ckpt_bytes += one * (keep + exports)
            files += exports
            rows += evals
    return {"members": members, "tune_trials": len(configs), "checkpoint_bytes": ckpt_bytes,
            "rows": rows, "log_bytes": rows * ROW_BYTES, "files": files,
            "total_bytes": ckpt_bytes + rows * ROW_BYTES}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def print_estimate(spec, opts) -> dict:
    e = estimate(spec.searcher.plan_configs(), opts.keep_checkpoints)
    n = max(1, e["members"])
    print(f"  storage (estimate, at most): {_size(e['total_bytes'])} = checkpoints {_size(e['checkpoint_bytes'])} "
          f"(latest {opts.keep_checkpoints} per Tune trial, --keep-checkpoints) + logs {_size(e['log_bytes'])}; "
          f"{e['rows']} rows, {e['files']} files ({e['files'] / n:.1f} per trial)")
    if e["total_bytes"] > opts.storage_warn_gb * 1e9:
        print(f"  warning: the plan needs about {_size(e['total_bytes'])}, more than --storage-warn-gb "
              f"{opts.storage_warn_gb:g}: check the free space of {opts.storage}")
    return e
