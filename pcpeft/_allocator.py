"""CPU allocator tuning for the command-line tools: keep large tensors on the reused heap instead of fresh mmaps.

PyTorch's CPU tensors come from glibc ``malloc``. By default glibc serves a block above its mmap threshold (at most
32 MB, adjusted dynamically) with a fresh ``mmap`` and returns it to the kernel on ``free``, and it trims the top of
the heap back to the kernel beyond 128 KB of free space. A training step allocates and frees the same large
activations every time (the tokenizer's (B*G*M, 512) tensors are 67 MB at batch 8), so every step pays the page
faults and the kernel's zero-filling of those pages again. :func:`tune_cpu_allocator` raises both thresholds so that
freed blocks stay in the process and are reused: measured on the 2-core CPU machine, 19-27% off a full fine-tuning
step and off inference (docs/benchmarks.md), for up to ~15% more peak resident memory (fragmentation of a heap that
is not trimmed).

It is process-wide, so the library never calls it on import: the tools do, through :func:`pcpeft.cli.run_tool`.
``PCPEFT_MALLOC_TUNING=0`` turns it off; it does nothing off glibc (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

TUNING_ENV = "PCPEFT_MALLOC_TUNING"
#: glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc accepts up to its heap maximum on 64-bit)
MMAP_THRESHOLD = 1 << 30
#: free space at the heap's top kept before trimming
TRIM_THRESHOLD = (1 << 31) - 1

_applied: bool | None = None


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):  # musl has no gnu_* symbols
        return None
    return libc


def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (see the module docstring).

    Returns whether the tuning is in effect; False when ``PCPEFT_MALLOC_TUNING=0``, off glibc, or when glibc
    refused a value.
    """
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get(TUNING_ENV, "1") == "0":
        _applied = False
        return False
    libc = _glibc()
    if libc is None:
        _applied = False
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
