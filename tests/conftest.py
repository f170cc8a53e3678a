import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout; tests needing it skip cleanly on a user's machine without it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (it exists in CI and developer checkouts only)")
    return SHARED
