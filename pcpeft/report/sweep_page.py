"""``pcpeft report SWEEP_DIR``: the page of a sweep (or of any folder of run folders): the table of ``pcpeft table``
with its 95% intervals, the cells' scores and the paired comparisons against a baseline as interactive charts, and
each cell's runs linked to their own reports (relative links, so the folder can be moved or zipped whole)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..experiments.table import (
    EPOCH_LABELS,
    METRIC_NAMES,
    RunRecord,
    Table,
    build_table,
    choose_on_validation,
    collect_runs,
)
from .errors import ReportError
from .page import Page, escape, require_plotly, table_html
from .run_report import REPORT_NAME, ReportOptions, build_run_report

LOG = logging.getLogger("pcpeft")


def is_table_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a sweep (``sweep.yaml``) or holds run folders (a ``results.json`` below it) rather than
    being a run folder itself (``config.yaml``)."""
    folder = Path(folder)
    if (folder / "config.yaml").is_file():
        return False
    return (folder / "sweep.yaml").is_file() or any(folder.rglob("results.json"))


@dataclass
class RunLink:
    """A run of a cell: its replicate value, its report (relative to the page) and why it was not built, if so."""

    replicate: str
    href: str
    missing: str = ""


@dataclass
class CellRuns:
    links: list[RunLink] = field(default_factory=list)


def _key(cell: dict[str, str]) -> tuple:
    return tuple(sorted(cell.items()))


def _label(cell: dict[str, str], drop: set[str]) -> str:
    return ", ".join(f"{v}" for k, v in cell.items() if k not in drop) or "all runs"


def run_links(records: list[RunRecord], page_dir: Path, build: bool, options: ReportOptions) -> dict[tuple, CellRuns]:
    """Per cell, a link to each run's ``report.html`` (built first when ``build``; a run whose report cannot be
    built keeps its link with the reason)."""
    cells: dict[tuple, CellRuns] = {}
    for record in sorted(records, key=lambda r: r.replicate):
        report = record.folder / REPORT_NAME
        missing = ""
        if build:
            try:
                build_run_report(record.folder, report, options)
            except UserError as err:
                missing = f"not built: {err}"
                LOG.warning(f"report: {record.folder}: {missing}")
        elif not report.is_file():
            missing = f"not built yet: `pcpeft report {record.folder}` writes it"
        href = Path(os.path.relpath(report, page_dir)).as_posix()
        cells.setdefault(_key(record.cell), CellRuns()).links.append(RunLink(record.replicate, href, missing))
    return cells


def scores_figure(table: Table, metric: str, labels: list[str]) -> Any:
    """Per cell: the replicates' scores (grey) and their mean with its 95% interval."""
    import plotly.graph_objects as go

    rows = [(label, row) for label, row in zip(labels, table.rows) if metric in row.summaries]
    figure = go.Figure()
    for label, row in rows:
        values = row.values[metric]
        figure.add_trace(go.Scatter(x=[label] * len(values), y=list(values.values()), mode="markers",
                                    marker={"color": "#9aa5b1", "size": 7}, customdata=list(values),
                                    hovertemplate=f"{escape(label)}<br>{table.replicate} %{{customdata}}: "
                                                  "%{y:.2f}<extra></extra>", showlegend=False))
    means = [row.summaries[metric].mean for _, row in rows]
    plus = [(row.summaries[metric].ci_high - row.summaries[metric].mean)
            if row.summaries[metric].ci_high is not None else 0 for _, row in rows]
    minus = [(row.summaries[metric].mean - row.summaries[metric].ci_low)
             if row.summaries[metric].ci_low is not None else 0 for _, row in rows]
    counts = [row.summaries[metric].n for _, row in rows]
    figure.add_trace(go.Scatter(x=[label for label, _ in rows], y=means, mode="markers", name="mean, 95% interval",
                                marker={"color": "#1565c0", "size": 11, "symbol": "diamond"},
                                error_y={"type": "data", "array": plus, "arrayminus": minus, "thickness": 2},
                                customdata=counts,
                                hovertemplate="%{x}<br>mean %{y:.2f} (n=%{customdata})<extra></extra>"))
    figure.update_layout(template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 20, "b": 110},
                         yaxis={"title": f"{METRIC_NAMES.get(metric, metric)} (%)"}, xaxis={"tickangle": -30},
                         showlegend=False)
    return figure


