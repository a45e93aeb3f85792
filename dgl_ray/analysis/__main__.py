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

from ..storage import Location
from .html import write_html
from .live import strip_watch, watch

ACCEPTED = ("a sweep storage folder (results.parquet or Ray Tune trial folders with params.json/"
            "result.json), a results.parquet file, or a paper archive (CSV/JSON results or a folder "
            "of them)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgl_ray.analysis",
                                     description="Tables and figures of dual-gradient learning runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("report", help="write a Markdown report and print its tables")
    rp.add_argument("path", help="sweep folder, results.parquet, or paper archive (a local path, or a URI pyarrow reads such as s3://bucket/dgl/NAME for a sweep)")
    rp.add_argument("--out", type=Path, default=None, help="output folder (default ./report-<name>)")
    rp.add_argument("--no-figures", action="store_true", help="tables only")
    rp.add_argument("--n-boot", type=int, default=200, help="bootstrap draws for the critical point")
    rp.add_argument("--quiet", action="store_true", help="do not print the tables")
    rp.add_argument("--eta-default", type=float, default=None, metavar="ETA",
                    help="η of archive files that state none (default: left empty and said)")
    rp.add_argument("--compare", default=None, metavar="PATH",
                    help="another result set (a paper archive folder or another sweep) beside these runs "
                         "in every table and figure where both have data")
    rp.add_argument("--watch", type=float, default=None, metavar="N",
                    help="a running sweep: rebuild the report every N seconds until the sweep ends")
    rp.add_argument("--no-html", action="store_true", help="no report.html beside report.md")
    args = parser.parse_args(argv)
    if args.eta_default is not None and not 0.0 <= args.eta_default < 1.0:
        print(f"error: --eta-default {args.eta_default}: η must be in [0, 1)", file=sys.stderr)
        return 2
    if args.watch is not None:
        if not args.watch > 0:
            print(f"error: --watch {args.watch:g}: the refresh period must be > 0 seconds", file=sys.stderr)
            return 2
        try:
            is_folder = _location(args.path).is_dir()
        except (ValueError, OSError) as exc:
            print(f"error: {args.path}: {exc}", file=sys.stderr)
            return 2
        if not is_folder:
            print(f"error: --watch: {args.path} is not a sweep folder (a running sweep's "
                  "<storage>/<name>)", file=sys.stderr)
            return 2
        return watch(main, strip_watch(list(sys.argv[1:] if argv is None else argv)), args.watch, args.path)

    import matplotlib
    matplotlib.use("Agg")  # a report never needs a window
    from ..rows import ResultsFallbackWarning   # heavy: pandas; --help and argument errors answer without it
    from .frames import is_sweep_path, load_experiment, load_legacy, missing_trials   # heavy: pandas, as rows
    from .report import build_report           # heavy: matplotlib, scipy; as rows

    path: str = args.path
    try:
        loc = _location(path)
        found = loc.exists()
    except (ValueError, OSError) as exc:     # a bad URI, an unreachable endpoint: one line
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: {path}: no such file or folder; expected {ACCEPTED}", file=sys.stderr)
        return 2
    out = args.out or Path.cwd() / f"report-{loc.name}"
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
        if is_sweep_path(loc):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResultsFallbackWarning)
                df = load_experiment(loc)
            _print_fallbacks(caught)
        elif not loc.is_local:
            raise ValueError("no sweep there (results.parquet or Tune trial folders); a paper archive "
                             "must be a local folder")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # skipped files are listed in the report instead
                df = load_legacy(path, eta_default=args.eta_default)
    except (ValueError, OSError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: {path}: no results found; expected {ACCEPTED}", file=sys.stderr)
        for p, why in df.attrs.get("skipped", []):
            print(f"  skipped {p}: {why}", file=sys.stderr)
        return 2
    other = None
    if args.compare is not None:
        from .compare import append_comparison, labels_for, load_other   # heavy: as report; only with --compare
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResultsFallbackWarning)
                other = load_other(args.compare)
            _print_fallbacks(caught)
        except (ValueError, OSError) as exc:
            print(f"error: --compare {args.compare}: {exc}", file=sys.stderr)
            return 2
    rep = build_report(df, out, source=str(path), figures=not args.no_figures,
                       n_boot=args.n_boot, echo=not args.quiet, sections=family_sections(df))
    if other is not None:
        append_comparison(rep, df, other, labels_for(path, args.compare),
                          figures=not args.no_figures, echo=not args.quiet, n_boot=args.n_boot)
    if not args.no_html:
        print(f"wrote {write_html(rep.path)} (self-contained: figures embedded)")
    for p, why in df.attrs.get("skipped", []):
        print(f"skipped {p}: {why}")
    for exp, why, n in df.attrs.get("excluded", []):
        print(f"excluded {n} rows of {exp}: {why}")
    for note in df.attrs.get("notes", []):
        print(f"note: {note}")
    damaged = df.attrs.get("damaged_lines") or []
    if damaged:                 # lines of result.json that were not JSON: their rows are missing
        print(f"{len(damaged)} damaged result.json line(s) skipped: "
              + ", ".join(f"{f}:{n}" for f, n in damaged[:5]) + (" ..." if len(damaged) > 5 else ""))
    counts = missing_trials(df)
    if counts.get("missing"):   # a running or crashed sweep: the tables hold the finished trials only
        never = counts["never_started"]
        print(f"\n{counts['missing']} trial(s) missing from the tables: {counts['unfinished']} unfinished, "
              f"{counts['errored']} errored" + (f", {never} never started" if never else "")
              + f" ({counts['finished']} finished"
              + (f", {counts['decided']} decided early" if counts.get("decided") else "") + ")")
    print(f"\nwrote {rep.path} ({len(rep.tables)} tables, {len(rep.figures)} figures)")
    return 0


def family_sections(df) -> dict:
    """The report sections of the registered families these rows name (``Family.report``): the report
    command reads the registry; dgl_ray.analysis itself never imports the families."""
    from ..sweeps.family import find     # heavy: the families' modules import Ray; only when a report is made
    names = df["family"].dropna().astype(str).unique() if "family" in df else []
    return {name: fam.report for name in names if (fam := find(name)) is not None}


def _location(path: str):
    return Location.of(path)


def _print_fallbacks(caught) -> None:
    """Say each results.parquet that was replaced by its trial folders (one line each); re-emit the rest."""
    from ..rows import ResultsFallbackWarning   # heavy: pandas; main imported it before any call
    for w in caught:
        if issubclass(w.category, ResultsFallbackWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


if __name__ == "__main__":
    sys.exit(main())
