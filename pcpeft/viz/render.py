"""Point cloud pictures with matplotlib (headless Agg): clouds, FPS groups, class galleries, SMoA routing, t-SNE,
training curves. Every function writes a PNG of exactly ``size`` pixels and returns its path.

Renderer choice: Open3D's offscreen renderer is used only when ``open3d`` imports and can render offscreen;
otherwise matplotlib. ``choose_renderer`` logs the choice; matplotlib is what CI has.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

LOG = logging.getLogger("pcpeft")


def _figure(size: tuple[int, int], dpi: int = 100):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)


def _save(plt, fig, path: str | Path, size: tuple[int, int]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    plt.close(fig)
    from PIL import Image

    with Image.open(path) as img:  # guard: exactly the requested size
        if img.size != tuple(size):
            img.resize(tuple(size)).save(path)
    return path


def choose_renderer(requested: str = "auto") -> str:
    """'matplotlib' or 'open3d'; 'auto' picks open3d only if it imports. Logged."""
    if requested not in ("auto", "matplotlib", "open3d"):
        raise ValueError(f"unknown renderer {requested!r}; choose auto, matplotlib or open3d")
    choice = requested
    if requested in ("auto", "open3d"):
        try:
            import open3d  # noqa: F401
            choice = "open3d"
        except Exception as err:  # noqa: BLE001 - missing wheel or missing system libraries
            if requested == "open3d":
                raise RuntimeError(f"open3d renderer requested but open3d does not import: {err}") from None
            choice = "matplotlib"
    LOG.info(f"renderer: {choice}")
    return choice


def load_cloud(path: str | Path) -> np.ndarray:
    """A cloud from .txt/.xyz (comma or space separated), .npy, ascii .ply/.pcd or .off (surface-sampled)."""
    from ..datasets.errors import DatasetError, require_file

    path = require_file(Path(path), "point cloud")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = np.load(path)
    elif suffix == ".off":
        from ..datasets.mesh import read_off, sample_surface

        vertices, faces = read_off(path)
        data = sample_surface(vertices, faces, 4096, np.random.default_rng(0), str(path))[0]
    elif suffix in (".ply", ".pcd"):
        lines = path.read_text(errors="replace").splitlines()
        end = next((i for i, ln in enumerate(lines) if ln.strip() in ("end_header",) or ln.startswith("DATA")), None)
        if end is None or ("binary" in "\n".join(lines[:end + 1])):
            raise DatasetError(f"{path}: only ascii .ply/.pcd are read; convert binary files first")
        data = np.array([ln.split()[:3] for ln in lines[end + 1:] if ln.strip()], dtype=np.float32)
    else:
        text = path.read_text()
        data = np.loadtxt(path, delimiter="," if "," in text.splitlines()[0] else None, ndmin=2)
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] < 3:
        raise DatasetError(f"{path}: expected rows of at least 3 coordinates, got shape {data.shape}")
    return data


def _scatter(ax, points: np.ndarray, colors, point_size: float = 2.0) -> None:
    ax.scatter(points[:, 0], points[:, 2], points[:, 1], c=colors, s=point_size, linewidths=0)
    ax.set_axis_off()
    span = (points.max(0) - points.min(0)).max() / 2
    mid = (points.max(0) + points.min(0)) / 2
    ax.set_xlim(mid[0] - span, mid[0] + span)
    ax.set_ylim(mid[2] - span, mid[2] + span)
    ax.set_zlim(mid[1] - span, mid[1] + span)


def point_colors(points: np.ndarray, mode: str = "height", values: np.ndarray | None = None) -> np.ndarray:
    """RGB per point: 'height' (y), 'normal' (columns 3-5 mapped to [0,1]) or 'value' (``values``)."""
    import matplotlib.cm as cm

    if mode == "normal":
        if points.shape[1] < 6:
            raise ValueError("colour by normal needs 6 columns (x,y,z,nx,ny,nz)")
        return np.clip((points[:, 3:6] + 1) / 2, 0, 1)
    scalar = points[:, 1] if mode == "height" else np.asarray(values, dtype=np.float64)
    if mode not in ("height", "value") or scalar.shape[0] != points.shape[0]:
        raise ValueError(f"colour mode {mode!r} needs one value per point")
    span = np.ptp(scalar) or 1.0
    return cm.viridis((scalar - scalar.min()) / span)[:, :3]


def distinct_colors(count: int) -> np.ndarray:
    """``count`` clearly different RGB colours (hue wheel)."""
    import matplotlib.colors as mcolors

    hues = (np.arange(count) * 0.618033988749895) % 1.0
    return mcolors.hsv_to_rgb(np.stack([hues, np.full(count, 0.85), np.full(count, 0.9)], 1))


def render_cloud(points: np.ndarray, path: str | Path, size=(640, 480), color_mode: str = "height",
                 values: np.ndarray | None = None, title: str | None = None) -> Path:
    plt, fig = _figure(size)
    ax = fig.add_subplot(111, projection="3d")
    _scatter(ax, points[:, :3], point_colors(points, color_mode, values))
    if title:
        ax.set_title(title)
    return _save(plt, fig, path, size)


def render_groups(points: np.ndarray, path: str | Path, num_group: int = 32, group_size: int = 32,
                  size=(640, 480)) -> Path:
    """FPS centres (black) and their kNN neighbourhoods, one colour per group."""
    import torch

    from ..ops.grouping import group_points

    neigh, centres = group_points(torch.from_numpy(points[None, :, :3].copy()), num_group, group_size)
    absolute = (neigh + centres.unsqueeze(2))[0].numpy().reshape(-1, 3)
    colors = np.repeat(distinct_colors(num_group), group_size, axis=0)
    plt, fig = _figure(size)
    ax = fig.add_subplot(111, projection="3d")
    _scatter(ax, absolute, colors, point_size=3)
    ax.set_title(f"{num_group} FPS groups x {group_size} nearest points")
    return _save(plt, fig, path, size)


def render_gallery(clouds: list[np.ndarray], labels: list[str], path: str | Path, columns: int = 4,
                   size=(1200, 900)) -> Path:
    rows = int(np.ceil(len(clouds) / columns))
    plt, fig = _figure(size)
    for i, (cloud, label) in enumerate(zip(clouds, labels)):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        _scatter(ax, cloud[:, :3], point_colors(cloud), point_size=1)
        ax.set_title(label, fontsize=9)
    return _save(plt, fig, path, size)


def render_routing(points_by_block: list[np.ndarray], experts_by_block: list[np.ndarray], num_experts: int,
                   path: str | Path, size=(1200, 900)) -> Path:
    """One panel per block: each group's points coloured by the expert its token was routed to."""
    colors = distinct_colors(num_experts)
    columns = min(4, len(points_by_block))
    rows = int(np.ceil(len(points_by_block) / columns))
    plt, fig = _figure(size)
    for i, (pts, experts) in enumerate(zip(points_by_block, experts_by_block)):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        _scatter(ax, pts, colors[experts], point_size=2)
        ax.set_title(f"block {i}", fontsize=9)
    return _save(plt, fig, path, size)


