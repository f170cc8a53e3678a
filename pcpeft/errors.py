"""The one base class of every error that is the user's doing (a bad file, key, value or argument).

The command-line tools print such an error as one line and exit with status 2 (``pcpeft.cli``); anything else is
a bug and keeps its traceback. Each module's own error type (``ConfigError``, ``CheckpointError``,
``DatasetError``, ``PeftError``, ...) derives from :class:`UserError` as well as from the built-in type it always
was, so existing ``except ValueError`` code keeps working.
"""
from __future__ import annotations


class UserError(Exception):
    """An input the user gave is wrong; the message names the file, key or value and what is wrong with it."""


class UsageError(UserError, ValueError):
    """Command-line arguments that do not go together, or a file given where another kind is needed."""
