"""Point clouds in interactive 3-D (Plotly ``scatter3d``, WebGL): the panels the PNG pictures draw
(:mod:`pcpeft.viz.figures`) turned into 3-D figures, the colourings of the gallery (height, FPS group, SMoA
expert) and the order of the gallery (misclassified clouds first).

Clouds are drawn with at most a few hundred to :data:`DISPLAY_POINTS` points each (farthest point sampling of a
cloud, evenly spaced points of a grouped one) so that a page of many clouds stays small; the page says so.
"""
from __future__ import annotations

import base64
from typing import Sequence

import numpy as np
import torch

from ..viz import View, cloud_panel, expert_choices, fps_index, groups_panel, routing_panels
from ..viz.renderers import CloudPanel, PointLayer
from .errors import ReportError

COLORINGS = ("height", "groups", "experts")
#: the most points of one cloud the page draws
DISPLAY_POINTS = 1024
#: the most points the whole gallery draws (more clouds: fewer points each, never under MIN_DISPLAY_POINTS)
GALLERY_POINTS = 110_000
MIN_DISPLAY_POINTS = 128
MARKER_SIZE = 2.6
#: the longest side of a cloud's box in Plotly's scene units (a unit cube is what Plotly fits in view by default;
#: its ``aspectmode: data`` instead scales the box to a unit volume, which puts a long cloud out of sight)
BOX_SIDE = 1.5


