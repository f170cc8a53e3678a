"""The training curves of ``results.json`` ``history``: losses, scores (training, validation, test) and the learning
rate per epoch, the reported epoch marked."""
from __future__ import annotations

from typing import Any

#: the chart a history key is drawn on
PANELS = ("loss", "score (%)", "learning rate")


def panel_of(key: str) -> str | None:
    """Which chart a history key belongs on (None: not a curve, e.g. ``epoch``)."""
    if key == "epoch":
        return None
    if key == "lr":
        return "learning rate"
    if "loss" in key:
        return "loss"
    if key.endswith(("_acc", "_miou")):
        return "score (%)"
    return None


def history_curves(history: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{key: (epochs, values)} of every numeric key of the history that is drawn, in the order keys appear."""
    keys = [k for k in dict.fromkeys(k for entry in history for k in entry) if panel_of(k)]
    curves = {}
    for key in keys:
        rows = [e for e in history if isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool)]
        if rows:
            curves[key] = ([int(e["epoch"]) for e in rows], [float(e[key]) for e in rows])
    return curves


def curves_figure(history: list[dict], marked_epoch: int | None = None) -> Any:
    """A Plotly figure: one chart per panel (loss, score, learning rate) with a line per history key; a dashed line
    at ``marked_epoch`` (the epoch of the report's checkpoint)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curves = history_curves(history)
    figure = make_subplots(rows=1, cols=len(PANELS), subplot_titles=PANELS, horizontal_spacing=0.07)
    for key, (epochs, values) in curves.items():
        column = PANELS.index(panel_of(key)) + 1
        figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=key,
                                    marker={"size": 5}, hovertemplate=f"{key}<br>epoch %{{x}}: %{{y:.4g}}"
                                                                      "<extra></extra>"), row=1, col=column)
    if marked_epoch is not None:
        for column in range(1, len(PANELS) + 1):
            figure.add_vline(x=marked_epoch, line_dash="dash", line_color="#888", row=1, col=column)
    figure.update_xaxes(title_text="epoch", dtick=max(1, len(history) // 10) if history else 1)
    figure.update_yaxes(exponentformat="power", row=1, col=3)
    figure.update_layout(template="plotly_white", height=360, margin={"l": 50, "r": 20, "t": 40, "b": 70},
                         legend={"orientation": "h", "y": -0.32}, hovermode="closest")
    return figure


__all__ = ["PANELS", "curves_figure", "history_curves", "panel_of"]
