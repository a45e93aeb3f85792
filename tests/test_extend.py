"""--extend: a sweep grows in place (more seeds, λ, or adaptive trials); nothing there reruns; --resume of an
interrupted extension finishes it; bad extensions are one line, exit 2, before Ray starts."""
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dgl_ray.sweeps import coexistence, trap
from dgl_ray.tidy import load_experiment, run_status_of
from dgl_ray import manifest
from dgl_ray.tune import cli, extend, options
from dgl_ray.tune.searchers import FINISHED, BoundarySearcher
from tests._sweep_helpers import ROOT, interrupt_sweep, no_ray, one_line_error, parquet, run_family  # noqa: F401

GRID = ["--lambdas", "0.3,0.5", "--epochs", "2", "--num-cpus", "2", "--progress-interval", "30"]


def _manifest(storage, name="s") -> dict:
    return json.loads((storage / name / "dgl_sweep.json").read_text())


def _stored(storage, *args, family=coexistence, name="s"):
    """A sweep folder as a start writes it before Ray runs (its manifest only): enough for the checks."""
    o = options.parse(family.FAMILY, ["--storage", str(storage), "--name", name, *args])
    spec = family.FAMILY.plan(o)
    spec, group_size = cli.pack_plan(spec, o)
    o = o.replace(group_size=group_size)
    manifest.write_manifest(o.storage, o.name, cli.sweep_manifest(o, spec))


# ---- one line, exit 2, before Ray ------------------------------------------------------------------

@pytest.mark.usefixtures("no_ray")
def test_extension_that_changes_epochs_or_lr_is_refused_naming_both(tmp_path, capsys):
    _stored(tmp_path, *GRID, "--n", "2")
    rc = run_family("coexistence", tmp_path, *GRID[:2], "--epochs", "3", "--lr", "0.05", "--n", "3", "--extend",
                    name="s")
    assert rc == 2
    err = one_line_error(capsys)
    assert "--extend cannot change epochs (stored 2, given 3), lr (stored default, given 0.05)" in err
    assert "extensions" not in _manifest(tmp_path)         # nothing recorded


@pytest.mark.usefixtures("no_ray")
@pytest.mark.parametrize("args, says", [
    (["--extend"], "--extend: no sweep at"),
    (["--extend", "--resume"], "give --extend or --resume, not both"),
])
def test_extend_needs_a_sweep_and_excludes_resume(tmp_path, capsys, args, says):
    assert run_family("coexistence", tmp_path, *GRID, "--n", "2", *args, name="none") == 2
    assert says in one_line_error(capsys)


@pytest.mark.usefixtures("no_ray")
def test_chained_family_cannot_grow(tmp_path, capsys):
    _stored(tmp_path, "--n", "1", "--epochs", "2", family=trap, name="t")
    assert run_family("trap", tmp_path, "--n", "2", "--epochs", "2", "--extend", name="t") == 2
    assert "--extend grows grid sweeps and adaptive searches" in one_line_error(capsys)


@pytest.mark.usefixtures("no_ray")
def test_extension_that_adds_nothing_says_so_and_exits_0(tmp_path, capsys):
    _stored(tmp_path, *GRID, "--n", "2")
    assert run_family("coexistence", tmp_path, *GRID, "--seeds", "0,1", "--extend", name="s") == 0
    assert "nothing to add" in capsys.readouterr().out


@pytest.mark.usefixtures("no_ray")
def test_dry_run_names_what_it_adds(tmp_path, capsys):
    _stored(tmp_path, *GRID, "--n", "2")
    assert run_family("coexistence", tmp_path, GRID[0], "0.3,0.4,0.5", *GRID[2:], "--n", "3", "--extend",
                      "--dry-run", name="s") == 0
    out = capsys.readouterr().out
    assert "adds 5 trials (extend-1) to the 4 planned there; nothing there reruns" in out   # 3x3 less 2x2
    assert "extensions" not in _manifest(tmp_path)


@pytest.mark.usefixtures("no_ray")
def test_an_extension_may_switch_early_decisions_for_its_own_trials(tmp_path, capsys):
    """--decide-early changes when a trial stops, not which trial it is: an extension may switch it for its new
    trials; the finished ones are still known (not added again) and the first part keeps its own setting."""
    _stored(tmp_path, *GRID, "--n", "2")
    assert run_family("coexistence", tmp_path, *GRID, "--n", "3", "--decide-early", "0.05", "--extend",
                      "--dry-run", name="s") == 0
    assert "adds 2 trials (extend-1) to the 4 planned there" in capsys.readouterr().out
    o = options.parse(coexistence.FAMILY, ["--storage", str(tmp_path), "--name", "s", *GRID, "--n", "3",
                                           "--decide-early", "0.05", "--extend"])
    parts, added = extend.plan_parts(coexistence.FAMILY, o, _manifest(tmp_path), coexistence.FAMILY.plan(o))
    first, new = (p.spec.searcher.configs for p in parts)
    assert added == 2 and {c["seed"] for c in new} == {2}
    assert [c.get("decide_early") for c in first] == [None] * 4 and [c["decide_early"] for c in new] == [0.05] * 2
    # the record names the switch; a --resume of the extended sweep is the latest command
    assert extend.changed_axes(_manifest(tmp_path)["options"], options.plan_options(o))["decide_early"] == [None, 0.05]