def display_limit(views: int) -> int:
    """Points drawn per view for a gallery of ``views`` 3-D views."""
    return int(max(MIN_DISPLAY_POINTS, min(DISPLAY_POINTS, GALLERY_POINTS // max(views, 1))))


def hex_colors(colors: np.ndarray) -> list[str]:
    """(N, 3) RGB in [0, 1] -> N ``#rrggbb`` strings."""
    values = np.clip(np.rint(np.asarray(colors, dtype=np.float64) * 255), 0, 255).astype(np.int64)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in values]


def thin(layer: PointLayer, limit: int) -> PointLayer:
    """The layer with at most ``limit`` evenly spaced points (grouped points stay in proportion per group)."""
    if len(layer.points) <= limit:
        return layer
    keep = np.linspace(0, len(layer.points) - 1, limit).round().astype(np.int64)
    return PointLayer(layer.points[keep], layer.colors[keep], layer.point_size)


def camera(view: View = View()) -> dict:
    """Plotly's camera for the PNG pictures' view (:class:`pcpeft.viz.View`): the same direction and up axis,
    orthographic."""
    eye = view.basis()[0]  # already in the cloud's frame, y-up or z-up
    up = (0.0, 0.0, 1.0) if view.up == "z" else (0.0, 1.0, 0.0)
    return {"eye": dict(zip("xyz", (float(v) * 2.0 for v in eye))), "up": dict(zip("xyz", up)),
            "projection": {"type": "orthographic"}}


def scene_layout(view: View = View(), points: np.ndarray | None = None) -> dict:
    """A scene without axes, grid or background, seen from ``view``; the box of ``points`` (N, 3) keeps its
    proportions (no stretching), its longest side :data:`BOX_SIDE`, so that it stays in sight however it is
    turned."""
    axis = {"visible": False, "showspikes": False}
    layout = {"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "cube", "camera": camera(view),
              "dragmode": "turntable"}
    if points is not None and len(points):
        ranges = np.ptp(np.asarray(points, dtype=np.float64)[:, :3], axis=0)
        ratio = np.maximum(ranges / max(float(ranges.max()), 1e-12), 0.02) * BOX_SIDE
        layout.update({"aspectmode": "manual", "aspectratio": dict(zip("xyz", (float(r) for r in ratio)))})
    return layout


def typed_array(values: np.ndarray) -> dict:
    """(N,) numbers as plotly.js's typed-array form (float32, base64): a third of the size of their decimals."""
    data = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


def layer_trace(layer: PointLayer, scene: str, limit: int) -> dict:
    """A ``scatter3d`` trace (a plain Plotly dict) of one point layer thinned to ``limit`` points, one colour per
    point."""
    layer = thin(layer, limit)
    size = MARKER_SIZE * layer.point_size / 3.0
    return {"type": "scatter3d", "mode": "markers", "scene": scene, "hoverinfo": "skip", "showlegend": False,
            **{axis: typed_array(layer.points[:, i]) for i, axis in enumerate("xyz")},
            "marker": {"size": size, "color": hex_colors(layer.colors), "line": {"width": 0}},
            "meta": {"points": len(layer.points)}}


def drawn_points(figure: dict) -> int:
    """How many points a figure of :func:`panels_figure` draws."""
    return sum(trace["meta"]["points"] for trace in figure["data"])


def panels_figure(panels: Sequence[CloudPanel], limit: int = DISPLAY_POINTS, view: View = View(),
                  height: int = 300, titles: bool = True) -> dict:
    """A Plotly figure (a plain dict) of ``panels`` side by side, one 3-D scene each (rotate: drag; zoom: wheel);
    each panel drawn with at most ``limit`` points."""
    data, layout, notes = [], {}, []
    count = len(panels)
    for index, panel in enumerate(panels):
        scene = "scene" if index == 0 else f"scene{index + 1}"
        sizes = [len(layer.points) for layer in panel.layers]
        for layer, points in zip(panel.layers, sizes):
            share = max(1, round(limit * points / sum(sizes))) if len(sizes) > 1 else limit
            data.append(layer_trace(layer, scene, share))
        bottom = 0.08 if titles and panel.title else 0.0
        box = np.concatenate([layer.points for layer in panel.layers])
        layout[scene] = {**scene_layout(view, box), "domain": {"x": [index / count, (index + 1) / count],
                                                               "y": [bottom, 1]}}
        if titles and panel.title:  # below the scene: the tool bar takes the top right corner
            notes.append({"text": panel.title, "x": (index + 0.5) / count, "y": 0, "xref": "paper", "yref": "paper",
                          "showarrow": False, "yanchor": "bottom", "font": {"size": 12}})
    layout.update({"height": height, "margin": {"l": 0, "r": 0, "t": 4, "b": 0}, "paper_bgcolor": "white",
                   "showlegend": False, "annotations": notes})
    return {"data": data, "layout": layout}


def model_input(settings, points: torch.Tensor) -> torch.Tensor:
    """A test cloud (N, C) as the model sees it: the recipe's test transform (FPS to ``dataset.npoints``)."""
    from ..engine.data import test_transform

    npoints = settings.dataset.npoints
    return test_transform(npoints)(points[None, :, :3].float().contiguous())[0]


def smoa_blocks(model) -> int:
    """How many blocks route through SMoA experts (0: the model has no SMoA)."""
    if "smoa" not in getattr(model, "peft_modules", {}):
        return 0
    with torch.no_grad():
        group = model.base_model.group_divider
        probe = torch.zeros(1, max(group.num_group, group.group_size) * 2, 3).uniform_(-1, 1)
        model(probe)
    return len(model.routing())


def check_coloring(coloring: str, block: int, model, run: str) -> None:
    """Refuse a colouring the run cannot give, naming the run and what it has."""
    if coloring not in COLORINGS:
        raise ReportError(f"--color {coloring}: choose one of {', '.join(COLORINGS)}")
    if coloring == "groups" and not hasattr(getattr(model, "base_model", model), "group_divider"):
        raise ReportError(f"--color groups: {run} has no point groups (an image model?); use --color height")
    if coloring == "experts":
        blocks = smoa_blocks(model)
        methods = ", ".join(c.method for c in getattr(model, "peft_configs", [])) or "none"
        if not blocks:
            raise ReportError(f"--color experts: {run} has no SMoA experts (methods: {methods}); SMoA comes with "
                              f"adapter_x; use --color height or groups")
        if not 0 <= block < blocks:
            raise ReportError(f"--block {block}: {run} routes through SMoA in {blocks} blocks (0 to {blocks - 1})")


def cloud_view(model, points: torch.Tensor, coloring: str, block: int, limit: int) -> CloudPanel:
    """A model-input cloud (N, 3) as a panel coloured by ``coloring``: height, the FPS group of each point (the
    model's own grouping), or the SMoA expert its group's token was routed to in ``block``."""
    if coloring == "experts":
        grouped, experts, count = expert_choices(model, points)
        return routing_panels(grouped, experts, count)[block]
    if coloring == "groups":
        divider = model.base_model.group_divider
        return groups_panel(points.numpy(), divider.num_group, divider.group_size)
    cloud = points.numpy()
    return cloud_panel(cloud[fps_index(cloud, limit)], "height")


def gallery_order(labels: np.ndarray, predicted: np.ndarray, probability: np.ndarray, count: int) -> list[int]:
    """``count`` sample indices: the misclassified ones first (most confident mistakes first), then correctly
    classified ones taken in turn from each class (least confident first within a class)."""
    labels, predicted, probability = np.asarray(labels), np.asarray(predicted), np.asarray(probability)
    wrong = np.flatnonzero(labels != predicted)
    chosen = [int(i) for i in wrong[np.argsort(-probability[wrong], kind="stable")]]
    queues = []
    for label in np.unique(labels):
        right = np.flatnonzero((labels == label) & (predicted == label))
        queues.append([int(i) for i in right[np.argsort(probability[right], kind="stable")]])
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen[:count]


def legend_html(names: Sequence[str], colors: np.ndarray) -> str:
    """A row of coloured dots with names (the colours of a discrete colouring)."""
    from .page import escape

    items = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>'
                    for n, c in zip(names, hex_colors(colors)))
    return f'<div class="legend note">{items}</div>'


__all__ = ["COLORINGS", "DISPLAY_POINTS", "camera", "check_coloring", "cloud_view", "display_limit", "drawn_points",
           "gallery_order", "hex_colors", "legend_html", "model_input", "panels_figure", "scene_layout", "smoa_blocks",
           "thin", "typed_array"]
