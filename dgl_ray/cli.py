"""``dgl-ray``: one console command for the ``python -m`` entry points.

    dgl-ray sweep <family> [options]     = python -m dgl_ray.sweeps.<family> [options]
    dgl-ray sweep --config PRESET.toml   = python -m dgl_ray.sweeps --config PRESET.toml
    dgl-ray train [options]              = python -m dgl_ray.train [options]
    dgl-ray report PATH [options]        = python -m dgl_ray.analysis report PATH [options]

Each subcommand hands its arguments on unchanged, so options, help texts, errors and exit codes are
those of the ``python -m`` form. The families and their one-line summaries come from the registry
(``dgl_ray.sweeps.family``).
"""
from __future__ import annotations

import sys

from .analysis.__main__ import main as analysis_main
from .sweeps.__main__ import main as preset_main
from .sweeps.family import find, summaries
from .train import main as train_main

USAGE = """usage: dgl-ray <command> [arguments]

Dual-gradient learning experiments, from one trial to cluster-scale Ray Tune sweeps.

commands:
  sweep <family> [options]    run a sweep family (same as python -m dgl_ray.sweeps.<family>)
  sweep --config PRESET.toml  run a paper preset with the family it names (sweeps/*.toml)
  train [options]             one trial, no Ray (same as python -m dgl_ray.train)
  report PATH [options]       tables, figures, HTML of a sweep or of the paper's archive
                              (same as python -m dgl_ray.analysis report)

families (dgl-ray sweep <family> --help for its options):
"""

SWEEP_USAGE = """usage: dgl-ray sweep <family> [options]
       dgl-ray sweep --config PRESET.toml [options]

Run one experiment family through Ray Tune (the same as python -m dgl_ray.sweeps.<family>), or a paper
preset (sweeps/*.toml: S1, S2, ... on CIFAR-10/ResNet-18) with the family it names; flags override the
preset. --dry-run prints the plan and its size and runs nothing.

families (dgl-ray sweep <family> --help for its options):
"""


def family_lines() -> str:
    """One line per family: its name and summary (read without loading any family module)."""
    return "\n".join(f"  {name:<14}{summary}" for name, summary in summaries().items()) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE + family_lines())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "sweep":
        if not rest or rest[0] in ("-h", "--help"):
            print(SWEEP_USAGE + family_lines())
            return 0 if rest else 2
        if rest[0].startswith("-"):                       # --config PRESET.toml
            return preset_main(rest)
        family = find(rest[0])
        if family is None:
            print(f"error: unknown sweep family {rest[0]!r}; expected one of {', '.join(summaries())}",
                  file=sys.stderr)
            return 2
        return family.main(rest[1:])
    if cmd == "train":
        return train_main(rest)
    if cmd == "report":
        return analysis_main(["report", *rest])
    print(f"error: unknown command {cmd!r}; expected sweep, train or report (dgl-ray --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
