"""One self-contained HTML page: sections of HTML, Plotly figures stored as JSON in the page, plotly.js, the style
sheet and the script inlined. Nothing is fetched when the page opens: it works offline and can be mailed."""
from __future__ import annotations

import functools
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .assets import STYLE, page_script

#: figures are plain Plotly figure dicts ({"data": [...], "layout": {...}}) or plotly ``Figure`` objects
FigureLike = Any


def require_plotly() -> None:
    """Refuse, in one line, to build a page without the plotly package (it draws every figure)."""
    import importlib.util

    from .errors import ReportError

    if importlib.util.find_spec("plotly") is None:
        raise ReportError("pcpeft report draws its pages with plotly, which is not installed: pip install plotly")


def escape(text: object) -> str:
    """HTML-escaped ``str(text)``."""
    return html.escape(str(text), quote=True)


def script_json(value: object) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element (no ``<``, ``>`` or ``&`` left)."""
    import plotly.io as pio

    text = pio.json.to_json_plotly(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly package (the page inlines it)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def figure_dict(figure: FigureLike) -> dict:
    """A Plotly figure as its JSON-able dict (numpy arrays kept: they are written as typed arrays)."""
    return figure if isinstance(figure, dict) else figure.to_plotly_json()


@dataclass
class Section:
    """A titled part of the page; ``anchor`` is its id (the navigation links to it)."""

    title: str
    body: str
    anchor: str


@dataclass
class Page:
    """A report page being assembled: add figures (each returns the HTML element that shows it) and sections, then
    :meth:`html` or :meth:`write`."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    figures: dict[str, dict] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable summary, stored in the page as JSON

    def figure(self, figure: FigureLike, height: int = 360, three_d: bool = False, scenes: int = 1,
               css_class: str = "") -> str:
        """Store ``figure`` in the page and return the element that draws it when it comes into sight; a 3-D
        figure (``three_d``, with ``scenes`` WebGL scenes) is released again when far away and others are drawn."""
        name = f"figure-{len(self.figures)}"
        self.figures[name] = figure_dict(figure)
        classes = " ".join(c for c in ("plot", "three-d placeholder" if three_d else "", css_class) if c)
        scene_attr = f' data-scenes="{scenes}"' if three_d else ""
        return (f'<div class="{classes}" id="{name}" data-figure="{name}"{scene_attr} '
                f'style="height:{int(height)}px"></div>')

    def add(self, title: str, body: str, anchor: str | None = None) -> Section:
        """Append a section."""
        section = Section(title, body, anchor or "".join(c if c.isalnum() else "-" for c in title.lower()))
        self.sections.append(section)
        return section

    def html(self) -> str:
        """The whole page as one string."""
        from .. import __version__

        nav = "".join(f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>' for s in self.sections)
        body = "\n".join(f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>\n{s.body}\n</section>'
                         for s in self.sections)
        subtitle = f'<div class="subtitle">{escape(self.subtitle)}</div>' if self.subtitle else ""
        return "\n".join([
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(self.title)}</title>",
            f"<style>{STYLE}</style>",
            f"<script>{plotly_js()}</script>",
            "</head><body>",
            f"<header><h1>{escape(self.title)}</h1>{subtitle}<nav>{nav}</nav></header>",
            f"<main>{body}</main>",
            f"<footer>made by pcpeft {escape(__version__)} (pcpeft report); one self-contained file: plotly.js "
            f"{plotly_version()} and every figure are inside it, nothing is fetched.</footer>",
            f'<script type="application/json" id="pcpeft-report">{script_json(self.data)}</script>',
            f'<script type="application/json" id="pcpeft-figures">{script_json(self.figures)}</script>',
            f"<script>{page_script()}</script>",
            "</body></html>",
        ])

    def write(self, path: str | Path) -> Path:
        """Write the page (UTF-8) to ``path``, creating its folder."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path


def plotly_version() -> str:
    """The version of the inlined plotly.js (as its bundle's header states it)."""
    head = plotly_js()[:200]
    marker = "plotly.js v"
    return head[head.index(marker) + len(marker):].split()[0] if marker in head else "(bundled)"


def read_page_data(path: str | Path) -> dict:
    """The machine-readable summary a report page stores (its ``pcpeft-report`` JSON block)."""
    text = Path(path).read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="pcpeft-report">')
    start = text.index(">", start) + 1
    return json.loads(text[start:text.index("</script>", start)])


def table_html(header: list[str] | None, rows: list[list[str]], numeric: set[int] | None = None,
               css_class: str = "") -> str:
    """A table of already-escaped cell HTML (``header`` None: no header row); columns in ``numeric`` are
    right-aligned."""
    numeric = numeric or set()
    head = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>" if header else ""
    lines = ["".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
             for row in rows]
    body = "".join(f"<tr>{line}</tr>" for line in lines)
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}>{head}<tbody>{body}</tbody></table>"


__all__ = ["Page", "Section", "escape", "figure_dict", "plotly_js", "read_page_data", "require_plotly", "script_json",
           "table_html"]
