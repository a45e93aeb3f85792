"""The report people look at: trajectories, the shaded loop, --compare side by side, the
self-contained HTML page, --watch on a running sweep."""
import base64
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from dgl_ray.analysis import figures as F
from dgl_ray.analysis import fake_sweep_frame, write_fake_sweep
from dgl_ray.analysis.__main__ import main as analysis_main
from dgl_ray.analysis.live import strip_watch, watch

REPO = Path(__file__).resolve().parents[1]
# $DGL_SHARED/paper-results/S1 when set, else the copy of the paper's S1 archive in tests/data (a plain clone has it)
S1 = (Path(os.environ["DGL_SHARED"]) / "paper-results" if os.environ.get("DGL_SHARED")
      else REPO / "tests" / "data" / "paper-results") / "S1"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("href", "src"):
            if a.get(k) and tag != "img":
                self.links.append(a[k])


def test_error_trajectories_one_line_per_run_and_a_median():
    df = fake_sweep_frame(lambdas=(0.3, 0.6), seeds=range(3), epochs=4)
    fig = F.error_trajectories(df)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax, lam in zip(axes, (0.3, 0.6)):
        assert f"λ={lam:g}: 3 runs" in ax.get_title()
        assert len(ax.lines) == 3 + 1 + 2                   # runs, median, the L/H thresholds
        colors = {l.get_color() for l in ax.lines[:3]}
        assert colors <= set(F.BRANCH_COLORS.values())
        assert ax.get_xlabel() == "epoch" and "test error" in ax.get_ylabel()
    lows = {l.get_color() for l in axes[0].lines[:3]}, {l.get_color() for l in axes[1].lines[:3]}
    assert lows[0] != lows[1]                                # λ 0.3 ordered, λ 0.6 collapsed


def test_hysteresis_loop_shades_the_gap():
    rows = []
    for d, lams, errs in (("up", [0.2, 0.3, 0.4], [0.1, 0.15, 0.7]), ("down", [0.4, 0.3, 0.2], [0.7, 0.6, 0.3])):
        for k, (lam, e) in enumerate(zip(lams, errs)):
            rows.append(dict(run="r0", experiment="x", seed=0, epoch=k + (3 if d == "down" else 0) + 1,
                             direction=d, test_error=e, **{"lambda": lam}))
    from dgl_ray.analysis import normalise
    fig = F.hysteresis_loop(normalise(pd.DataFrame(rows)))
    ax = fig.axes[0]
    assert any("gap" in (c.get_label() or "") for c in ax.collections)
    assert "λ" in ax.get_xlabel() and "test error" in ax.get_ylabel()


def test_side_by_side_draws_each_source_in_its_own_panel_group():
    a = fake_sweep_frame(lambdas=(0.3, 0.5), seeds=range(2), epochs=2)
    b = fake_sweep_frame(lambdas=(0.4, 0.5, 0.6), seeds=range(3), epochs=2)
    fig = F.side_by_side(F.coexistence_map, {"new": a, "paper": b})
    assert [s.get_suptitle() for s in fig.subfigs] == ["new", "paper"]
    ticks = [[t.get_text() for t in s.axes[0].get_xticklabels()] for s in fig.subfigs]
    assert ticks == [["0.3", "0.5"], ["0.4", "0.5", "0.6"]]


def _report(args, capsys):
    rc = analysis_main(["report", *map(str, args)])
    return rc, capsys.readouterr()


def test_compare_and_html(tmp_path, capsys):
    new = write_fake_sweep(tmp_path / "s", name="digits", lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=3)
    old = write_fake_sweep(tmp_path / "a", name="paper", lambdas=(0.4, 0.5), seeds=range(5), epochs=3,
                           lambda_c=0.5)
    out = tmp_path / "rep"
    rc, cap = _report([new, "--compare", old, "--out", out, "--n-boot", "10", "--quiet"], capsys)
    assert rc == 0, cap.err
    md = (out / "report.md").read_text()
    assert "## Comparison: digits beside paper" in md
    branch = md.split("### branch_table (fresh runs)")[1].split("###")[0]
    assert "| digits | 0.3 |" in branch and "| paper | 0.4 |" in branch and "| paper | 0.5 | 5 |" in branch
    for name in ("coexistence_map", "error_histograms", "error_trajectories"):
        assert (out / "figures" / f"compare_{name}.png").stat().st_size > 2000
    # the HTML page: the same content, every figure embedded, nothing loaded from outside
    html = (out / "report.html").read_text()
    page = _Page()
    page.feed(html)
    assert len(page.imgs) == md.count("![") and page.imgs
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.tags.count("table") == md.count("\n|---")
    assert page.tags.count("h2") == md.count("\n## ") and not page.links   # loads nothing from outside
    assert "wrote " + str(out / "report.html") in cap.out


