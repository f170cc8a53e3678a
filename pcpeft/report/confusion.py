"""The confusion matrix (an interactive heat map: counts and rates) and the per-class accuracy of a classifier's
test predictions."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .page import escape, table_html


def row_rates(matrix: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix (rows: true class) divided by its sum (rows without samples: 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def confusion_height(classes: int) -> int:
    """Pixels of the heat map of ``classes`` classes (cells of about 34 pixels, within 360-900)."""
    return max(360, min(900, 60 + 34 * classes))


def confusion_figure(matrix: np.ndarray, names: Sequence[str]) -> Any:
    """A heat map of the row rates (colour) with the counts written in the cells; hovering a cell gives the true
    class, the prediction, the count and the rate."""
    import plotly.graph_objects as go

    matrix = np.asarray(matrix, dtype=np.int64)
    rates = row_rates(matrix)
    names = [str(n) for n in names]
    hover = [[f"true {names[t]}<br>predicted {names[p]}<br>{matrix[t, p]} of {matrix[t].sum()} "
              f"({100 * rates[t, p]:.1f}%)" for p in range(len(names))] for t in range(len(names))]
    figure = go.Figure(go.Heatmap(
        z=100 * rates, x=names, y=names, text=[[str(c) if c else "" for c in row] for row in matrix.tolist()],
        texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
        colorscale="Blues", zmin=0, zmax=100, colorbar={"title": {"text": "% of row"}}))
    figure.update_layout(template="plotly_white", height=confusion_height(len(names)),
                         margin={"l": 100, "r": 20, "t": 20, "b": 100},
                         xaxis={"title": "predicted class", "side": "bottom", "tickangle": -45},
                         yaxis={"title": "true class", "autorange": "reversed"})
    return figure


def per_class(matrix: np.ndarray, names: Sequence[str]) -> list[dict]:
    """Per class: its name, test samples, correct ones and accuracy (%; None without samples)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    rows = []
    for index, name in enumerate(names):
        total, correct = int(matrix[index].sum()), int(matrix[index, index])
        rows.append({"class": str(name), "samples": total, "correct": correct,
                     "accuracy": 100.0 * correct / total if total else None})
    return rows


def per_class_figure(rows: list[dict]) -> Any:
    """A bar per class: its accuracy (%), the counts on hover."""
    import plotly.graph_objects as go

    shown = [r for r in rows if r["accuracy"] is not None]
    figure = go.Figure(go.Bar(
        x=[r["class"] for r in shown], y=[r["accuracy"] for r in shown],
        customdata=[[r["correct"], r["samples"]] for r in shown],
        hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]} of %{customdata[1]})<extra></extra>",
        marker_color="#1565c0"))
    figure.update_layout(template="plotly_white", height=320, margin={"l": 50, "r": 20, "t": 20, "b": 90},
                         yaxis={"title": "accuracy (%)", "range": [0, 100]}, xaxis={"tickangle": -45})
    return figure


def per_class_table(rows: list[dict]) -> str:
    """The per-class accuracy as an HTML table."""
    return table_html(["class", "test samples", "correct", "accuracy (%)"],
                      [[escape(r["class"]), str(r["samples"]), str(r["correct"]),
                        "-" if r["accuracy"] is None else f"{r['accuracy']:.1f}"] for r in rows], numeric={1, 2, 3})


__all__ = ["confusion_figure", "confusion_height", "per_class", "per_class_figure", "per_class_table", "row_rates"]
