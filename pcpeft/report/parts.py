"""Part segmentation in the report: per shape the predicted and the true parts side by side in 3-D (the panels of
``pcpeft viz parts``), worst shapes first, and the per-category IoU."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..viz import fps_index, parts_panels
from .page import escape, table_html


def shape_order(shape_iou: np.ndarray, count: int) -> list[int]:
    """``count`` shape indices, the lowest shape IoU first."""
    return [int(i) for i in np.argsort(np.asarray(shape_iou), kind="stable")[:count]]


def shape_panels(points: np.ndarray, predicted: np.ndarray, truth: np.ndarray, part_ids: Sequence[int],
                 iou: float, limit: int) -> list:
    """The prediction and ground-truth panels of one shape (N, C >= 3), its points thinned to ``limit`` by farthest
    point sampling (the same points in both)."""
    keep = fps_index(points, limit)
    return parts_panels(points[keep], predicted[keep], truth[keep], list(part_ids), 3.0, iou)


def category_iou_figure(metrics: dict) -> Any:
    """A bar per category: its mean shape IoU (%), with the instance and class mIoU as lines."""
    import plotly.graph_objects as go

    per_category = metrics.get("per_category_iou") or {}
    figure = go.Figure(go.Bar(x=list(per_category), y=list(per_category.values()), marker_color="#1565c0",
                              hovertemplate="%{x}: %{y:.1f}% IoU<extra></extra>", name="category IoU"))
    for key, label, dash in (("instance_miou", "instance mIoU", "dash"), ("class_miou", "class mIoU", "dot")):
        if isinstance(metrics.get(key), (int, float)):
            figure.add_hline(y=metrics[key], line_dash=dash, line_color="#c62828",
                             annotation_text=f"{label} {metrics[key]:.1f}", annotation_position="top left")
    figure.update_layout(template="plotly_white", height=320, margin={"l": 50, "r": 20, "t": 20, "b": 60},
                         yaxis={"title": "IoU (%)", "range": [0, 100]})
    return figure


def category_table(metrics: dict, categories: np.ndarray, names: Sequence[str]) -> str:
    """Per category: test shapes and mean shape IoU (%)."""
    counts = np.bincount(np.asarray(categories, dtype=np.int64), minlength=len(names))
    per_category = metrics.get("per_category_iou") or {}
    rows = [[escape(name), str(int(counts[i])),
             f"{per_category[name]:.1f}" if name in per_category else "-"] for i, name in enumerate(names)]
    return table_html(["category", "test shapes", "IoU (%)"], rows, numeric={1, 2})


__all__ = ["category_iou_figure", "category_table", "shape_order", "shape_panels"]
