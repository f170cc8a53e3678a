"""The pictures: a cloud, FPS groups, a class gallery, SMoA routing (3-D, through a renderer), t-SNE of features and
training curves (2-D plots, matplotlib). Each writes a PNG of exactly ``size`` (W, H) pixels and returns its path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .camera import View
from .colors import distinct_colors, point_colors
from .compose import Grid, compose, figure_to_image, new_figure, save_png
from .renderers import CloudPanel, PointLayer, Renderer, resolve_renderer

Size = tuple[int, int]


def render_panels(panels: list[CloudPanel], path: str | Path, size: Size = (800, 600), columns: int = 4,
                  renderer: "str | Renderer" = "auto", view: View = View()) -> Path:
    """Draw 3-D panels on a grid (titles above them) with one renderer and write the PNG."""
    renderer = resolve_renderer(renderer)
    grid = Grid.for_panels(len(panels), columns, size, titled=any(p.title for p in panels))
    images = [renderer.draw(panel, view, grid.panel_size) for panel in panels]
    return save_png(compose(grid, images, [p.title for p in panels]), path)


def cloud_panel(points: np.ndarray, color_mode: str = "height", values: np.ndarray | None = None, title: str = "",
                point_size: float = 3.0) -> CloudPanel:
    """A panel of one cloud (N, C >= 3) coloured by ``color_mode`` (see ``point_colors``)."""
    return CloudPanel([PointLayer(points[:, :3], point_colors(points, color_mode, values), point_size)], title)


def groups_panel(points: np.ndarray, num_group: int = 32, group_size: int = 32, point_size: float = 3.0
                 ) -> CloudPanel:
    """The FPS centres (black, larger) and their kNN neighbourhoods (one colour per group) of a cloud (N, C>=3).
    Neighbourhoods overlap: a point in several is drawn in the colour of the last group."""
    import torch

    from ..ops.grouping import group_points

    if points.shape[0] < group_size:
        raise ValueError(f"groups of {group_size} points need a cloud of at least that many; it has {len(points)}")
    neighbours, centres = group_points(torch.from_numpy(np.ascontiguousarray(points[None, :, :3], np.float32)),
                                       num_group, group_size)
    absolute = (neighbours + centres.unsqueeze(2))[0].numpy().reshape(-1, 3)
    colors = np.repeat(distinct_colors(num_group), group_size, axis=0)
    return CloudPanel([PointLayer(absolute, colors, point_size),
                       PointLayer(centres[0].numpy(), np.zeros(3), 2.5 * point_size)],
                      f"{num_group} FPS groups x {group_size} nearest points")


def parts_panels(points: np.ndarray, predicted: np.ndarray, truth: np.ndarray, part_ids: list[int],
                 point_size: float = 3.0, miou: float | None = None) -> list[CloudPanel]:
    """Two panels of one shape (N, C >= 3): coloured by predicted part and by true part (N,) global part ids,
    one colour per part of its category (``part_ids``), the same colour for the same part in both."""
    palette = distinct_colors(len(part_ids))
    slot = {part: index for index, part in enumerate(part_ids)}
    unknown = sorted((set(np.unique(predicted).tolist()) | set(np.unique(truth).tolist())) - set(slot))
    if unknown:
        raise ValueError(f"part labels {unknown} are not parts of the shape's category {part_ids}")
    colours = [palette[np.vectorize(slot.get)(labels)] for labels in (predicted, truth)]
    score = "" if miou is None else f" (shape mIoU {miou:.1f})"
    return [CloudPanel([PointLayer(points[:, :3], colours[0], point_size)], f"predicted parts{score}"),
            CloudPanel([PointLayer(points[:, :3], colours[1], point_size)], "true parts")]


def fps_index(points: np.ndarray, count: int) -> np.ndarray:
    """(count,) indices of the first ``count`` farthest points of a cloud (N, C >= 3), as the data pipeline
    subsamples; all N indices when N <= count."""
    import torch

    from ..ops.fps import farthest_point_sample

    if len(points) <= count:
        return np.arange(len(points))
    index = farthest_point_sample(torch.from_numpy(np.ascontiguousarray(points[None, :, :3], np.float32)), count)
    return index[0].numpy()


def render_cloud(points: np.ndarray, path: str | Path, size: Size = (640, 480), color_mode: str = "height",
                 values: np.ndarray | None = None, title: str = "", renderer: "str | Renderer" = "auto",
                 view: View = View(), point_size: float = 3.0) -> Path:
    """One cloud (N, C >= 3) coloured by height, normal (C >= 6), file colours (``values`` (N, 3)) or a per-point
    value (``values`` (N,))."""
    return render_panels([cloud_panel(points, color_mode, values, title, point_size)], path, size, 1, renderer, view)


def render_groups(points: np.ndarray, path: str | Path, num_group: int = 32, group_size: int = 32,
                  size: Size = (640, 480), renderer: "str | Renderer" = "auto", view: View = View(),
                  point_size: float = 3.0) -> Path:
    """FPS centres and their kNN neighbourhoods of one cloud (N, C >= 3), one colour per group."""
    return render_panels([groups_panel(points, num_group, group_size, point_size)], path, size, 1, renderer, view)


def render_gallery(clouds: list[np.ndarray], labels: list[str], path: str | Path, columns: int = 4,
                   size: Size = (1200, 900), renderer: "str | Renderer" = "auto", view: View = View(),
                   point_size: float = 2.0) -> Path:
    """A grid of clouds (each (N, C >= 3)) coloured by height, each titled with its label."""
    return render_panels(gallery_panels(clouds, labels, point_size), path, size, columns, renderer, view)


def gallery_panels(clouds: list[np.ndarray], labels: list[str], point_size: float = 2.0) -> list[CloudPanel]:
    """One panel per cloud (N, C >= 3), coloured by height and titled with its label."""
    if len(clouds) != len(labels) or not clouds:
        raise ValueError(f"gallery needs as many labels as clouds (>0): {len(clouds)} clouds, {len(labels)} labels")
    return [cloud_panel(cloud, "height", None, label, point_size) for cloud, label in zip(clouds, labels)]


def routing_panels(points_by_block: list[np.ndarray], experts_by_block: list[np.ndarray], num_experts: int,
                           point_size: float = 3.0) -> list[CloudPanel]:
    """One panel per block: points (P, 3) coloured by their expert index (P,), titled with the block and how many
    of the ``num_experts`` experts it used."""
    colors = distinct_colors(num_experts)
    return [CloudPanel([PointLayer(pts, colors[np.asarray(experts)], point_size)],
                       f"block {i}: {len(np.unique(experts))} of {num_experts} experts")
            for i, (pts, experts) in enumerate(zip(points_by_block, experts_by_block))]


def render_routing(points_by_block: list[np.ndarray], experts_by_block: list[np.ndarray], num_experts: int,
                   path: str | Path, size: Size = (1200, 900), renderer: "str | Renderer" = "auto",
                   view: View = View(), point_size: float = 3.0) -> Path:
    """One panel per block: each group's points coloured by the SMoA expert its token was routed to."""
    panels = routing_panels(points_by_block, experts_by_block, num_experts, point_size)
    return render_panels(panels, path, size, 4, renderer, view)


