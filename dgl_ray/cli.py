"""``dgl-ray``: one console command for the ``python -m`` entry points.

    dgl-ray sweep <family> [options]     = python -m dgl_ray.sweeps.<family> [options]
    dgl-ray sweep --config PRESET.toml   = python -m dgl_ray.sweeps --config PRESET.toml
    dgl-ray train [options]              = python -m dgl_ray.train [options]
    dgl-ray report PATH [options]        = python -m dgl_ray.analysis report PATH [options]

Each subcommand hands its arguments on unchanged, so options, help texts, errors and exit codes are
those of the ``python -m`` form.
"""
from __future__ import annotations

import importlib
import sys

from .sweeps import FAMILIES

_SWEEP_DOCS = {
    "coexistence": "S1 coexistence map: fresh runs, λ × seeds",
    "bimodality": "S2 deep bimodality: many seeds at a few λ",
    "scan": "M1–M3, N1/N2 λ scans and λ × η phase diagram",
    "finite_size": "Q1 finite-size scaling: width × λ × seeds",
    "schedules": "Q2 λ schedules: quenches and ramps",
    "hysteresis": "R1/R2 loops in one run; Tα/Tβ/Tγ sweeps from checkpoints",
    "spinodal": "R3, T1/T2 spinodal ladders",
    "lifetime": "T1a/T13 metastable lifetime (survival)",
    "trap": "Tδ trap escape interventions",
    "intervention": "W2 causal jumps from ordered/collapse checkpoints",
    "universality": "V1–V4 universality (asymmetric noise, trusted subset, ResNet-34, CIFAR-100)",
}

USAGE = f"""usage: dgl-ray <command> [arguments]

Dual-gradient learning experiments, from one trial to cluster-scale Ray Tune sweeps.

commands:
  sweep <family> [options]    run a sweep family (same as python -m dgl_ray.sweeps.<family>)
  sweep --config PRESET.toml  run a paper preset with the family it names (sweeps/*.toml)
  train [options]             one trial, no Ray (same as python -m dgl_ray.train)
  report PATH [options]       tables, figures, HTML of a sweep or of the paper's archive
                              (same as python -m dgl_ray.analysis report)

families (dgl-ray sweep <family> --help for its options):
""" + "\n".join(f"  {f:<14}{_SWEEP_DOCS.get(f, '')}" for f in FAMILIES) + "\n"

SWEEP_USAGE = """usage: dgl-ray sweep <family> [options]
       dgl-ray sweep --config PRESET.toml [options]

Run one experiment family through Ray Tune (the same as python -m dgl_ray.sweeps.<family>), or a paper
preset (sweeps/*.toml: S1, S2, ... on CIFAR-10/ResNet-18) with the family it names; flags override the
preset. --dry-run prints the plan and its size and runs nothing.

families (dgl-ray sweep <family> --help for its options):
""" + "\n".join(f"  {f:<14}{_SWEEP_DOCS.get(f, '')}" for f in FAMILIES) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "sweep":
        if not rest or rest[0] in ("-h", "--help"):
            print(SWEEP_USAGE)
            return 0 if rest else 2
        if rest[0].startswith("-"):                       # --config PRESET.toml
            from .sweeps.__main__ import main as preset_main
            return preset_main(rest)
        if rest[0] not in FAMILIES:
            print(f"error: unknown sweep family {rest[0]!r}; expected one of {', '.join(FAMILIES)}",
                  file=sys.stderr)
            return 2
        mod = importlib.import_module(f"dgl_ray.sweeps.{rest[0]}")
        return mod.main(rest[1:])
    if cmd == "train":
        from .train import main as train_main
        return train_main(rest)
    if cmd == "report":
        from .analysis.__main__ import main as analysis_main
        return analysis_main(["report", *rest])
    print(f"error: unknown command {cmd!r}; expected sweep, train or report (dgl-ray --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
