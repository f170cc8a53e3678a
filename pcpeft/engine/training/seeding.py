"""Seeds: every random draw of epoch e is seeded from (seed, e), so a resumed run continues bit-identically."""
from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2 ** 31)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; returns a torch Generator seeded alike (samplers, augmentation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