def render_tsne(features: np.ndarray, labels: np.ndarray, class_names, path: str | Path, size: Size = (800, 700),
                seed: int = 0) -> Path:
    """2-D t-SNE (scikit-learn) of features (N, D), one colour per class of labels (N,), with a legend."""
    from sklearn.manifold import TSNE

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if len(features) != len(labels) or len(features) < 3:
        raise ValueError(f"t-SNE needs >= 3 features and one label each: {len(features)} features, {len(labels)} "
                         f"labels")
    embedded = TSNE(n_components=2, init="pca", random_state=seed,
                    perplexity=min(30.0, max(2.0, (len(features) - 1) / 3))).fit_transform(features)
    colors = distinct_colors(len(class_names))
    figure = new_figure(size)
    ax = figure.add_subplot(111)
    for c, name in enumerate(class_names):
        chosen = labels == c
        if chosen.any():
            ax.scatter(embedded[chosen, 0], embedded[chosen, 1], s=8, color=colors[c], label=str(name))
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    figure.tight_layout()
    return save_png(figure_to_image(figure), path)


def read_scalars(source: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scalar curves {tag: (steps, values)} of an experiment: its TensorBoard event files (any depth below
    ``source``) or, when it has none, its ``results.json`` history (step = epoch, as train.py logs)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such experiment folder or results.json")
    event_files = sorted(source.rglob("events.out.tfevents.*")) if source.is_dir() else []
    if event_files:
        import logging

        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it logs every file it reaches the end of
        folders = sorted({f.parent for f in event_files})
        curves = {}
        for folder in folders:
            accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
            accumulator.Reload()
            prefix = "" if len(folders) == 1 else f"{folder.relative_to(source)}/"
            for tag in accumulator.Tags()["scalars"]:
                events = accumulator.Scalars(tag)
                curves[prefix + tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
        if curves:
            return curves
    results = source / "results.json" if source.is_dir() else source
    if not results.is_file():
        raise FileNotFoundError(f"{source}: no TensorBoard event files and no results.json")
    try:
        history = json.loads(results.read_text())["history"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{results}: not a pcpeft results.json with a 'history' list ({err!r})") from None
    tags = [k for k in dict.fromkeys(k for h in history for k in h) if k != "epoch"]
    curves = {}
    for tag in tags:
        rows = [h for h in history if isinstance(h.get(tag), (int, float))]
        if rows:
            curves[tag] = (np.array([h["epoch"] for h in rows]), np.array([float(h[tag]) for h in rows]))
    return curves


def render_curves(experiment: str | Path, path: str | Path, size: Size = (900, 500),
                  tags: list[str] | None = None) -> Path:
    """One plot per scalar (all, or ``tags``) of an experiment folder's TensorBoard events or results.json."""
    curves = read_scalars(experiment)
    if tags:
        unknown = [t for t in tags if t not in curves]
        if unknown:
            raise ValueError(f"{experiment}: no curve {unknown}; it has {', '.join(curves)}")
        curves = {t: curves[t] for t in tags}
    if not curves:
        raise ValueError(f"{experiment}: no scalar curves to draw")
    columns = min(3, len(curves))
    rows = int(np.ceil(len(curves) / columns))
    figure = new_figure(size)
    for i, (tag, (steps, values)) in enumerate(curves.items()):
        ax = figure.add_subplot(rows, columns, i + 1)
        ax.plot(steps, values, marker="o" if len(steps) < 40 else None, markersize=3, color=f"C{i % 10}")
        ax.set_title(tag, fontsize=9)
        ax.set_xlabel("step (train.py: epoch)", fontsize=8)
        ax.tick_params(labelsize=7)
    figure.tight_layout()
    return save_png(figure_to_image(figure), path)
