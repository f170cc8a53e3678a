"""What the docs hooks share (imported by them; not a hook itself): the checkout on the import path, and markdown
table cells."""
from __future__ import annotations

import sys
from pathlib import Path


def import_checkout(config) -> None:
    """Make the checkout's ``pcpeft`` importable even when it is not installed."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def cell(text) -> str:
    """Text safe inside a markdown table cell: ``|``, ``<``, ``>`` and ``*`` escaped outside code spans (a pipe
    inside a code span does not split a cell; ``ROOT/<class>`` is not read as HTML; ``*cls*`` stays literal)."""
    parts = str(text).replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):  # even pieces lie outside code spans, where a pipe would split the cell
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("|", "\\|")
    return "`".join(parts)
