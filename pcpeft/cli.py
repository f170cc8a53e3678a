"""What every command-line tool shares: errors for people, not tracebacks.

``run_tool(main)`` runs a tool's ``main``. An error that is the user's doing (:class:`pcpeft.errors.UserError`:
a missing file or data set, a bad config key or value, an unknown method or model, a checkpoint that does not
fit, bad point files, a full disk) prints one ``error: ...`` message and exits with status 2. ``--debug`` (or the
environment variable ``PCPEFT_DEBUG=1``) shows the full traceback instead. Any other exception is a bug and keeps
its traceback. Ctrl-C exits with status 130 and one line. Before ``main`` runs, the CPU allocator is tuned for the
large,
repeated tensor allocations of training and inference (:mod:`pcpeft._allocator`).
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable

from ._allocator import tune_cpu_allocator
from .errors import UserError

DEBUG_ENV = "PCPEFT_DEBUG"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also: {DEBUG_ENV}=1)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--vote_times``, ``--topk``, ...)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def debugging(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def fail(message: str, status: int = 2) -> None:
    """Print ``error: message`` (first line prefixed) to stderr and exit with ``status``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def run_tool(main: Callable[[], object], debug: bool | None = None) -> None:
    """Run ``main`` with the error policy above, then exit (0 when it returns). ``debug`` (default: ``--debug`` in
    ``sys.argv`` or ``PCPEFT_DEBUG=1``) keeps tracebacks. Tunes the CPU allocator first
    (:func:`pcpeft._allocator.tune_cpu_allocator`; ``PCPEFT_MALLOC_TUNING=0`` turns that off)."""
    tune_cpu_allocator()
    show_traceback = debugging() or bool(debug)
    try:
        status = main()
    except UserError as err:
        if show_traceback:
            raise
        fail(str(err))
    except KeyboardInterrupt:
        if show_traceback:
            raise
        fail("interrupted (Ctrl-C); a training run continues with --resume", 130)
    except OSError as err:
        if err.errno != errno.ENOSPC or show_traceback:
            raise
        fail(f"disk full: {err}")
    raise SystemExit(status if isinstance(status, int) else 0)
