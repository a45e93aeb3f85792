"""The commands of README.md and docs/*.md run as written, from the root of a fresh clone.

A command is a line of a fenced ```bash block or a line starting with ``$ `` (in any block). Its
expected exit code is 0, or 2 when the documented output right below it is an ``error:`` line.
An HTML comment right before a block (or a ``$`` line) marks what CI does not run as written here,
each stating why:

    <!-- docs-test: skip (needs a GPU) -->       never run here
    <!-- docs-test: slow (400 trials, 90 s) -->  run by ``pytest -m slow`` only

The clone is a copy of the tracked tree in a temporary folder (no ``../shared``, no ``results/``),
with ``python`` and ``dgl-ray`` on PATH meaning this interpreter and this copy. Commands that read a
sweep the README's set-up command wrote (``results/quickstart``) find a small stand-in there: the
set-up command itself (a venv and a pip install) is not run here.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|slow)\s*\((.+)\)\s*-->")
QUICK_TIMEOUT_S = 300     # a hang guard: on an idle 2-core machine each command takes seconds


@dataclass(frozen=True)
class DocCommand:
    where: str              # file:line, for the test id
    command: str
    expect_rc: int
    mark: str | None        # None, "skip" or "slow"
    why: str | None


def _fenced_language(line: str) -> str | None:
    """The language of a line opening or closing a fenced block (``""`` for a bare fence), else None."""
    s = line.strip()
    return s[3:].strip() if s.startswith("```") else None


def doc_commands(path: Path) -> list[DocCommand]:
    """Every command of one Markdown file, with the marker before its block and its expected exit code."""
    lines = path.read_text().splitlines()
    out: list[DocCommand] = []
    pending = None                   # (mark, why) of the last marker, until the block it precedes
    fence = None                     # the open fenced block's language, None outside one
    block_mark = None
    joined, start = "", 0
    for i, line in enumerate(lines):
        rel = f"{path.relative_to(REPO)}:{i + 1}"
        m = MARKER.search(line)
        if m and fence is None:
            pending = (m.group(1), m.group(2))
            continue
        lang = _fenced_language(line)
        if lang is not None:
            if fence is None:
                fence, block_mark, pending = lang, pending, None
            else:
                fence, block_mark = None, None
            continue
        stripped = line.strip()
        if stripped.startswith("$ "):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            mark = block_mark or pending
            if fence is None:
                pending = None
            out.append(DocCommand(rel, stripped[2:], 2 if nxt.startswith("error:") else 0,
                                  *(mark or (None, None))))
            continue
        if fence == "bash" and stripped and not stripped.startswith("#"):
            if not joined:
                start = i
            joined += stripped[:-1] + " " if stripped.endswith("\\") else stripped
            if not stripped.endswith("\\"):
                out.append(DocCommand(f"{path.relative_to(REPO)}:{start + 1}", joined, 0,
                                      *(block_mark or (None, None))))
                joined = ""
    return out


ALL = [c for doc in DOCS for c in doc_commands(doc)]
QUICK = [c for c in ALL if c.mark is None]
SLOW = [c for c in ALL if c.mark == "slow"]


def fresh_clone(dest: Path) -> Path:
    """A copy of the tracked tree (what a clone holds), with python and dgl-ray on a PATH of its own."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    bin_dir = dest.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, line in (("python", f'exec {sys.executable} "$@"'),
                       ("dgl-ray", f'exec {sys.executable} -m dgl_ray.cli "$@"')):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{line}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return dest


def clone_env(clone: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(clone), MPLBACKEND="Agg",
               PATH=f"{clone.parent / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("RAY_ADDRESS", None)       # never another helper's cluster
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    root = fresh_clone(tmp_path_factory.mktemp("docs") / "dgl-ray")
    from dgl_ray.analysis import write_fake_sweep       # the set-up command's sweep, as a stand-in
    write_fake_sweep(root / "results", name="quickstart", lambdas=(0.35, 0.45, 0.55), seeds=range(3), epochs=3)
    return root


def run_doc_command(c: DocCommand, clone: Path, timeout: float) -> tuple[DocCommand, int, str]:
    try:
        p = subprocess.run(["bash", "-c", c.command], cwd=clone, env=clone_env(clone), capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return c, -1, f"still running after {timeout:.0f} s"
    return c, p.returncode, (p.stdout[-1500:] + p.stderr[-1500:])


def test_docs_have_commands_and_every_marker_says_why():
    assert len(QUICK) >= 10, [c.where for c in ALL]
    assert all(c.why.strip() for c in ALL if c.mark), "a docs-test marker without a reason"
    assert not [c for c in ALL if "../shared" in c.command], "a command needs ../shared, which a clone lacks"


def test_quick_doc_commands_run_as_written(clone):
    """Every unmarked command exits as documented; run two at a time (the runtime is the slowest few)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: run_doc_command(c, clone, QUICK_TIMEOUT_S), QUICK))
    failed = [f"{c.where}: `{c.command}` exited {rc}, documented {c.expect_rc}\n{out}"
              for c, rc, out in results if rc != c.expect_rc]
    assert not failed, "\n\n".join(failed)


@pytest.mark.slow
@pytest.mark.timeout(1800)          # a whole sweep on 2 cores shared with other jobs
@pytest.mark.parametrize("c", SLOW, ids=[c.where for c in SLOW])
def test_slow_doc_commands_run_as_written(c, tmp_path):
    root = fresh_clone(tmp_path / "dgl-ray")
    _, rc, out = run_doc_command(c, root, 1800)
    assert rc == c.expect_rc, out


# --- what the commands promise beyond their exit code (in this process: no interpreter start-up) ------

def test_dry_run_leaves_nothing_on_disk(tmp_path, monkeypatch, capsys):
    from dgl_ray.sweeps.__main__ import main
    monkeypatch.chdir(tmp_path)
    rc = main(["--config", str(REPO / "sweeps" / "S1.toml"), "--dataset", "digits", "--model", "tinycnn",
               "--epochs", "30", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "400 trials" in out and "warning" not in out, out
    assert list(tmp_path.iterdir()) == []          # no ./results, no ./data


def test_sweep_help_lists_the_families(capsys):
    from dgl_ray.cli import main
    from dgl_ray.sweeps.family import families
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dgl-ray sweep"), out[:300]
    assert all(re.search(rf"^\s+{f}\s", out, re.M) for f in families())


def test_family_help_prints_each_default_once():
    from dgl_ray.sweeps.family import families
    from dgl_ray.tune.options import build_parser
    for family, record in families().items():
        text = " ".join(build_parser(record).format_help().split())
        for option_help in re.split(r"\s(?=--?\w)", text):     # argparse wraps help texts over lines
            assert option_help.count("(default") <= 1, (family, option_help)