def paired_figure(table: Table, labels: list[str]) -> Any:
    """Per cell with a paired comparison: the mean difference to the baseline with its 95% interval."""
    import plotly.graph_objects as go

    rows = [(label, row.paired) for label, row in zip(labels, table.rows) if row.paired is not None]
    metric = METRIC_NAMES.get(table.metrics[0], table.metrics[0])
    figure = go.Figure(go.Scatter(
        x=[label for label, _ in rows], y=[p.mean_diff for _, p in rows], mode="markers",
        marker={"color": "#c62828", "size": 11},
        error_y={"type": "data", "thickness": 2,
                 "array": [(p.ci_high - p.mean_diff) if p.ci_high is not None else 0 for _, p in rows],
                 "arrayminus": [(p.mean_diff - p.ci_low) if p.ci_low is not None else 0 for _, p in rows]},
        customdata=[[p.n, p.test, "-" if p.p_value is None else f"{p.p_value:.3g}"] for _, p in rows],
        hovertemplate="%{x}<br>difference %{y:+.2f} (n=%{customdata[0]})<br>%{customdata[1]}, p "
                      "%{customdata[2]}<extra></extra>"))
    figure.add_hline(y=0, line_color="#616e7c", line_dash="dash")
    figure.update_layout(template="plotly_white", height=360, margin={"l": 60, "r": 20, "t": 20, "b": 110},
                         yaxis={"title": f"{metric} - baseline (points)"}, xaxis={"tickangle": -30})
    return figure


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_body(table: Table, links: dict[tuple, CellRuns]) -> str:
    """The table as HTML, each cell's runs linked to their reports."""
    columns: list[str] = []
    for row in table.rows:
        columns += [k for k in row.cell if k not in columns]
    head = [escape(c) for c in columns] + [f"chosen {escape(k)}" for k in table.select]
    for metric in table.metrics:
        name = escape(METRIC_NAMES.get(metric, metric))
        head += [f"{name} mean &plusmn; std", f"{name} 95% CI", "n", f"{name} min-max"]
    if table.baseline:
        head += ["&Delta; vs baseline (95% CI)", "test, p"]
    head.append(f"runs ({escape(table.replicate)})")
    rows = []
    for row in table.rows:
        cells = [escape(row.cell.get(c, "")) for c in columns] + [escape(row.chosen.get(k, "")) for k in table.select]
        for metric in table.metrics:
            s = row.summaries.get(metric)
            cells += (["-", "-", "0", "-"] if s is None else
                      [f"{s.mean:.2f} &plusmn; {_fmt(s.std)}", f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]", str(s.n),
                       f"{s.min:.2f}-{s.max:.2f}"])
        if table.baseline:
            p = row.paired
            cells += (["-", "-"] if p is None else
                      [f"{p.mean_diff:+.2f} [{_fmt(p.ci_low)}, {_fmt(p.ci_high)}] (n={p.n})",
                       f"{escape(p.test)}, {_fmt(p.p_value, 3)}"])
        run_cells = []
        for link in links.get(_key(row.cell), CellRuns()).links:
            title = f' title="{escape(link.missing)}"' if link.missing else ""
            mark = "*" if link.missing else ""
            run_cells.append(f'<a href="{escape(link.href)}"{title}>{escape(link.replicate)}{mark}</a>')
        cells.append(" ".join(run_cells) or "-")
        rows.append(cells)
    numeric = set(range(len(columns) + len(table.select), len(head) - 1))
    return table_html(head, rows, numeric)


def build_sweep_report(folder: str | Path, out: str | Path | None = None, epoch: str | None = None,
                       baseline: dict[str, str] | None = None, build_runs: bool = True,
                       options: ReportOptions | None = None) -> Path:
    """Write the page of the sweep (or folder of run folders) ``folder`` to ``out`` (default
    ``FOLDER/report.html``), building each run's report first unless ``build_runs`` is false."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    require_plotly()
    out = Path(out) if out is not None else folder / REPORT_NAME
    table = build_table(folder, epoch, baseline)
    records, _, select = collect_runs(folder)
    records, _ = choose_on_validation(records, select)
    links = run_links(records, out.resolve().parent, build_runs, options or ReportOptions())
    drop = {k for k in {k for r in table.rows for k in r.cell} if len({r.cell.get(k) for r in table.rows}) == 1}
    labels = [_label(row.cell, drop if len(table.rows) > 1 else set()) for row in table.rows]
    kind = "sweep" if (folder / "sweep.yaml").is_file() else "folder of runs"
    page = Page(f"{folder.name}: {kind}", f"pcpeft report of {folder}: {len(records)} finished runs in "
                                         f"{len(table.rows)} cells")
    missing = sum(1 for cell in links.values() for link in cell.links if link.missing)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in table.notes)
    run_note = (f'<p class="note">each {escape(table.replicate)} in the last column links to that run\'s report'
                + (f"; {missing} marked * are missing (hover for why)" if missing else "") + ".</p>")
    page.add("Table", notes + table_body(table, links) + run_note, "table")
    for metric in table.metrics:
        name = METRIC_NAMES.get(metric, metric)
        page.add(f"{name} per cell", page.figure(scores_figure(table, metric, labels), height=380)
                 + f'<p class="note">grey: each {escape(table.replicate)}; blue: the mean and its 95% t interval '
                   f"(test scores of the {escape(EPOCH_LABELS[table.epoch])}).</p>", f"scores-{metric}")
    if table.baseline:
        wanted = ", ".join(f"{k}={v}" for k, v in table.baseline.items())
        page.add("Paired comparisons", page.figure(paired_figure(table, labels), height=360)
                 + f'<p class="note">mean paired difference of {escape(METRIC_NAMES[table.metrics[0]])} against '
                   f"the baseline ({escape(wanted)}) over the {escape(table.replicate)} values both cells have, "
                   f"with its 95% interval; hover for the test and its p-value.</p>", "paired")
    page.data.update({"folder": str(folder), "epoch": table.epoch, "baseline": table.baseline,
                      "rows": [{"cell": row.cell, "runs": [vars(link) for link in
                                                           links.get(_key(row.cell), CellRuns()).links]}
                               for row in table.rows]})
    return page.write(out)


__all__ = ["build_sweep_report", "is_table_folder", "paired_figure", "run_links", "scores_figure", "table_body"]
