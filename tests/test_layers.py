"""The package's import layers are one-way: the import-linter contracts in pyproject.toml
([tool.importlinter]), each checked here as `lint-imports --contract ID` would. A broken contract
fails with import-linter's own text: which module imports which, at which lines."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = [c["id"] for c in read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]]

# contracts still broken by imports that other work removes; each entry names them (the reason says where)
KNOWN_BROKEN = {
    "layers": "tune.runner -> analysis (rows/storage), analysis.frames -> tune.trainable (rows), "
              "tune.cli -> train (options)",
    "acyclic": "analysis <-> tune (rows), tune.faults/tune.lock -> tune.runner (storage_fs, collect, ...), "
               "tune.trackers -> tune.cli (options)",
}

# run as a script, not in this process: import-linter configures itself globally and prints with rich
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', limit_to_contracts=(sys.argv[1],), "
        "no_cache=True, no_logo=True))")


def test_every_contract_is_checked():
    assert {"layers", "entry-points", "light-config", "acyclic"} <= set(CONTRACTS)


@pytest.mark.parametrize("contract", [
    pytest.param(c, marks=pytest.mark.xfail(reason=f"still broken: {KNOWN_BROKEN[c]}", strict=False))
    if c in KNOWN_BROKEN else c for c in CONTRACTS])
def test_contract_kept(contract):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    run = subprocess.run([sys.executable, "-c", LINT, contract], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"import contract {contract!r} broken (pyproject.toml [tool.importlinter]):\n{report}"
    assert " KEPT" in report and "Analyzed" in report, report
