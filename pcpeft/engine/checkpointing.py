"""Atomic checkpoint files: written to a temporary file in the same folder, then renamed over the target."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(payload: Any, path: str | Path) -> Path:
    """torch.save ``payload`` to ``path`` so a crash never leaves a truncated file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_training_state(path: str | Path) -> dict:
    """A pcpeft training checkpoint (written by the trainer; trusted: it holds optimizer and RNG state)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)
