"""The package's import layers are one-way: the import-linter contracts in pyproject.toml
([tool.importlinter]), each checked here as `lint-imports --contract ID` would. A broken contract
fails with import-linter's own text: which module imports which, at which lines."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = [c["id"] for c in read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]]

# run as a script, not in this process: import-linter configures itself globally and prints with rich
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', limit_to_contracts=(sys.argv[1],), "
        "no_cache=True, no_logo=True))")


def test_every_contract_is_checked():
    assert {"layers", "entry-points", "light-config", "acyclic"} <= set(CONTRACTS)


def _lint(root: Path, contract: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-c", LINT, contract], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract_kept(contract):
    run = _lint(ROOT, contract)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"import contract {contract!r} broken (pyproject.toml [tool.importlinter]):\n{report}"
    assert " KEPT" in report and "Analyzed" in report, report


@pytest.mark.parametrize("module, planted, contract", [
    ("config.py", "from dgl_ray.tune import searchers", "layers"),       # the config layer reaching up to Tune
    ("analysis/tables.py", "from ..tune import runner", "layers"),       # analysis reading Tune, its sibling
    ("paper.py", "import torch", "light-config"),
])
def test_a_planted_upward_import_breaks_its_contract(tmp_path, module, planted, contract):
    """The contracts can fail: the same package with one upward import planted is refused, naming it."""
    shutil.copytree(ROOT / "dgl_ray", tmp_path / "dgl_ray", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "dgl_ray" / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    run = _lint(tmp_path, contract)
    assert run.returncode != 0 and "BROKEN" in run.stdout + run.stderr, run.stdout + run.stderr