def render_tsne(features: np.ndarray, labels: np.ndarray, class_names, path: str | Path, size=(800, 700),
                seed: int = 0) -> Path:
    from sklearn.manifold import TSNE

    embedded = TSNE(n_components=2, init="pca", random_state=seed,
                    perplexity=min(30.0, max(2.0, (len(features) - 1) / 3))).fit_transform(features)
    colors = distinct_colors(len(class_names))
    plt, fig = _figure(size)
    ax = fig.add_subplot(111)
    for c, name in enumerate(class_names):
        sel = labels == c
        if sel.any():
            ax.scatter(embedded[sel, 0], embedded[sel, 1], s=8, color=colors[c], label=name)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(plt, fig, path, size)


def render_curves(experiment: str | Path, path: str | Path, size=(900, 500)) -> Path:
    """Training loss and test accuracy per epoch from an experiment folder's results.json (or the file)."""
    source = Path(experiment)
    source = source / "results.json" if source.is_dir() else source
    history = json.loads(source.read_text())["history"]
    epochs = [h["epoch"] + 1 for h in history]
    plt, fig = _figure(size)
    left, right = fig.add_subplot(121), fig.add_subplot(122)
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set_title("train loss")
    evaluated = [h for h in history if "test_acc" in h]
    right.plot([h["epoch"] + 1 for h in evaluated], [h["test_acc"] for h in evaluated], marker="o", color="C1")
    right.set_title("test accuracy (%)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
    return _save(plt, fig, path, size)
