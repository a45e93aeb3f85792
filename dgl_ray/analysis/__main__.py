"""``python -m dgl_ray.analysis report PATH``: Markdown report of a sweep or of the paper's archive.

PATH is a sweep's storage folder (``results.parquet`` and/or Ray Tune trial folders, one sweep or
several), a ``results.parquet`` file, or the paper's archive (a CSV/JSON file or a folder of them).
The tables are printed to the terminal; ``report.md`` and the figures go to ``--out`` (default
``./report-<name of PATH>``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ACCEPTED = ("a sweep storage folder (results.parquet or Ray Tune trial folders with params.json/"
            "result.json), a results.parquet file, or a paper archive (CSV/JSON results or a folder "
            "of them)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgl_ray.analysis",
                                     description="Tables and figures of dual-gradient learning runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("report", help="write a Markdown report and print its tables")
    rp.add_argument("path", type=Path, help="sweep folder, results.parquet, or paper archive")
    rp.add_argument("--out", type=Path, default=None, help="output folder (default ./report-<name>)")
    rp.add_argument("--no-figures", action="store_true", help="tables only")
    rp.add_argument("--n-boot", type=int, default=200, help="bootstrap draws for the critical point")
    rp.add_argument("--quiet", action="store_true", help="do not print the tables")
    args = parser.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")  # a report never needs a window
    from .frames import is_sweep_path, load_experiment, load_legacy, missing_trials
    from .report import build_report

    path: Path = args.path
    if not path.exists():
        print(f"error: {path}: no such file or folder; expected {ACCEPTED}", file=sys.stderr)
        return 2
    out = args.out or Path.cwd() / f"report-{path.resolve().name}"
    try:     # the output folder is checked before any work (a file in the way fails here, not at the end)
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        print(f"error: --out {out}: cannot write a report there ({exc.strerror or exc}); "
              f"give a folder path", file=sys.stderr)
        return 2
    try:
        if is_sweep_path(path):
            df = load_experiment(path)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # skipped files are listed in the report instead
                df = load_legacy(path)
    except (ValueError, OSError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: {path}: no results found; expected {ACCEPTED}", file=sys.stderr)
        for p, why in df.attrs.get("skipped", []):
            print(f"  skipped {p}: {why}", file=sys.stderr)
        return 2
    rep = build_report(df, out, source=str(path), figures=not args.no_figures,
                       n_boot=args.n_boot, echo=not args.quiet)
    for p, why in df.attrs.get("skipped", []):
        print(f"skipped {p}: {why}")
    counts = missing_trials(df)
    if counts.get("missing"):   # a running or crashed sweep: the tables hold the finished trials only
        never = counts["never_started"]
        print(f"\n{counts['missing']} trial(s) missing from the tables: {counts['unfinished']} unfinished, "
              f"{counts['errored']} errored" + (f", {never} never started" if never else "")
              + f" ({counts['finished']} finished)")
    print(f"\nwrote {rep.path} ({len(rep.tables)} tables, {len(rep.figures)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
