import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny
    models on a shared 2-core machine run 10-30x slower with oversubscribed threads."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
