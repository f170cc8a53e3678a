"""Self-contained HTML reports of runs and sweeps (``pcpeft report``): one file each, plotly.js and every figure
inlined, interactive 3-D point clouds drawn with WebGL; nothing is fetched when the page opens.

* :func:`build_run_report` - a run's card, training curves, confusion matrix / per-category IoU, 3-D gallery;
* :func:`build_sweep_report` - a sweep's table with intervals and paired comparisons, linked to its runs' reports;
* :func:`write_panels_page` - the 3-D view of ``pcpeft viz cloud|groups|routing --html``.
"""
from __future__ import annotations

from .errors import ReportError
from .page import Page, read_page_data
from .run_report import REPORT_NAME, ReportOptions, build_run_report
from .sweep_page import build_sweep_report, is_table_folder
from .viz_page import write_panels_page

__all__ = ["Page", "REPORT_NAME", "ReportError", "ReportOptions", "build_run_report", "build_sweep_report",
           "is_table_folder", "read_page_data", "write_panels_page"]
