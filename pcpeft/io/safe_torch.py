"""``torch.load`` for files a user is handed: tensors only (``weights_only=True``) plus numpy arrays and scalars.

PyTorch's weights-only unpickler already refuses every callable except tensors, containers and numbers. Official
training files also carry numpy scalars and arrays in their ``metrics`` entries, so those (and only those) are
added to its allow-list here. A file that asks for anything else raises :class:`RefusedPickleError` naming the
file and the refused global; the message never suggests turning the check off.

Sizes are checked before torch allocates: the members of a zip archive (the format ``torch.save`` writes) may not
claim more bytes than the file holds, since torch writes them uncompressed and a deflated member would inflate in
memory; a legacy (pre-zip) file is read from memory, so that no length field in it makes a read allocate more than
the file's size.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from typing import Any

import torch

from .safe_pickle import RefusedPickleError


def _numpy_globals() -> list[Any]:
    import numpy

    core = getattr(numpy, "_core", None) or numpy.core
    found: list[Any] = [numpy.ndarray, numpy.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    dtypes = getattr(numpy, "dtypes", None)  # numpy >= 1.25 pickles dtypes as numpy.dtypes.<Kind>DType
    if dtypes is not None:
        found += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return found


_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def _python3_name(dotted: str) -> str:
    """``module.name`` as Python 3 spells it (protocol-2 pickles write ``__builtin__.exec``; torch names a builtin
    without its module)."""
    import _compat_pickle

    module, _, name = dotted.rpartition(".")
    module = module or "builtins"
    module, name = _compat_pickle.NAME_MAPPING.get((module, name),
                                                   (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    return f"{module}.{name}"


def _source(path: str | os.PathLike) -> Any:
    """What ``torch.load`` reads: the path of a zip archive whose members fit in the file, else the bytes of a
    legacy file in memory. Raises ``pickle.UnpicklingError`` for an archive that inflates beyond the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # torch's own test for its zip format
            handle.seek(0)
            return io.BytesIO(handle.read())
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return path  # torch reports what is wrong with it
    if claimed > size:
        raise pickle.UnpicklingError(f"its zip members claim {claimed:,} bytes, more than the file's {size:,} "
                                     f"(torch writes them uncompressed; this archive would inflate in memory)")
    return path


def safe_torch_load(path: str | os.PathLike) -> Any:
    """Read a ``torch.save`` file on CPU with tensors, containers, numbers and numpy values only.

    Raises :class:`RefusedPickleError` (naming the file and the refused global) for anything beyond those; other
    read failures propagate as ``torch.load`` raises them, with a message (``pickle.UnpicklingError`` naming the
    original type where torch's has none).
    """
    with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")  # said of every corrupt header
        try:
            return torch.load(_source(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            match = _GLOBAL.search(str(err))
            if match is None:  # not a refused global: bytes that are no pickle (truncated, random, other format)
                detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(err))
                first = (str(err).splitlines() or ["not a pickle"])[0]
                raise pickle.UnpicklingError(detail.group(1).strip() if detail else first) from None
            raise RefusedPickleError(
                f"{path}: refused to load - the file asks for {_python3_name(match.group(1))}, which is not a tensor, "
                f"number, string, container or numpy value; pcpeft reads tensors only, so nothing from it was run. A "
                f"checkpoint written by torch.save(model.state_dict()) or by the official training scripts holds "
                f"nothing else."
            ) from None
        except Exception as err:  # noqa: BLE001 - torch's own failures on foreign bytes, some without a message
            if str(err).strip():
                raise
            raise pickle.UnpicklingError(f"{type(err).__name__}: the file ends early or is no torch file") from None