# ---- real digits sweeps ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished grid sweep: λ 0.3, 0.5 x seeds 0, 1 (4 trials, 2 epochs)."""
    storage = tmp_path_factory.mktemp("base")
    assert run_family("coexistence", storage, *GRID, "--n", "2", name="s") == 0
    return storage


def _copy(finished, tmp_path):
    shutil.copytree(finished / "s", tmp_path / "s")
    return tmp_path


def test_more_seeds_run_only_the_new_trials_and_tables_read_the_union(finished, tmp_path, capsys):
    storage = _copy(finished, tmp_path)
    before = parquet(storage, "s")
    assert run_family("coexistence", storage, *GRID, "--n", "3", "--extend", name="s") == 0
    df = parquet(storage, "s")
    last = df.sort_values("epoch").groupby("run").tail(1)
    assert sorted(zip(last["lambda"], last["seed"])) == [(0.3, 0), (0.3, 1), (0.3, 2), (0.5, 0), (0.5, 1), (0.5, 2)]
    assert (last["run_status"] == "completed").all()
    # the finished trials did not rerun: their rows, wall times included, are the stored ones
    old = df[df["run"].isin(set(before["run"]))].sort_values(["run", "epoch"]).reset_index(drop=True)
    cols = ["run", "epoch", "test_error", "wall_time"]
    assert old[cols].equals(before.sort_values(["run", "epoch"]).reset_index(drop=True)[cols])
    assert load_experiment(storage / "s")["run"].nunique() == 6                # the report's reader: the union
    ext = _manifest(storage)["extensions"]
    assert [(e["added"], e["changed"], e["folder"]) for e in ext] == [(2, {"n": [2, 3]}, "extend-1")]
    assert _manifest(storage)["members"] == 6
    # --resume takes the latest command: the base's options are refused naming it; with it, nothing reruns
    assert run_family("coexistence", storage, *GRID, "--n", "2", "--resume", name="s") == 2
    assert "--n 2 (stored: 3)" in capsys.readouterr().err
    assert run_family("coexistence", storage, *GRID, "--n", "3", "--resume", name="s") == 0
    assert parquet(storage, "s").sort_values(["run", "epoch"]).reset_index(drop=True)[cols].equals(
        df.sort_values(["run", "epoch"]).reset_index(drop=True)[cols])


def test_known_outcomes_enter_the_design_and_their_seeds_are_never_proposed():
    known = [{"lambda": 0.4, "outcome": o, "seed": s} for o, s in (("H", 0), ("T", 1), ("not_H", 3))]
    s = BoundarySearcher({"seed": 0, "epochs": 2}, 0.4, 0.44, budget=6, start=[0.4, 0.44], n0=2, known=known)
    assert sorted(s.outcomes[0.4]) == [0.0, 1.0, 1.0]               # T is a kind of H
    proposed, i = [], 0
    while (c := s.suggest(f"t{i}")) not in (None, FINISHED):      # each completes at once, as an H run
        proposed.append((c["lambda"], c["seed"]))
        s.on_trial_complete(f"t{i}", {"test_error": 0.5})
        i += 1
    restored = BoundarySearcher({"seed": 0}, 0.4, 0.44, budget=1)
    restored.set_state(s.get_state())
    assert len(proposed) == 6 and len(set(proposed)) == 6           # the budget: new trials only
    assert not {(0.4, 0), (0.4, 1), (0.4, 3)} & set(proposed)
    assert restored.outcomes == s.outcomes and sum(len(v) for v in s.outcomes.values()) == 3 + 6


def test_known_outcomes_are_the_ended_runs_branches():
    rows = pd.DataFrame({"run": ["a", "b", "c", "d", "d", "e", "f"], "epoch": [2, 2, 2, 1, 2, 1, 1],
                         "lambda": [0.3, 0.4, 0.5, 0.45, 0.45, 0.35, 0.36], "seed": [0, 0, 1, 2, 2, 3, 4],
                         "eta": 0.4, "width": 1.0, "test_error": [0.1, 0.5, 0.9, 0.2, np.nan, 0.6, 0.7],
                         "status": ["completed", "completed", "completed", "running", "diverged", "running",
                                    "decided"],
                         "decided_branch": [None] * 6 + ["not_H"]})
    rows["run_status"] = run_status_of(rows)
    known = extend.known_outcomes(rows)
    # a decided run counts by its branch (its error 0.7 is not a final error); unfinished and diverged: none
    assert [(k["lambda"], k["seed"], k["outcome"]) for k in known] == [(0.3, 0, "not_H"), (0.4, 0, "H"),
                                                                        (0.5, 1, "T"), (0.36, 4, "not_H")]
    assert [k["cost"] for k in known] == [1.0, 1.0, 1.0, 1.0]      # no "epochs" column: nothing to go by
    # with the run length known, a decided run costs the fraction it trained (design.run_cost), the others 1
    known = extend.known_outcomes(rows.assign(epochs=4))
    assert [k["cost"] for k in known] == [1.0, 1.0, 1.0, 0.25]


