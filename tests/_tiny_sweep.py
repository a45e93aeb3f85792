"""One tiny packed sweep per test session (2 λ × 2 seeds, 3 epochs, groups of 2: 2 Tune trials), shared by
the tests of Ray's own result API and of partial data, which copy it before changing anything."""
from pathlib import Path

from tests._sweep_helpers import run_family

_DONE: dict[str, Path] = {}


def tiny_packed_sweep(root: Path) -> Path:
    """The sweep folder (``<root>/tiny``); the sweep runs once per session."""
    if "tiny" not in _DONE:
        rc = run_family("coexistence", root, "--lambdas", "0.36,0.52", "--n", "2", "--epochs", "3",
                        "--group-size", "2", "--progress-interval", "30", "--checkpoint-every", "1",
                        name="tiny")
        assert rc == 0
        _DONE["tiny"] = Path(root) / "tiny"
    return _DONE["tiny"]
