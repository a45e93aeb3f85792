"""A family from one file (tests/toy_family.py) goes through the whole tool: dgl-ray --help, --dry-run,
a tiny real sweep on a local Ray, and the report, which shows the toy's own part."""
import pytest

from dgl_ray.errors import ConfigError
from dgl_ray.sweeps.family import Family, families, get, register
from tests import toy_family


def test_registered_family_is_listed_by_dgl_ray_help(capsys):
    from dgl_ray.cli import main
    assert main(["--help"]) == 0
    assert "toy           toy family of the tests: 2 λ × 1 seed, 1 epoch" in capsys.readouterr().out
    assert get("toy") is toy_family.FAMILY and "toy" in families()


def test_toy_dry_run_plans_two_trials_with_its_label(tmp_path, capsys):
    assert toy_family.FAMILY.main(["--storage", str(tmp_path), "--tag", "red", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 trials" in out and not any(tmp_path.iterdir()), out
    from dgl_ray.tune.options import parse
    configs = toy_family.plan(parse(toy_family.FAMILY, ["--tag", "red"])).searcher.plan_configs()
    assert [c["lambda"] for c in configs] == [0.3, 0.5] and {c["tag"] for c in configs} == {"red"}


def test_report_command_shows_a_registered_familys_own_part(tmp_path):
    from dgl_ray.analysis import fake_sweep_frame
    from dgl_ray.analysis.__main__ import main as report
    rows = fake_sweep_frame(name="toy", lambdas=(0.3, 0.5), seeds=range(1), epochs=1).assign(family="toy", tag="red")
    rows.to_parquet(tmp_path / "results.parquet")
    out = tmp_path / "report"
    assert report(["report", str(tmp_path / "results.parquet"), "--out", str(out), "--no-figures", "--no-html",
                   "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "## toy" in md and "### tag_table" in md and "| red | 2 |" in md, md
    assert "### branch_table" not in md           # the toy's section is its own parts only


@pytest.mark.slow   # a real sweep on a local Ray: ~25 s on the shared 2-core machine
def test_toy_sweep_and_report_show_its_part(tmp_path, capsys):
    from dgl_ray.analysis.__main__ import main as report
    try:
        rc = toy_family.FAMILY.main(["--storage", str(tmp_path), "--name", "toy", "--tag", "red",
                                     "--num-cpus", "2", "--progress-interval", "30"])
    finally:
        import ray
        ray.shutdown()
    assert rc == 0
    out = tmp_path / "report"
    assert report(["report", str(tmp_path / "toy"), "--out", str(out), "--no-figures", "--no-html", "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "## toy" in md and "### tag_table" in md and "| red | 2 |" in md, md
    assert "### branch_table" not in md           # the toy's section is its own parts only


def test_a_family_registers_once_and_checks_its_thresholds():
    with pytest.raises(ValueError, match="registered twice"):
        register(Family(name="toy", paper_ids=(), summary="", doc="", plan=lambda o: None))
    with pytest.raises(ConfigError, match="unknown sweep family 'nope'"):
        get("nope")
    trap = get("trap")
    assert trap.thresholds == ("trap_accept", "escape_below")

    class Opts:
        trap_accept, escape_below = 0.9, 1.5
    with pytest.raises(ConfigError, match=r"--escape-below=1.5 is an error threshold: it must be in \[0, 1\]"):
        trap.check_thresholds(Opts())
    Opts.escape_below = 0.6
    trap.check_thresholds(Opts())


def test_every_error_threshold_option_is_declared_by_its_family():
    """The sweep command's check today finds thresholds by name (*_accept, escape_below): every family
    declares exactly those, so reading the declaration loses none."""
    from dgl_ray.tune.options import build_parser as common_parser
    for name, fam in families().items():
        dests = {a.dest for g in common_parser(fam)._action_groups if g.title == f"{name} options"
                 for a in g._group_actions}
        by_name = {d for d in dests if d.endswith("_accept") or d == "escape_below"}
        assert set(fam.thresholds) == by_name, name
