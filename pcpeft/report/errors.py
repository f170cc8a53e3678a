"""The error a report raises when the user asked for something the run or folder cannot give."""
from __future__ import annotations

from ..errors import UserError


class ReportError(UserError, ValueError):
    """A report cannot be built as asked: the folder is no run or sweep, or an option does not fit the run."""


__all__ = ["ReportError"]
