"""Per-point colours: by height, normal, file colour or any per-point value; distinct colours for labels."""
from __future__ import annotations

import numpy as np

COLOR_MODES = ("height", "normal", "rgb", "value")


def scalar_colors(values: np.ndarray) -> np.ndarray:
    """(N,) values -> (N, 3) viridis colours, min to max (a constant maps to one colour)."""
    import matplotlib

    values = np.asarray(values, dtype=np.float64)
    span = np.ptp(values) or 1.0
    return matplotlib.colormaps["viridis"]((values - values.min()) / span)[:, :3]


def point_colors(points: np.ndarray, mode: str = "height", values: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) RGB in [0, 1] for a cloud (N, C).

    'height': the y coordinate (clouds are y-up); 'normal': columns 3-5 mapped from [-1, 1]; 'rgb': ``values``
    is (N, 3) colours in [0, 1]; 'value': ``values`` is (N,) one number per point.
    """
    if mode not in COLOR_MODES:
        raise ValueError(f"unknown colour mode {mode!r}; choose one of {', '.join(COLOR_MODES)}")
    count = points.shape[0]
    if mode == "height":
        return scalar_colors(points[:, 1])
    if mode == "normal":
        if points.shape[1] < 6:
            raise ValueError(f"colour by normal needs 6 columns (x y z nx ny nz); the cloud has {points.shape[1]}")
        return np.clip((points[:, 3:6] + 1) / 2, 0, 1)
    if values is None:
        raise ValueError(f"colour mode {mode!r} needs per-point values")
    values = np.asarray(values, dtype=np.float64)
    if mode == "rgb":
        if values.shape != (count, 3):
            raise ValueError(f"colour mode 'rgb' needs ({count}, 3) colours, got shape {values.shape}")
        return np.clip(values, 0, 1)
    if values.shape != (count,):
        raise ValueError(f"colour mode 'value' needs one value per point ({count},), got shape {values.shape}")
    return scalar_colors(values)


def distinct_colors(count: int) -> np.ndarray:
    """(count, 3) clearly different RGB colours (golden-ratio steps around the hue wheel)."""
    import matplotlib.colors as mcolors

    hues = (np.arange(count) * 0.618033988749895) % 1.0
    return mcolors.hsv_to_rgb(np.stack([hues, np.full(count, 0.85), np.full(count, 0.9)], 1))
