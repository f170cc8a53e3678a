"""Checks shared by the loaders: finite coordinates, label range, enough points, consistent lengths."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetError


def check_points(points: np.ndarray, source: Path | str, expected_dims: int = 3) -> np.ndarray:
    """points (N_samples, N_points, >=dims): float, finite. Returns float32."""
    if points.ndim != 3 or points.shape[-1] < expected_dims:
        raise DatasetError(f"{source}: point data has shape {points.shape}; expected (samples, points, "
                           f"{expected_dims}+)")
    points = np.asarray(points, dtype=np.float32)
    bad = ~np.isfinite(points).all(axis=(1, 2))
    if bad.any():
        raise DatasetError(f"{source}: {int(bad.sum())} sample(s) contain NaN or Inf coordinates "
                           f"(first at index {int(np.flatnonzero(bad)[0])})")
    return points


def check_labels(labels: np.ndarray, num_samples: int, num_classes: int, source: Path | str) -> np.ndarray:
    """labels of any shape with one entry per sample -> int64 (N,), each in [0, num_classes)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != num_samples:
        raise DatasetError(f"{source}: {labels.shape[0]} labels for {num_samples} point clouds; they must match")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise DatasetError(f"{source}: labels are not integers")
    labels = labels.astype(np.int64)
    out = (labels < 0) | (labels >= num_classes)
    if out.any():
        raise DatasetError(f"{source}: label {int(labels[out][0])} at index {int(np.flatnonzero(out)[0])} is outside "
                           f"the {num_classes} classes [0, {num_classes - 1}]")
    return labels


def check_enough_points(available: int, requested: int, source: Path | str, allow_resampling: bool) -> None:
    if available < requested and not allow_resampling:
        raise DatasetError(
            f"{source}: clouds have {available} points but {requested} were requested; lower npoints, or set "
            f"allow_resampling=True to sample with replacement up to {requested}"
        )
