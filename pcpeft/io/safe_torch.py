"""``torch.load`` for files a user is handed: tensors only (``weights_only=True``) plus numpy arrays and scalars.

PyTorch's weights-only unpickler already refuses every callable except tensors, containers and numbers. Official
training files also carry numpy scalars and arrays in their ``metrics`` entries, so those (and only those) are
added to its allow-list here. A file that asks for anything else raises :class:`RefusedPickleError` naming the
file and the refused global; the message never suggests turning the check off.
"""
from __future__ import annotations

import os
import pickle
import re
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


def safe_torch_load(path: str | os.PathLike) -> Any:
    """Read a ``torch.save`` file on CPU with tensors, containers, numbers and numpy values only.

    Raises :class:`RefusedPickleError` (naming the file and the refused global) for anything beyond those; other
    read failures propagate as ``torch.load`` raises them.
    """
    with torch.serialization.safe_globals(_numpy_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            match = _GLOBAL.search(str(err))
            if match is None:  # not a refused global: bytes that are no pickle (truncated, random, other format)
                detail = re.search(r"WeightsUnpickler error: \s*(.+)", str(err))
                raise pickle.UnpicklingError(detail.group(1).strip() if detail else str(err).splitlines()[0]) from None
            raise RefusedPickleError(
                f"{path}: refused to load - the file asks for {match.group(1)}, which is not a tensor, number, "
                f"string, container or numpy value; pcpeft reads tensors only, so nothing from it was run. A "
                f"checkpoint written by torch.save(model.state_dict()) or by the official training scripts holds "
                f"nothing else."
            ) from None
