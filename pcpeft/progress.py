"""Progress bars only where someone watches: on a terminal, or when asked.

``pcpeft ... --progress auto`` (the default) shows bars only when standard error is a terminal, so logs and pipes
get the one line per epoch the trainer logs instead of thousands of ``\\r``-joined updates; ``always`` and
``never`` decide regardless. Code that draws a bar asks :func:`shown` whether to.
"""
from __future__ import annotations

import sys

MODES = ("auto", "always", "never")
_mode = "auto"


def set_mode(mode: str) -> None:
    """Set this process's progress mode (``auto``, ``always`` or ``never``)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    _mode = mode


def shown(requested: bool = True) -> bool:
    """Whether a bar the caller would draw (``requested``) is drawn under the current mode."""
    if not requested or _mode == "never":
        return False
    if _mode == "always":
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


__all__ = ["MODES", "set_mode", "shown"]