def test_compare_bad_path_is_one_line_before_work(tmp_path, capsys):
    new = write_fake_sweep(tmp_path / "s", name="digits", lambdas=(0.3,), seeds=range(2), epochs=2)
    rc, cap = _report([new, "--compare", tmp_path / "nope", "--out", tmp_path / "rep"], capsys)
    err = cap.err.strip()
    assert rc == 2 and err.startswith("error: --compare") and len(err.splitlines()) == 1
    assert not (tmp_path / "rep" / "report.md").exists()


def test_compare_with_the_s1_archive(tmp_path, capsys):
    new = write_fake_sweep(tmp_path / "s", name="coexistence", lambdas=(0.3, 0.5), seeds=range(3), epochs=3)
    rc, cap = _report([new, "--compare", S1, "--out", tmp_path / "rep", "--quiet", "--n-boot", "10"], capsys)
    assert rc == 0, cap.err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| S1 | 0.48 | 50 | 30 | 20 | 0 |" in md          # the paper's S1 counts beside the new runs
    assert (tmp_path / "rep" / "figures" / "compare_coexistence_map.png").exists()


def test_watch_refreshes_until_the_sweep_writes_its_results(tmp_path, capsys):
    folder = write_fake_sweep(tmp_path, name="running", lambdas=(0.3, 0.6), seeds=range(2), epochs=2,
                              parquet=False)              # trial folders only: a sweep still running
    argv = ["report", str(folder), "--out", str(tmp_path / "rep"), "--quiet", "--no-figures",
            "--watch", "0.01"]
    assert strip_watch(argv) == argv[:-2]
    sleeps = []

    def sleep(s):                                        # the sweep ends during the second wait
        sleeps.append(s)
        if len(sleeps) == 2:
            fake_sweep_frame(lambdas=(0.3, 0.6), seeds=range(2), epochs=2).to_parquet(folder / "results.parquet")

    rc = watch(analysis_main, strip_watch(argv), 0.01, folder, sleep=sleep, max_refreshes=10)
    out = capsys.readouterr().out
    assert rc == 0 and out.count("=== report of") == 3 and "watch ends" in out
    assert out.count("wrote ") >= 3 and sleeps == [0.01, 0.01]
    assert analysis_main(["report", str(folder), "--watch", "0"]) == 2


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.slow   # ≈ 18 s (browser start); run with: pytest -m slow tests/test_analysis_html.py
@pytest.mark.skipif(BROWSER is None, reason="no headless browser here (apt-get install chromium)")
def test_html_renders_in_a_headless_browser(tmp_path, capsys):
    """The documented check (dgl_ray.analysis.html): a headless screenshot of the page shows the report."""
    import numpy as np
    from matplotlib.image import imread
    new = write_fake_sweep(tmp_path / "s", name="digits", lambdas=(0.3, 0.6), seeds=range(3), epochs=3)
    rc, _ = _report([new, "--out", tmp_path / "rep", "--quiet", "--n-boot", "10"], capsys)
    assert rc == 0
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", (tmp_path / "rep" / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    img = imread(shot)[..., :3]
    ink = (img.mean(axis=2) < 0.9).mean()                   # share of non-white pixels
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert 0.02 < ink < 0.9 and colours > 50                 # text, tables and embedded figures drawn


def test_compare_puts_both_sources_on_one_h_fraction_axis_and_compares_lambda_c(tmp_path, capsys):
    new = write_fake_sweep(tmp_path / "s", name="digits", lambdas=(0.3, 0.4, 0.45, 0.5, 0.6), seeds=range(6),
                           epochs=3, lambda_c=0.45)
    old = write_fake_sweep(tmp_path / "a", name="paper", lambdas=(0.45, 0.5, 0.55, 0.6), seeds=range(6),
                           epochs=3, lambda_c=0.55)
    out = tmp_path / "rep"
    rc, cap = _report([new, "--compare", old, "--out", out, "--n-boot", "30", "--quiet"], capsys)
    assert rc == 0, cap.err
    md = (out / "report.md").read_text()
    lc = md.split("### lambda_c (fresh runs)")[1].split("###")[0]
    assert "| digits |" in lc and "| paper |" in lc and "| difference (digits − paper) |" in lc
    assert (out / "figures" / "compare_h_fraction.png").stat().st_size > 2000
    assert md.index("compare_h_fraction.png") < md.index("compare_coexistence_map.png")   # the overlay first
