"""Reading point/label arrays from h5 files with clear errors."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .errors import DatasetError, require_file


def read_h5(path: Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Read ``keys`` of an h5 file fully into memory, naming the file and the keys it has on error."""
    require_file(path, what)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DatasetError(f"{path}: h5 key(s) {missing} not found; the file has {sorted(f.keys())}")
            return {k: np.asarray(f[k][()]) for k in keys}
    except OSError as err:
        raise DatasetError(f"{path}: not a readable h5 file ({err})") from None
