"""The interactive twin of a ``pcpeft viz cloud|groups|routing`` picture: the same panels in 3-D, one HTML file."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..viz import View
from ..viz.renderers import CloudPanel
from .clouds import DISPLAY_POINTS, panels_figure
from .errors import ReportError
from .page import Page, escape, require_plotly

#: the pictures that have an interactive twin
HTML_PICTURES = ("cloud", "groups", "routing")


def html_path(png: str | Path) -> Path:
    """Where the 3-D page of the picture ``png`` goes: beside it, ``.html`` for its suffix."""
    return Path(png).with_suffix(".html")


def check_html_picture(what: str) -> None:
    """Refuse ``--html`` for a picture without a 3-D twin."""
    if what not in HTML_PICTURES:
        raise ReportError(f"--html: viz {what} has no 3-D view; --html goes with {', '.join(HTML_PICTURES)}")


def write_panels_page(panels: Sequence[CloudPanel], png: str | Path, what: str, view: View = View(),
                      limit: int = DISPLAY_POINTS) -> Path:
    """Write the panels of the picture ``png`` as interactive 3-D views to ``png`` with ``.html``; returns the
    path. Each panel is drawn with at most ``limit`` points."""
    check_html_picture(what)
    require_plotly()
    page = Page(f"pcpeft viz {what}", f"the interactive view of {Path(png).name}")
    tiles = []
    for panel in panels:
        figure = panels_figure([panel], limit, view, height=420, titles=False)
        title = f'<div class="caption">{escape(panel.title)}</div>' if panel.title else ""
        tiles.append(f'<div class="tile">{title}{page.figure(figure, 420, three_d=True, css_class="view")}</div>')
    drawn = sum(min(len(layer.points), limit) for panel in panels for layer in panel.layers)
    total = sum(len(layer.points) for panel in panels for layer in panel.layers)
    note = (f'<p class="note">drag to rotate, scroll to zoom, double-click to reset. {drawn} of {total} points drawn'
            f'{" (points subsampled for display)" if drawn < total else ""}.</p>')
    css = "gallery" if len(panels) > 1 else ""
    page.add(f"viz {what}", note + f'<div class="{css}">{"".join(tiles)}</div>', "view")
    page.data.update({"what": what, "panels": len(panels)})
    return page.write(html_path(png))


__all__ = ["HTML_PICTURES", "check_html_picture", "html_path", "write_panels_page"]
