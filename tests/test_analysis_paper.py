"""The paper's own numbers, reproduced from its archive (PROTOCOLS.md, "tables to reproduce")."""

import os
import warnings
from pathlib import Path

import pytest

from dgl_ray.analysis import bimodality, branch_table, hysteresis_table, load_legacy


def _archive() -> Path:
    """$DGL_SHARED/paper-results when set, else the copy in tests/data (a plain clone has it)."""
    env = os.environ.get("DGL_SHARED")
    return Path(env) / "paper-results" if env else Path(__file__).resolve().parent / "data" / "paper-results"


ARCHIVE = _archive()
needs_archive = pytest.mark.skipif(
    not ARCHIVE.is_dir(), reason=f"paper archive not found at {ARCHIVE} (set DGL_SHARED)")

# λ: (n, L, H) — PROTOCOLS.md / the paper's README, table "Phase Boundary (S1)".
S1_COUNTS = {0.42: (50, 50, 0), 0.46: (50, 50, 0), 0.48: (50, 30, 0),
             0.50: (50, 1, 3), 0.52: (50, 0, 28), 0.56: (50, 0, 44)}

# λ: (H(λ↑), L(λ↓), gap) in % — R1, hold 1 epoch.
R1_TABLE = {0.22: (58.6, 13.9, 44.7), 0.30: (45.5, 14.9, 30.6),
            0.40: (47.3, 17.4, 30.0), 0.50: (52.7, 32.2, 20.5)}


@needs_archive
def test_s1_counts_all_18_cells():
    df = load_legacy(ARCHIVE / "S1", warn=False)
    assert df.attrs["skipped"] == []
    bt = branch_table(df).set_index("lambda")
    for lam, (n, L, H) in S1_COUNTS.items():
        row = bt.loc[lam]
        assert (row["n"], row["L"], row["H"]) == (n, L, H), lam
        assert row["L"] + row["intermediate"] + row["H"] == n


@needs_archive
def test_s1_own_labels_agree_with_thresholds():
    df = load_legacy(ARCHIVE / "S1")
    lab = df["paper_branch"].map({"ordered": "L", "collapsed": "H", "intermediate": "I"})
    mine = df["test_error"].map(lambda e: "L" if e <= 0.20 else "H" if e >= 0.40 else "I")
    assert (lab == mine).all()


@needs_archive
def test_r1_hysteresis_table_to_a_tenth_of_a_point():
    df = load_legacy(ARCHIVE / "R1")
    h = hysteresis_table(df)
    fast = h[h["hold"] == 1].set_index("lambda")
    for lam, (up, down, gap) in R1_TABLE.items():
        row = fast.loc[lam]
        assert row["n_up"] == 10 and row["n_down"] == 10
        assert abs(100 * row["up"] - up) <= 0.1, (lam, row["up"])
        assert abs(100 * row["down"] - down) <= 0.1, (lam, row["down"])
        assert abs(100 * row["gap"] - gap) <= 0.1, (lam, row["gap"])


@needs_archive
def test_r1_quirk_lambda_up_022_is_the_second_global_epoch():
    df = load_legacy(ARCHIVE / "R1")
    up = df[(df["experiment"] == "R1a") & (df["direction"] == "up") & (df["lambda"] == 0.22)]
    assert set(up["epoch"]) == {2.0}


@needs_archive
def test_s2_dip_test_at_050_is_not_bimodal():
    # PROTOCOLS.md quirk: n=300 at λ=0.50 gives p ≈ 0.97, not bimodal by the paper's own rule.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_legacy(ARCHIVE / "S2", eta_default=0.4)  # S2a-e state no η; PROTOCOLS: 0.4
    b = bimodality(df).set_index(["eta", "lambda"])
    row = b.loc[(0.4, 0.50)]
    assert row["n"] == 300
    assert row["dip_p"] == pytest.approx(0.97, abs=0.01)
    assert not row["bimodal"]


@needs_archive
def test_whole_archive_loads_and_reports_what_it_skipped():
    with pytest.warns(Warning) as rec:
        df = load_legacy(ARCHIVE)
    skipped = dict(df.attrs["skipped"])
    assert any(p.endswith("MANIFEST.tsv") for p in skipped)
    assert any("S2_combined" in p and "duplicate" in why for p, why in skipped.items())
    assert any("MANIFEST.tsv" in str(w.message) for w in rec)
    assert set(df["family"]) == {"S1", "S2", "R1", "Q1", "Ta"}
    # No run read twice: S2 CSVs defer to their JSON twins (which carry error histories).
    s2 = df[df["family"] == "S2"]
    assert s2.groupby("run")["epoch"].nunique().eq(10).all()
    assert s2["run"].nunique() == 502


@needs_archive
def test_archive_read_through_a_relative_path_with_dotdot(monkeypatch):
    """'../shared/paper-results/S1' (the README's form) reads the same runs as the absolute path."""
    shared = ARCHIVE.parent
    monkeypatch.chdir(shared)
    rel = os.path.join("..", shared.name, "paper-results", "S1")
    assert len(load_legacy(rel)) == len(load_legacy(ARCHIVE / "S1")) == 400
