"""analysis/compare_s1.ipynb runs top to bottom on a fake sweep and the paper's S1 archive."""

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