@pytest.mark.slow      # ≈ 20 s: a live adaptive extension (the searcher's part is checked above without Ray)
def test_adaptive_extension_starts_from_the_folders_outcomes(finished, tmp_path, capsys):
    storage = _copy(finished, tmp_path)
    assert run_family("coexistence", storage, *GRID, "--n", "2", "--adaptive", "3", "--extend", name="s") == 0
    out = capsys.readouterr().out
    df = parquet(storage, "s")
    last = df.sort_values("epoch").groupby("run").tail(1)
    assert len(last) == 7                                  # the 4 known + a budget of 3 new trials
    assert not last.duplicated(["lambda", "seed"]).any()    # no known (λ, seed) handed out again
    assert "7 trials" in [ln for ln in out.splitlines() if ln.startswith("adaptive: λ_c")][0]
    e = _manifest(storage)["extensions"][0]
    assert (e["added"], e["plan_kind"], e["changed"]["adaptive"]) == (3, "BoundarySearcher", [None, 3])


def _running_in(part):
    def ready():
        for rj in part.glob("*/result.json"):
            lines = [ln for ln in rj.read_text().splitlines() if ln.strip()]
            if lines and json.loads(lines[-1]).get("epoch", 0) >= 1:
                return True
        return False
    return ready


@pytest.mark.slow      # ≈ 60 s: drivers of their own, one interrupted, then resumed
def test_interrupted_extension_resumes_without_repeats(tmp_path):
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", str(tmp_path), "--name", "s",
           "--lambdas", "0.3", "--epochs", "8", "--num-cpus", "2", "--progress-interval", "30",
           "--checkpoint-every", "1", "--group-size", "1"]
    assert subprocess.run([*cmd, "--n", "1"], cwd=ROOT, capture_output=True).returncode == 0
    rc, out = interrupt_sweep([*cmd, "--n", "3", "--extend"], _running_in(tmp_path / "s" / "extend-1"),
                              signal.SIGINT)
    assert rc == 128 + signal.SIGINT, out[-2000:]
    assert parquet(tmp_path, "s")["run_status"].eq("unfinished").any()
    resume = [ln.strip() for ln in out.splitlines() if ln.strip().endswith("--resume")][-1]
    assert "--extend" not in resume
    r = subprocess.run(resume, shell=True, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    df = parquet(tmp_path, "s")
    last = df.sort_values("epoch").groupby("run").tail(1)
    assert sorted(last["seed"]) == [0, 1, 2] and (last["run_status"] == "completed").all()
    assert not df.duplicated(["run", "epoch"]).any()
    assert (df.groupby("run")["epoch"].nunique() == 8).all()          # every epoch once, none lost


@pytest.mark.slow      # ≈ 60 s: an interrupted sweep, then its extension
def test_extension_of_an_interrupted_sweep_finishes_it_too(tmp_path):
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", str(tmp_path), "--name", "s",
           "--lambdas", "0.3", "--epochs", "8", "--num-cpus", "2", "--progress-interval", "30",
           "--checkpoint-every", "1", "--group-size", "1"]
    rc, _ = interrupt_sweep([*cmd, "--n", "2"], _running_in(tmp_path / "s"), signal.SIGINT)
    assert rc == 128 + signal.SIGINT
    r = subprocess.run([*cmd, "--n", "3", "--extend"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "adds" not in r.stdout and "extension extend-1: 1 new trial(s)" in r.stdout
    df = parquet(tmp_path, "s")
    last = df.sort_values("epoch").groupby("run").tail(1)
    assert sorted(last["seed"]) == [0, 1, 2] and (last["run_status"] == "completed").all()
    assert not df.duplicated(["run", "epoch"]).any()


def test_the_docs_list_the_extensible_options_the_code_has():
    """docs/SWEEPS.md names EXTENSIBLE's options, exactly (it once listed two the code no longer had)."""
    import re
    text = " ".join((ROOT / "docs" / "SWEEPS.md").read_text().split())
    listed = re.search(r"`dgl_ray\.tune\.options\.EXTENSIBLE`: `([^`]*)`", text).group(1)
    assert [k.strip() for k in listed.split(",")] == list(options.EXTENSIBLE)
