"""analysis/compare_s1.ipynb runs top to bottom on a fake sweep and the paper's S1 archive, and finds the
sweep the README runs (results/quickstart, else the newest under results/)."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from dgl_ray.analysis import write_fake_sweep

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "analysis" / "compare_s1.ipynb"
# $DGL_SHARED when set, else the archive copy in tests/data (a plain clone has it)
SHARED = Path(os.environ.get("DGL_SHARED", Path(__file__).resolve().parent / "data"))


@pytest.mark.skipif(not (SHARED / "paper-results" / "S1").is_dir(),
                    reason=f"paper archive not found at {SHARED} (set DGL_SHARED)")
def test_compare_s1_notebook_executes(tmp_path, monkeypatch):
    sweep = write_fake_sweep(tmp_path, name="coexistence", lambdas=(0.46, 0.50, 0.54), seeds=range(4),
                             epochs=3)
    monkeypatch.setenv("DGL_SWEEP", str(sweep))
    monkeypatch.setenv("DGL_SHARED", str(SHARED))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored with outputs"
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # both coexistence maps
    text = "".join(o.get("text", "") for o in outputs)
    assert "12 runs" in text and "400 paper runs" in text


def _run_sweep_cells(env: dict, monkeypatch) -> str:
    """Runs the notebook's set-up and sweep cells only (the part that picks the sweep); their text out."""
    for k in ("DGL_SWEEP", "DGL_RESULTS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"][:2]
    nb.cells = code
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"], outs
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for o in outs)


def test_notebook_finds_the_readme_sweep_before_any_other(tmp_path, monkeypatch):
    """With no $DGL_SWEEP it reads results/quickstart (the README's set-up sweep), and says nothing of FAKE."""
    results = tmp_path / "results"
    write_fake_sweep(results, name="quickstart", lambdas=(0.40, 0.50), seeds=range(3), epochs=2)    # 6 runs
    write_fake_sweep(results, name="later", lambdas=(0.40,), seeds=range(2), epochs=2)              # newer
    text = _run_sweep_cells({"DGL_RESULTS": str(results)}, monkeypatch)
    assert "6 runs" in text and "quickstart" in text and "FAKE" not in text


def test_notebook_says_fake_only_when_no_sweep_exists(tmp_path, monkeypatch):
    results = tmp_path / "results"
    write_fake_sweep(results, name="coexistence", lambdas=(0.40,), seeds=range(2), epochs=2)      # 2 runs
    assert "2 runs" in (text := _run_sweep_cells({"DGL_RESULTS": str(results)}, monkeypatch)) and "FAKE" not in text
    text = _run_sweep_cells({"DGL_RESULTS": str(tmp_path / "none")}, monkeypatch)
    assert "FAKE DATA" in text and "30 runs" in text
