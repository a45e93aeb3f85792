import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits():
    from dgl_ray.data import load_digits_data
    return load_digits_data()


@pytest.fixture(scope="session")
def shared_dir():
    p = Path(os.environ.get("DGL_SHARED", ROOT.parent / "shared"))
    if not (p / "paper-results").is_dir():
        pytest.skip(f"paper archive not found at {p}/paper-results (set DGL_SHARED)")
    return p
