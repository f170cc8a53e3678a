"""Reading point/label arrays from h5 files with clear errors.

The file is untrusted: before anything is read, each key must be a dataset inside the file (no external link, no
external raw-data files, no virtual dataset mapping other files) holding numbers, and the values all keys claim
must fit in :data:`MAX_EXPANSION` times the file's size (a corrupt or crafted header can declare terabytes that no
file of that size holds). Any failure of the h5 library on the file is one :class:`DatasetError` naming it.
"""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from .errors import DatasetError, require_file

#: the values of all keys read may take at most this many times the file's bytes (compressed data sets of real
#: points shrink by far less), plus :data:`EXPANSION_SLACK` bytes
MAX_EXPANSION = 64
EXPANSION_SLACK = 1 << 20
#: layouts whose values live inside the file itself
_LOCAL_LAYOUTS = (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED)


def read_h5(path: Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Read ``keys`` of an h5 file fully into memory, naming the file and the keys it has on error."""
    require_file(path, what)
    size = path.stat().st_size
    try:
        with h5py.File(path, "r") as f:
            datasets = _datasets(f, keys, path)
            _check_sizes(datasets, size, path)
            return {k: np.asarray(ds[()]) for k, ds in datasets.items()}
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError, ValueError, TypeError...
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DatasetError(f"{path}: not a readable h5 file ({detail})") from None


def _key_names(f: h5py.File) -> list[str]:
    return sorted(str(k) for k in f.keys())


def _datasets(f: h5py.File, keys: tuple[str, ...], path: Path) -> dict[str, h5py.Dataset]:
    """The datasets of ``keys``, each checked to hold numbers stored in this file."""
    missing = [k for k in keys if f.get(k, getlink=True) is None]
    if missing:
        raise DatasetError(f"{path}: h5 key(s) {missing} not found; the file has {_key_names(f)}")
    return {k: _checked_dataset(f, k, path) for k in keys}


def _checked_dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    if isinstance(f.get(key, getlink=True), h5py.ExternalLink):
        raise DatasetError(f"{path}: h5 key {key!r} is a link to another file; the data must be in this file")
    ds = f.get(key)
    if not isinstance(ds, h5py.Dataset):
        raise DatasetError(f"{path}: h5 key {key!r} is a {type(ds).__name__}, not a dataset of numbers")
    plist = ds.id.get_create_plist()
    if plist.get_external_count() or plist.get_layout() not in _LOCAL_LAYOUTS:
        raise DatasetError(f"{path}: h5 key {key!r} keeps its values outside this file (external or virtual "
                           f"storage); the data must be in this file")
    if ds.dtype.kind not in "biuf" or ds.dtype.shape:
        raise DatasetError(f"{path}: h5 key {key!r} holds values of type {ds.dtype}, not numbers")
    if ds.shape is None:
        raise DatasetError(f"{path}: h5 key {key!r} holds no values (an empty dataspace)")
    return ds


def _check_sizes(datasets: dict[str, h5py.Dataset], file_size: int, path: Path) -> None:
    """Refuse values the file cannot hold before reading them."""
    claimed = {k: math.prod(ds.shape) * ds.dtype.itemsize for k, ds in datasets.items()}
    limit = MAX_EXPANSION * file_size + EXPANSION_SLACK
    if sum(claimed.values()) > limit:
        key = max(claimed, key=claimed.get)
        raise DatasetError(f"{path}: h5 key {key!r} claims {claimed[key]:,} bytes of values (shape "
                           f"{datasets[key].shape}), more than a {file_size:,}-byte file can hold; the file is "
                           f"corrupt")
